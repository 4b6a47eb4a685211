import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/db/connection.js';

const BASE = 100;
const CAP = 30_000;
/** The largest value Math.random can return. */
const ALMOST_ONE = 1 - Number.EPSILON / 2;
const fixed = (value: number) => () => value;

/** A small deterministic generator (mulberry32), so the bounds check sees many values without flakiness. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const attempts = (n: number) => Array.from({ length: n }, (_, i) => i);

test('db backoff: random 0 gives no delay at any attempt (full jitter starts at zero)', () => {
  assert.deepEqual(attempts(20).map((a) => backoffDelay(a, fixed(0), BASE, CAP)), Array(20).fill(0));
});

test('db backoff: random just below 1 gives just below the window: base·2^attempt, then the cap', () => {
  assert.deepEqual(
    attempts(12).map((a) => backoffDelay(a, fixed(ALMOST_ONE), BASE, CAP)),
    [99, 199, 399, 799, 1599, 3199, 6399, 12_799, 25_599, 29_999, 29_999, 29_999],
  );
});

test('db backoff: the window doubles from the base to the cap (random 0.5 halves it)', () => {
  assert.deepEqual(
    attempts(12).map((a) => backoffDelay(a, fixed(0.5), BASE, CAP)),
    [50, 100, 200, 400, 800, 1600, 3200, 6400, 12_800, 15_000, 15_000, 15_000],
  );
});

test('db backoff: every delay is a whole number in [0, min(cap, base·2^attempt))', () => {
  const random = seeded(42);
  for (const [base, cap] of [[100, 30_000], [20, 200], [1, 1]] as const) {
    for (const attempt of attempts(40)) {
      const window = Math.min(cap, base * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const delay = backoffDelay(attempt, random, base, cap);
        assert.ok(Number.isInteger(delay) && delay >= 0 && delay < Math.max(window, 1), `attempt ${attempt}: ${delay} outside [0, ${window})`);
      }
    }
  }
});

test('db backoff: the delays spread over the whole window rather than bunching at its top', () => {
  const random = seeded(7);
  const delays = Array.from({ length: 2000 }, () => backoffDelay(20, random, BASE, CAP));
  assert.ok(delays.some((d) => d < CAP / 4) && delays.some((d) => d > (CAP * 3) / 4));
});

test('db backoff: attempts far past the cap stay at the cap (no overflow to Infinity or NaN)', () => {
  assert.equal(backoffDelay(5000, fixed(ALMOST_ONE), BASE, CAP), CAP - 1);
  assert.equal(backoffDelay(5000, fixed(0.5), BASE, CAP), CAP / 2);
});

test('db backoff: a random of exactly 1 (a bad generator) still stays within the cap', () => {
  assert.equal(backoffDelay(3, fixed(1), BASE, CAP), 800);
  assert.equal(backoffDelay(30, fixed(1), BASE, CAP), CAP);
});
