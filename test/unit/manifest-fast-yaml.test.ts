// The fast reader must agree with `yaml` on everything it accepts — values, document start lines,
// and the line:col of every value and key — and decline everything else. Checked on curated
// snippets and on seeded random documents (deterministic).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isScalar, Schema, type ScalarTag } from 'yaml';
import { parseFast } from '../../src/manifest/fast-yaml.js';
import { NON_STRING_START, resolvePlain } from '../../src/manifest/fast-yaml-scalars.js';
import type { FieldPath } from '../../src/manifest/locate.js';
import { parseSource, type ParsedDocument, type SourceFile } from '../../src/manifest/parse.js';

const source = (text: string): SourceFile => ({ display: 'test.yaml', path: '/test.yaml', dir: '/', root: 0, text });

function paths(value: unknown, prefix: FieldPath = []): FieldPath[] {
  const out: FieldPath[] = [prefix];
  if (Array.isArray(value)) value.forEach((item, i) => out.push(...paths(item, [...prefix, i])));
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) out.push(...paths(item, [...prefix, key]));
  }
  return out;
}

/** Compares both readers on `text`; returns whether the fast reader accepted it. */
function agree(text: string): boolean {
  const fast = parseFast(text);
  if (fast === undefined) return false;
  const slow = parseSource(source(text), { fast: false });
  assert.deepEqual(slow.issues, [], `fast reader accepted text that yaml rejects:\n${text}`);
  const quick = parseSource(source(text));
  assert.equal(quick.documents.length, slow.documents.length, text);
  slow.documents.forEach((expected: ParsedDocument, i) => {
    const actual = quick.documents[i] as ParsedDocument;
    assert.deepStrictEqual(actual.data, expected.data, text);
    assert.equal(actual.line, expected.line, `document start line in:\n${text}`);
    for (const path of paths(expected.data)) {
      for (const at of ['value', 'key'] as const) {
        assert.deepEqual(actual.locator.locate(path, at), expected.locator.locate(path, at), `${at} of ${JSON.stringify(path)} in:\n${text}`);
      }
    }
  });
  return true;
}

const ACCEPTED = [
  `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: api   # trailing comment
  labels: { tier: web, app.kubernetes.io/name: api }
spec:
  exec:
    command: [node, server.js, --port, "8080", 'it''s', http://localhost:8080/x]
    env:
      PORT: 8080
      RATIO: 0.5
      ON: on
      EMPTY: ''
      NOTHING: ~
      HEX: 0x1F
      TOKEN: { fromFile: secrets/token }
  ports:
    - name: http
      port: 8080
    -   name: metrics
        port: 9090
  dependsOn:
  - name: db
    condition: completed
  - { name: cache, restart: true }
`,
  '---\na: 1\n---\n# c\n---\nb: [1, [2, 3], {c: d}]\n...\n'.replace('...\n', ''),
  '  indented: document\n  second: key\n',
  'a:\n  - x\n  - y\nb:\n    deep:\n        deeper: -1\n',
  'a: b#c\nd: "x # y"\ne: -x\nf: +1\ng: .5\nh: 1e3\ni: .inf\nj: -.Inf\nk: .nan\nl: TRUE\nm: Null\nn: 0o17\no: 007\n',
  "'quoted key': 1\n\"dq key\": 2\n",
  'list:\n- a: 1\n  b:\n    c: 2\n- d\n-\n  # comment\n  e: f\n- # comment\n    - g\n',
  'a: []\nb: {}\nc: [ ]\nd: { }\n',
  'a:   spaced   value   \n',
  'a: x:y\nb: [x:y]\n',
  'key: é ü\n',
];

const DECLINED = [
  'a: &x 1\nb: *x\n',
  'a: !!str 1\n',
  'a: |\n  block\n',
  'a: >\n  folded\n',
  'a: multi\n  line\n',
  'a:\tb\n',
  'a: "esc\\n"\n',
  'a: 1\na: 2\n',
  'a:b\n',
  'a: b: c\n',
  '--- {a: 1}\n',
  '%YAML 1.2\n---\na: 1\n',
  'a: [1,\n  2]\n',
  'a: [1, 2,]\n',
  '? complex\n: key\n',
  '- - nested\n',
  '- a\n-\n- b\n',
  '1: one\n',
  'true: yes\n',
  '__proto__: x\n',
  'a: 1\r\nb: 2\r\n',
  '\ufeffa: 1\n',
  'a: {b}\n',
  'a: [-]\n',
  'a: {b: -}\n',
  'a: [-, b]\n',
  'a: @x\n',
  'a:\n   b: 1\n  c: 2\n',
];

test('accepts the plain subset and agrees with yaml', () => {
  for (const text of ACCEPTED) assert.ok(agree(text), `should be accepted:\n${text}`);
});

test('declines everything outside the subset', () => {
  for (const text of DECLINED) assert.equal(parseFast(text), undefined, `should be declined:\n${text}`);
});

test("resolvePlain resolves every plain scalar as yaml's core-schema tags do", () => {
  const tags = new Schema({}).tags.filter((tag): tag is ScalarTag => tag.default === true && 'test' in tag && tag.test instanceof RegExp);
  const byYaml = (s: string): unknown => {
    for (const tag of tags) {
      if (!tag.test?.test(s)) continue;
      const value = tag.resolve(s, () => assert.fail(`yaml could not resolve ${s}`), {});
      return isScalar(value) ? value.value : value;
    }
    return s;
  };
  const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
  const tails = ['', '0', '1', '5', '9', 'e3', 'E-2', '.5', '.', 'x', 'xF', 'o7', 'o8', 'x1', 'inf', 'Inf', 'INF', 'nan', 'NaN', 'NAN', 'ull', 'rue', 'alse', 'ULL', 'RUE', 'ALSE', '12345678901234567890'];
  for (const first of chars) {
    for (const second of ['', ...chars]) {
      for (const tail of tails) {
        const s = first + second + tail;
        assert.deepEqual(resolvePlain(s), byYaml(s), s);
      }
    }
  }
});

test("NON_STRING_START covers every core-schema tag's first character", () => {
  const tags = new Schema({}).tags.filter((tag): tag is ScalarTag => 'test' in tag && tag.test instanceof RegExp);
  const chars = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));
  const tails = ['', '0', '1', '5', 'e3', '.5', 'x', 'o7', 'x1', 'inf', 'Inf', 'nan', 'NaN', 'ull', 'rue', 'alse', 'ULL', 'RUE', 'ALSE'];
  for (const first of chars) {
    for (const second of ['', ...chars]) {
      for (const tail of tails) {
        const s = first + second + tail;
        if (tags.some((tag) => tag.test?.test(s))) assert.match(s, NON_STRING_START);
      }
    }
  }
});

/** mulberry32: a small seeded generator, so the random cases are the same on every run. */
function random(seed: number) {
  let a = seed;
  const next = (): number => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (n: number): number => Math.floor(next() * n),
    chance: (p: number): boolean => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
  };
}
type Random = ReturnType<typeof random>;

/** Keys and scalars the fast reader accepts, then ones it may decline or that are YAML errors. */
const KEYS = ['a', 'b', 'name', 'my-key', 'a.b/c', '_x', 'port', 'x1', '"q k"', "'s k'", "'it''s'", 'on', 'No'];
const ODD_KEYS = ['a b', '1', 'true', 'k:', 'Null', '? q', '"a\\"b"', '-x', '[a]', 'é'];
const SCALARS = [
  'a', 'hello world', '8080', '-1', '+1', '0x1F', '0o17', '017', '1e3', '.5', '1.', '1.50', '.inf', '-.Inf', '.nan', 'NaN',
  'null', 'Null', '~', 'true', 'False', 'tRue', 'yes', 'no', '"quoted"', "'single'", "'it''s'", '""', "''", 'http://x:80/p',
  'a#b', 'a #comment', '-dash', '--flag=1', 'a:b', 'a,b', '[x]', '[ ]', '{}', '{a: 1}', '[a, [b, c], {d: e}]',
  '{ port: http, path: /healthz }', '[a, "b, c", \'d\']', '{"k": v}', "{'k': v}", '[a] #c', "'a' #c", 'é ü', '12:30',
  '1_000', '-0', '+.5', '1e', 'a  b', '{a: [1, {b: c}]}', '[1.0, -2, 0x10, ~, null, tRUE]', '[a b, c  d]', 'a:b:c',
  "'a #b'", '"x: y"', '😀 ok', '{ "a b": 1, c: [d, e] }', '[-x, --y, -1]', "{a: 'b', \"c\": \"d\"}",
];
const ODD_SCALARS = [
  'a: b', 'x:', '-', '- x', '[a,]', '[a,,b]', '{a:1}', '{a}', '[a: b]', '[a #c]', '[a]#c', '"a" b', '@at', '`tick`', '%p',
  '!tag x', '&anc x', '*ali', '|', '>', '? q', '"a\\nb"', "'unterminated", '[a, b', '---', '...', 'x ]', 'y }', '[x]y',
];

const key = (r: Random): string => (r.chance(0.03) ? r.pick(ODD_KEYS) : r.pick(KEYS));

function scalarLine(r: Random): string {
  return ` ${r.chance(0.03) ? r.pick(ODD_SCALARS) : r.pick(SCALARS)}${r.chance(0.1) ? ' # note' : ''}\n`;
}

function blockMap(r: Random, indent: number, depth: number): string {
  let out = '';
  const entries = 1 + r.int(3);
  for (let i = 0; i < entries; i++) {
    if (r.chance(0.1)) out += `${' '.repeat(r.int(indent + 3))}# comment\n`;
    if (r.chance(0.05)) out += '\n';
    out += `${' '.repeat(indent)}${key(r)}:${value(r, indent, depth, true)}`;
  }
  return out;
}

function value(r: Random, indent: number, depth: number, inMap: boolean): string {
  const kind = depth > 3 ? 0 : r.int(5);
  if (kind === 1) return `${r.chance(0.1) ? ' # c' : ''}\n${blockMap(r, indent + r.pick([1, 2, 4]), depth + 1)}`;
  if (kind === 2) return `\n${blockSeq(r, indent + (inMap && r.chance(0.4) ? 0 : r.pick([1, 2, 4])), depth + 1)}`;
  if (kind === 3 && r.chance(0.3)) return '\n';
  return scalarLine(r);
}

function blockSeq(r: Random, indent: number, depth: number): string {
  let out = '';
  const items = 1 + r.int(3);
  for (let i = 0; i < items; i++) {
    const pad = ' '.repeat(indent);
    const kind = depth > 3 ? 0 : r.int(4);
    if (kind === 1) {
      const gap = r.pick([1, 1, 3]);
      const inner = blockMap(r, indent + 1 + gap, depth + 1);
      out += `${pad}-${' '.repeat(gap)}${inner.trimStart()}`;
    } else if (kind === 2) {
      out += `${pad}-\n${blockMap(r, indent + 2, depth + 1)}`;
    } else {
      out += `${pad}-${scalarLine(r)}`;
    }
  }
  return out;
}

function mutate(r: Random, text: string): string {
  const at = r.int(text.length + 1);
  const edit = r.pick([' ', ':', '-', '#', '\t', '"', "'", '[', '\n', '', '', '']);
  return text.slice(0, at) + edit + text.slice(at + (edit === '' || r.chance(0.5) ? 1 : 0));
}

test('agrees with yaml on 3,000 random documents', () => {
  const r = random(20_240_601);
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    let text = '';
    const documents = 1 + r.int(3);
    for (let d = 0; d < documents; d++) {
      if (d > 0 || r.chance(0.2)) text += r.chance(0.2) ? '--- # doc\n' : '---\n';
      text += r.chance(0.2) ? blockSeq(r, 0, 0) : blockMap(r, r.chance(0.1) ? 2 : 0, 0);
    }
    if (r.chance(0.2)) text = mutate(r, text);
    if (agree(text)) accepted++;
  }
  // Enough cases take the fast path for the comparison to mean something.
  assert.ok(accepted > 1000, `only ${accepted} random documents were accepted`);
});
