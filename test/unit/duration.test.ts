import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAge, parseDuration } from '../../src/util/duration.js';
import { UsageError } from '../../src/errors.js';

test('durations: units, combinations, bare seconds; nonsense and overlong values are refused', () => {
  assert.equal(parseDuration('500ms', '--timeout'), 500);
  assert.equal(parseDuration('30s', '--timeout'), 30_000);
  assert.equal(parseDuration('1m30s', '--timeout'), 90_000);
  assert.equal(parseDuration('2', '--timeout'), 2000);
  assert.equal(parseDuration('1.5h', '--timeout'), 5_400_000);
  assert.throws(() => parseDuration('5 minutes', '--timeout'), (e) => e instanceof UsageError && /--timeout: "5 minutes" is not a duration/.test(e.message));
  assert.throws(() => parseDuration('700h', '--timeout'), (e) => e instanceof UsageError && /longer than pm can wait/.test(e.message));
});

test('ages read like kubectl get', () => {
  assert.deepEqual([5_000, 125_000, 900_000, 3 * 3_600_000 + 60_000, 3 * 86_400_000].map(formatAge), ['5s', '2m5s', '15m', '3h1m', '3d']);
});
