import { test } from 'node:test';
import assert from 'node:assert/strict';
import { delayMs, emptyBackoff, nextStartAt, recordFailure, recordHealthyRun, remainingMs, type BackoffState } from '../../src/plan/backoff.js';
import type { Backoff } from '../../src/manifest/types.js';

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const S = 1000;
const cfg = (over: Partial<Backoff> = {}): Backoff => ({ initialSeconds: 1, factor: 2, maxSeconds: 16, jitter: 0, resetAfterSeconds: 600, ...over });

/**
 * Crashes `n` times in a row, each instance running `ranMs` and started as soon as the backoff
 * allowed; returns the delay in force after each failure.
 */
function crashLoop(backoff: Backoff, n: number, opts: { ranMs?: number; jitter01?: number } = {}): number[] {
  let state = emptyBackoff();
  let startedAt = T0;
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    const endedAt = startedAt + (opts.ranMs ?? 100);
    state = recordFailure(state, backoff, { startedAt, endedAt, jitter01: opts.jitter01 ?? 0 });
    delays.push(delayMs(state, backoff));
    startedAt = nextStartAt(state, backoff);
  }
  return delays;
}

test('backoff: doubles from the initial delay to the cap: 1s 2s 4s 8s 16s 16s', () => {
  assert.deepEqual(crashLoop(cfg(), 6), [1, 2, 4, 8, 16, 16].map((s) => s * S));
});

test('backoff: the schema defaults give 1s … 256s, then 300s', () => {
  const defaults = { initialSeconds: 1, factor: 2, maxSeconds: 300, jitter: 0, resetAfterSeconds: 600 };
  assert.deepEqual(crashLoop(defaults, 11), [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map((s) => s * S));
});

test('backoff: jitter adds up to its fraction of the delay, on top of the cap', () => {
  assert.deepEqual(crashLoop(cfg({ jitter: 0.2 }), 6, { jitter01: 0 }), [1000, 2000, 4000, 8000, 16000, 16000]);
  assert.deepEqual(crashLoop(cfg({ jitter: 0.2 }), 6, { jitter01: 0.5 }), [1100, 2200, 4400, 8800, 17600, 17600]);
  // At the cap the jitter still spreads restarts; the longest wait is maxSeconds × (1 + jitter).
  assert.deepEqual(crashLoop(cfg({ jitter: 0.2 }), 6, { jitter01: 0.99 }).slice(-2), [19168, 19168]);
  const longest = crashLoop(cfg({ jitter: 0.2 }), 8, { jitter01: 0.999999 }).at(-1) ?? 0;
  assert.ok(longest > 16 * S && longest <= 16 * S * 1.2, `longest ${longest}`);
});

test('backoff: the jitter draw is kept with the failure, so the next start does not move', () => {
  const backoff = cfg({ jitter: 0.2 });
  const state = recordFailure(emptyBackoff(), backoff, { startedAt: T0, endedAt: T0 + 50, jitter01: 0.5 });
  assert.deepEqual(state, { failures: 1, lastFailureAt: T0 + 50, jitter01: 0.5 });
  assert.equal(nextStartAt(state, backoff), T0 + 50 + 1100);
  assert.equal(nextStartAt(state, backoff), T0 + 50 + 1100);
  // Stored as JSON and read back by a restarted daemon: the same answer.
  const reloaded = JSON.parse(JSON.stringify(state)) as BackoffState;
  assert.equal(nextStartAt(reloaded, backoff), T0 + 50 + 1100);
  // remainingMs counts down to zero and stays there: a requeue delay.
  assert.deepEqual(
    [T0 + 50, T0 + 650, T0 + 1149, T0 + 1150, T0 + 9000].map((now) => remainingMs(state, backoff, now)),
    [1100, 500, 1, 0, 0],
  );
});

test('backoff: a run of resetAfterSeconds (start to exit) forgets the earlier failures', () => {
  const backoff = cfg();
  let state = emptyBackoff();
  for (let i = 0; i < 3; i++) state = recordFailure(state, backoff, { startedAt: T0, endedAt: T0 + 100, jitter01: 0 });
  assert.equal(delayMs(state, backoff), 4 * S);

  const almost = recordFailure(state, backoff, { startedAt: T0, endedAt: T0 + 600 * S - 1, jitter01: 0 });
  assert.equal(delayMs(almost, backoff), 8 * S, 'one ms short of the reset: keeps doubling');
  const stable = recordFailure(state, backoff, { startedAt: T0, endedAt: T0 + 600 * S, jitter01: 0 });
  assert.equal(stable.failures, 1);
  assert.equal(delayMs(stable, backoff), 1 * S, 'counted as the first failure again');
});

test('backoff: recordHealthyRun clears the count while the instance is still up', () => {
  const backoff = cfg();
  const state = recordFailure(recordFailure(emptyBackoff(), backoff, { endedAt: T0, jitter01: 0 }), backoff, { endedAt: T0 + S, jitter01: 0 });
  const startedAt = T0 + 3 * S;
  assert.equal(recordHealthyRun(state, backoff, { startedAt, now: startedAt + 599 * S }), state, 'unchanged: the same object');
  assert.deepEqual(recordHealthyRun(state, backoff, { startedAt, now: startedAt + 600 * S }), emptyBackoff());
  const clean = emptyBackoff();
  assert.equal(recordHealthyRun(clean, backoff, { startedAt, now: startedAt + 9999 * S }), clean);
});

test('backoff: factor 1 gives a constant delay', () => {
  assert.deepEqual(crashLoop(cfg({ initialSeconds: 3, factor: 1 }), 5), [3000, 3000, 3000, 3000, 3000]);
});

test('backoff: initial 0 restarts at once, every time', () => {
  const backoff = cfg({ initialSeconds: 0, jitter: 0.2 });
  assert.deepEqual(crashLoop(backoff, 5, { jitter01: 0.9 }), [0, 0, 0, 0, 0]);
  const state = recordFailure(emptyBackoff(), backoff, { startedAt: T0, endedAt: T0 + 5, jitter01: 0.9 });
  assert.equal(nextStartAt(state, backoff), T0 + 5);
  assert.equal(remainingMs(state, backoff, T0 + 5), 0);
});

test('backoff: no failure counted means no wait', () => {
  assert.equal(delayMs(emptyBackoff(), cfg()), 0);
  assert.equal(nextStartAt(emptyBackoff(), cfg()), 0);
  assert.equal(remainingMs(emptyBackoff(), cfg(), T0), 0);
});

test('backoff: resetAfterSeconds 0 keeps the initial delay; a start that failed never earns a reset', () => {
  const backoff = cfg({ resetAfterSeconds: 0 });
  assert.deepEqual(crashLoop(backoff, 4), [1000, 1000, 1000, 1000]);
  let state = emptyBackoff();
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    state = recordFailure(state, backoff, { endedAt: T0 + i, jitter01: 0 });
    delays.push(delayMs(state, backoff));
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000]);
});

test('backoff: long crash loops stay at the cap (no overflow to Infinity or NaN)', () => {
  const state: BackoffState = { failures: 5000, lastFailureAt: T0, jitter01: 0.5 };
  assert.equal(delayMs(state, cfg({ jitter: 0.2 })), 17600);
  assert.equal(delayMs(state, cfg({ initialSeconds: 0 })), 0);
});

test('backoff: a jitter draw outside [0, 1) is a programming error, named in the message', () => {
  for (const jitter01 of [1, -0.1, Number.NaN]) {
    assert.throws(() => recordFailure(emptyBackoff(), cfg(), { endedAt: T0, jitter01 }), (error) => error instanceof RangeError && error.message.includes(String(jitter01)));
  }
});
