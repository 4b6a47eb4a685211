// Character-level rules of the fast YAML reader (fast-yaml.ts): keys, plain scalars and their
// resolution, line ends. Each check throws `declined` when text is outside the subset, so that
// `yaml` reads the file instead. Nothing here loads `yaml`: a daemon whose manifests stay in the
// subset never does (about 70 modules and 4 MiB resident).

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

/**
 * The YAML 1.2 core schema's plain scalars that are not strings, in yaml 2's order and with its
 * resolution (yaml/dist/schema/core and common/null): test/unit/manifest-fast-yaml.test.ts checks
 * them against yaml's own tags on every string it builds.
 */
const CORE_SCALARS: readonly { test: RegExp; resolve: (source: string) => unknown }[] = [
  { test: /^(?:~|[Nn]ull|NULL)?$/, resolve: () => null },
  { test: /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, resolve: (s) => s[0] === 't' || s[0] === 'T' },
  { test: /^0o[0-7]+$/, resolve: (s) => parseInt(s.substring(2), 8) },
  { test: /^[-+]?[0-9]+$/, resolve: (s) => parseInt(s, 10) },
  { test: /^0x[0-9a-fA-F]+$/, resolve: (s) => parseInt(s.substring(2), 16) },
  { test: /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/, resolve: (s) => (s.slice(-3).toLowerCase() === 'nan' ? NaN : s[0] === '-' ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY) },
  { test: /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, resolve: (s) => parseFloat(s) },
  { test: /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, resolve: (s) => parseFloat(s) },
];

/**
 * Every core-schema scalar other than a string (null, bool, int, float) starts with one of these;
 * checked by test/unit/manifest-fast-yaml.test.ts against yaml's own tags.
 */
export const NON_STRING_START = /^[-+.~0-9nNtTfF]/;
const MAY_NOT_BE_STRING: boolean[] = Array.from({ length: 128 }, (_, c) => NON_STRING_START.test(String.fromCharCode(c)));

/** Resolves a plain scalar exactly as yaml's core schema does. */
export function resolvePlain(source: string): unknown {
  if (!MAY_NOT_BE_STRING[source.charCodeAt(0)]) return source;
  for (const scalar of CORE_SCALARS) {
    if (scalar.test.test(source)) return scalar.resolve(source);
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
