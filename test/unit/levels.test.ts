import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dependencyLevels } from '../../src/graph/levels.js';

const graph: Record<string, string[]> = { a: [], b: ['a'], c: ['a'], d: ['b', 'c'], e: [] };
const deps = (n: string): string[] => graph[n] ?? [];

test('levels follow dependencies, each sorted by name', () => {
  assert.deepEqual(dependencyLevels(['d', 'c', 'b', 'a', 'e'], deps), [['a', 'e'], ['b', 'c'], ['d']]);
});

test('edges leaving the subset are ignored', () => {
  assert.deepEqual(dependencyLevels(['d', 'b'], deps), [['b'], ['d']]);
  assert.deepEqual(dependencyLevels(['d', 'e'], deps), [['d', 'e']]);
});

test('a cycle among records is kept in a last level instead of being lost', () => {
  const cyclic: Record<string, string[]> = { x: ['y'], y: ['x'], z: [] };
  assert.deepEqual(dependencyLevels(['x', 'y', 'z'], (n) => cyclic[n] ?? []), [['z'], ['x', 'y']]);
});

test('a long chain is handled without recursion limits', () => {
  const n = 20_000;
  const levels = dependencyLevels(
    Array.from({ length: n }, (_, i) => `p${i}`),
    (name) => (name === 'p0' ? [] : [`p${Number(name.slice(1)) - 1}`]),
  );
  assert.equal(levels.length, n);
  assert.deepEqual(levels[n - 1], [`p${n - 1}`]);
});
