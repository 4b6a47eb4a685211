// Character-level rules of the fast YAML reader (fast-yaml.ts): keys, plain scalars and their
// resolution, line ends. Each check throws `declined` when text is outside the subset, so that
// `yaml` reads the file instead.
import { isScalar, Schema, type ScalarTag } from 'yaml';

/** Thrown inside the reader to give up; never escapes parseFast. */
export const declined = new Error('outside the fast YAML subset');

/** Plain keys are `[A-Za-z0-9_][A-Za-z0-9_./-]*` followed by `:` and a space or the line end. */
function isKeyChar(c: number, first: boolean): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 95 || // _
    (!first && (c === 46 || c === 47 || c === 45)) // . / -
  );
}

/** Length of `key:` plus the spaces after it at the start of `text`, or 0 when there is none. */
export function plainKeyLength(text: string): number {
  let i = 0;
  while (i < text.length && isKeyChar(text.charCodeAt(i), i === 0)) i++;
  if (i === 0 || text.charCodeAt(i) !== 58 /* : */) return 0;
  const colon = i + 1;
  if (colon < text.length && text.charCodeAt(colon) !== 32) return 0;
  return skipSpaces(text, colon);
}
export const DOUBLE_QUOTED_KEY = /^"([^"\\]*)":(?: +|$)/;
export const SINGLE_QUOTED_KEY = /^'((?:[^']|'')*)':(?: +|$)/;
/** Characters a plain scalar may not start with (`-` may, when a safe character follows). */
const INDICATORS = new Set(['-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', "'", '"', '%', '@', '`']);

const scalarTags = new Schema({}).tags.filter(
  (tag): tag is ScalarTag => tag.default === true && 'test' in tag && tag.test instanceof RegExp,
);

/**
 * Every core-schema scalar other than a string (null, bool, int, float) starts with one of these;
 * checked by test/unit/manifest-fast-yaml.test.ts against yaml's own tags.
 */
export const NON_STRING_START = /^[-+.~0-9nNtTfF]/;
const MAY_NOT_BE_STRING: boolean[] = Array.from({ length: 128 }, (_, c) => NON_STRING_START.test(String.fromCharCode(c)));

let resolveFailed = false;
function onResolveError(): void {
  resolveFailed = true;
}

/** Resolves a plain scalar exactly as yaml's core schema does. */
export function resolvePlain(source: string): unknown {
  if (!MAY_NOT_BE_STRING[source.charCodeAt(0)]) return source;
  for (const tag of scalarTags) {
    if (!tag.test?.test(source)) continue;
    resolveFailed = false;
    const value = tag.resolve(source, onResolveError, {});
    if (resolveFailed) throw declined;
    return isScalar(value) ? value.value : value;
  }
  return source;
}

export function isSeqLine(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

/** Checks how the plain scalar at text[i] starts. */
export function checkPlainStart(text: string, i: number, inFlow: boolean): void {
  const c = text[i] as string;
  if (INDICATORS.has(c)) {
    // `-1`, `--port`: a dash followed by a safe character starts a plain scalar.
    const after = text[i + 1];
    const safe = c === '-' && after !== undefined && after !== ' ' && !(inFlow && ',[]{}'.includes(after));
    if (!safe) throw declined;
  }
  if (text.startsWith('---', i) || text.startsWith('...', i)) throw declined;
}

/**
 * Checks the plain scalar text[from, to): no `: ` or trailing `:` (a nested mapping), and in block
 * context no brackets or braces (left to yaml).
 */
export function checkPlainBody(text: string, from: number, to: number, inFlow: boolean): void {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 58 /* : */ && (i + 1 === to || text.charCodeAt(i + 1) === 32)) throw declined;
    if (!inFlow && (c === 91 || c === 93 || c === 123 || c === 125)) throw declined; // [ ] { }
  }
}

/** What may follow a complete value on its line: nothing, or a comment after a space. */
export function checkLineEnd(text: string, from: number): void {
  let i = from;
  while (text.charCodeAt(i) === 32) i++;
  if (i === text.length) return;
  if (text[i] === '#' && i > from) return;
  throw declined;
}

export function skipSpaces(text: string, i: number): number {
  while (text.charCodeAt(i) === 32) i++;
  return i;
}
