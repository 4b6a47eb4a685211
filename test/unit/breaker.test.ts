import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedBreaker, mayStart, recordFailure, recordStart, recordSuccess, resetBreaker, type BreakerState } from '../../src/plan/breaker.js';
import type { CircuitBreaker } from '../../src/manifest/types.js';

const T0 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
/** Epoch ms `s` seconds after T0. */
const at = (s: number): number => T0 + s * 1000;
const cfg = (over: Partial<CircuitBreaker> = {}): CircuitBreaker => ({ enabled: true, maxFailures: 5, windowSeconds: 300, cooldownSeconds: 300, ...over });

/** Failures at each of `seconds`; returns the state and the phase after each. */
function failAt(seconds: number[], config = cfg(), start = closedBreaker()): { state: BreakerState; phases: string[] } {
  let state = start;
  const phases: string[] = [];
  for (const s of seconds) {
    state = recordFailure(state, config, at(s)).state;
    phases.push(state.phase);
  }
  return { state, phases };
}

/** Opened at 40 s by five quick failures; cooldown until 340 s. */
const opened = (): BreakerState => failAt([0, 10, 20, 30, 40]).state;

test('breaker: 5 failures inside 300 s open it, with the transition as a value', () => {
  const { phases } = failAt([0, 10, 20, 30, 40]);
  assert.deepEqual(phases, ['closed', 'closed', 'closed', 'closed', 'open']);
  const before = failAt([0, 10, 20, 30]).state;
  assert.deepEqual(recordFailure(before, cfg(), at(40)), {
    state: { phase: 'open', failures: [0, 10, 20, 30, 40].map(at), openedAt: at(40), cooldownMs: 300_000 },
    transition: { from: 'closed', to: 'open', reason: 'TooManyFailures', at: at(40), failures: 5, retryAt: at(340) },
  });
});

test('breaker: 5 failures spread over more than the window do not open it', () => {
  // A failure counts while now − t < 300 s: at 300 s the one at 0 s has left the window.
  assert.deepEqual(failAt([0, 75, 150, 225, 300]).phases, ['closed', 'closed', 'closed', 'closed', 'closed']);
  assert.deepEqual(failAt([0, 75, 150, 225, 299.999]).phases.at(-1), 'open');
  const slow = failAt([0, 80, 160, 240, 320, 400, 480, 560]);
  assert.ok(slow.phases.every((p) => p === 'closed'));
  assert.deepEqual(slow.state.failures, [320, 400, 480, 560].map(at));
});

test('breaker: open refuses starts until the cooldown, then allows exactly one trial', () => {
  const c = cfg();
  let state = opened();
  const refused = [41, 200, 339.999].map((s) => mayStart(state, c, at(s)));
  for (const verdict of refused) {
    assert.equal(verdict.allowed, false);
    assert.ok(!verdict.allowed && verdict.blockedBy === 'open' && verdict.retryAt === at(340));
    assert.equal(verdict.transition, undefined);
  }

  const trial = mayStart(state, c, at(340));
  assert.ok(trial.allowed && trial.trial);
  // (The cooldown equals the window here, so the failures that opened it have aged out.)
  assert.deepEqual(trial.transition, { from: 'open', to: 'half-open', reason: 'CooldownElapsed', at: at(340), failures: 0 });
  state = trial.state;
  assert.equal(state.phase, 'half-open');

  // Asking again before starting takes nothing; starting takes the one trial.
  const again = mayStart(state, c, at(341));
  assert.ok(again.allowed && again.trial && again.transition === undefined);
  state = recordStart(state, c, at(341)).state;
  assert.deepEqual(
    [342, 400, 5000].map((s) => {
      const v = mayStart(state, c, at(s));
      return v.allowed ? 'allowed' : v.blockedBy;
    }),
    ['trial-running', 'trial-running', 'trial-running'],
  );
});

test('breaker: a successful trial closes it and clears the window', () => {
  // A window longer than the cooldown, so the failures are still in it when the trial succeeds.
  const c = cfg({ windowSeconds: 3600 });
  let state = failAt([0, 10, 20, 30, 40], c).state;
  state = recordStart(mayStart(state, c, at(340)).state, c, at(340)).state;
  const closed = recordSuccess(state, c, at(350));
  assert.deepEqual(closed, { state: closedBreaker(), transition: { from: 'half-open', to: 'closed', reason: 'TrialSucceeded', at: at(350), failures: 5 } });
  state = closed.state;
  assert.ok(mayStart(state, c, at(351)).allowed);
  // A fresh count: it takes five new failures, and the cooldown is back to the configured one.
  const { phases, state: reopened } = failAt([360, 361, 362, 363, 364], c, state);
  assert.deepEqual(phases, ['closed', 'closed', 'closed', 'closed', 'open']);
  assert.ok(reopened.phase === 'open' && reopened.cooldownMs === 300_000);
});

test('breaker: a failed trial re-opens it with double the cooldown, at most 8×', () => {
  const c = cfg();
  let state = opened();
  let now = at(340);
  const cooldowns: number[] = [];
  for (let i = 0; i < 5; i++) {
    const verdict = mayStart(state, c, now);
    assert.ok(verdict.allowed && verdict.trial, `trial ${i} allowed at its retry time`);
    state = recordStart(verdict.state, c, now).state;
    const failed = recordFailure(state, c, now + 2000);
    assert.equal(failed.transition?.reason, 'TrialFailed');
    assert.ok(failed.state.phase === 'open');
    cooldowns.push(failed.state.cooldownMs / 1000);
    assert.equal(failed.transition?.retryAt, now + 2000 + failed.state.cooldownMs);
    state = failed.state;
    now = failed.transition?.retryAt ?? 0;
  }
  assert.deepEqual(cooldowns, [600, 1200, 2400, 2400, 2400]);
});

test('breaker: reset closes it by hand and forgets the failures', () => {
  const reset = resetBreaker(opened(), at(50));
  assert.deepEqual(reset, { state: closedBreaker(), transition: { from: 'open', to: 'closed', reason: 'Reset', at: at(50), failures: 5 } });
  const verdict = mayStart(reset.state, cfg(), at(51));
  assert.ok(verdict.allowed && !verdict.trial);
  // Resetting a closed breaker clears its window without a transition.
  assert.deepEqual(resetBreaker(failAt([0, 1]).state, at(2)), { state: closedBreaker() });
});

test('breaker: disabled never opens; disabling an open breaker closes it', () => {
  const off = cfg({ enabled: false });
  const seconds = Array.from({ length: 50 }, (_, i) => i * 0.1);
  const { state, phases } = failAt(seconds, off);
  assert.ok(phases.every((p) => p === 'closed'));
  assert.equal(state.failures.length, 5, 'the window stays bounded');
  assert.ok(mayStart(state, off, at(5)).allowed);

  const closed = mayStart(opened(), off, at(41));
  assert.ok(closed.allowed && !closed.trial);
  assert.deepEqual(closed.transition, { from: 'open', to: 'closed', reason: 'Disabled', at: at(41), failures: 5 });
});

test('breaker: the window is pruned on every call and never holds more than maxFailures', () => {
  const c = cfg();
  let state = opened();
  for (let i = 0; i < 100; i++) state = recordFailure(state, c, at(41 + i)).state;
  assert.equal(state.failures.length, 5);
  // Long after the last failure, any call prunes the window.
  const verdict = mayStart(state, c, at(10_000));
  assert.deepEqual(verdict.state.failures, []);
});

test('breaker: while closed, successes do not forgive failures in the window', () => {
  const c = cfg();
  let state = failAt([0, 10, 20, 30]).state;
  const ok = recordSuccess(state, c, at(35));
  assert.equal(ok.transition, undefined);
  state = recordFailure(ok.state, c, at(40)).state;
  assert.equal(state.phase, 'open');
});

test('breaker: while open, a failure restarts the cooldown and a success closes it', () => {
  const c = cfg();
  const again = recordFailure(opened(), c, at(100));
  assert.equal(again.transition, undefined);
  assert.ok(again.state.phase === 'open' && again.state.openedAt === at(100) && again.state.cooldownMs === 300_000);
  const verdict = mayStart(again.state, c, at(340));
  assert.ok(!verdict.allowed && verdict.blockedBy === 'open' && verdict.retryAt === at(400));

  const recovered = recordSuccess(opened(), c, at(60));
  assert.deepEqual(recovered.transition, { from: 'open', to: 'closed', reason: 'Recovered', at: at(60), failures: 5 });
  assert.deepEqual(recovered.state, closedBreaker());
});

test('breaker: state round-trips through JSON with unchanged behaviour', () => {
  type Step = { op: 'fail' | 'success' | 'may' | 'start'; s: number };
  const script: Step[] = [
    ...[0, 10, 20, 30, 40].map((s): Step => ({ op: 'fail', s })),
    { op: 'may', s: 100 },
    { op: 'may', s: 340 },
    { op: 'start', s: 340 },
    { op: 'may', s: 341 },
    { op: 'fail', s: 345 },
    { op: 'may', s: 900 },
    { op: 'may', s: 945 },
    { op: 'start', s: 946 },
    { op: 'success', s: 960 },
    { op: 'may', s: 961 },
  ];
  const run = (viaJson: boolean): unknown[] => {
    const c = cfg();
    let state = closedBreaker();
    const out: unknown[] = [];
    for (const { op, s } of script) {
      if (viaJson) state = JSON.parse(JSON.stringify(state)) as BreakerState;
      const result =
        op === 'fail' ? recordFailure(state, c, at(s)) : op === 'success' ? recordSuccess(state, c, at(s)) : op === 'may' ? mayStart(state, c, at(s)) : recordStart(state, c, at(s));
      state = result.state;
      out.push(result);
    }
    return out;
  };
  const direct = run(false);
  assert.deepEqual(run(true), direct);
  // And the script went where it should: opened, one trial failed, the next one succeeded.
  const reasons = direct.map((r) => (r as { transition?: { reason: string } }).transition?.reason).filter(Boolean);
  assert.deepEqual(reasons, ['TooManyFailures', 'CooldownElapsed', 'TrialFailed', 'CooldownElapsed', 'TrialSucceeded']);
});
