// spec.resources: sizes in bytes, and the argv that gives an exec process its rlimits from its first instruction.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRLIMIT, withLimits } from '../../src/drivers/exec/spawn.js';
import { parseBytes } from '../../src/manifest/resources.js';

test('sizes: bytes as given, 1024-based Ki/Mi/Gi/Ti, 1000-based K/M/G/T, fractions rounded down', () => {
  assert.equal(parseBytes(4096), 4096);
  assert.equal(parseBytes('512Mi'), 512 * 1024 * 1024);
  assert.equal(parseBytes('1.5Gi'), 1.5 * 1024 ** 3);
  assert.equal(parseBytes('64M'), 64_000_000);
  assert.equal(parseBytes('100'), 100);
  assert.equal(parseBytes('0.5Ki'), 512);
  assert.ok(Number.isNaN(parseBytes('12 MB')));
});

test('openFiles: the command runs under prlimit, which execs it (same PID), arguments untouched', () => {
  assert.deepEqual(withLimits(['node', 'app.js', '--name', 'a b'], {}), ['node', 'app.js', '--name', 'a b']);
  assert.deepEqual(withLimits(['node', 'app.js', '--', '-x'], { openFiles: 4096 }), [PRLIMIT, '--nofile=4096:4096', '--', 'node', 'app.js', '--', '-x']);
});
