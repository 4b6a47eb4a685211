// The circuit breaker after it opened: one trial start once the cooldown has passed (half-open),
// which closes it when the process proves healthy and re-opens it, with a doubled cooldown, when it
// fails; and `reset` through the API, which closes it at once.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { isRunningWith } from '../support/cli.js';
import { commandManifest, createDaemonSandbox, failsUntil, indexOfEvent, quickRestarts, startDaemon } from '../support/daemon.js';

const breaker = { maxFailures: 2, windowSeconds: 600, cooldownSeconds: 1 };

test('half-open: after the cooldown one trial start; a healthy trial closes the breaker', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const okFile = sandbox.path('ok');
  // Up 0.3 s counts as healthy: the failing instances (sh exiting 1) never get there.
  await sandbox.write('manifests/flaky.yaml', commandManifest(sandbox, 'flaky', failsUntil(okFile), { ...quickRestarts({ breaker }), minReadySeconds: 0.3 }));
  const daemon = await startDaemon(sandbox);

  const open = await daemon.waitFor('flaky', (s) => s.breaker.phase === 'open', 'the breaker to open');
  assert.equal(open.up, false);
  // Fixed before the cooldown ends: the trial will succeed.
  await writeFile(okFile, '');

  const closed = await daemon.waitFor('flaky', (s) => s.breaker.phase === 'closed' && s.phase === 'Ready', 'the trial to close the breaker', 20_000);
  assert.ok(closed.pid !== undefined && (await isRunningWith(closed.pid)));
  assert.equal(closed.breaker.failures, 0, 'a successful trial clears the window');

  const events = await daemon.events('flaky');
  const types = events.map((e) => e.type).join(', ');
  const opened = indexOfEvent(events, 'BreakerOpened');
  const halfOpen = indexOfEvent(events, 'BreakerHalfOpen', opened + 1);
  const trial = indexOfEvent(events, 'Started', halfOpen + 1);
  const ready = indexOfEvent(events, 'Ready', trial + 1);
  const closedAt = indexOfEvent(events, 'BreakerClosed', trial + 1);
  assert.ok(opened >= 0 && halfOpen > opened && trial > halfOpen && ready > trial && closedAt > trial, `opened → half-open → trial start → ready, closed: ${types}`);
  assert.match(events[trial]?.message ?? '', /circuit breaker trial/);
  assert.match(events[closedAt]?.message ?? '', /half-open → closed \(TrialSucceeded/);
  assert.equal(events.slice(opened + 1).filter((e) => e.type === 'Started').length, 1, `exactly one start after the breaker opened: ${types}`);
});

test('half-open: a failing trial re-opens the breaker with the cooldown doubled', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  // Exits at once with code 3; on-failure restarts it. minReadySeconds far above its lifetime, so
  // no instance ever counts as healthy.
  await sandbox.write(
    'manifests/broken.yaml',
    commandManifest(sandbox, 'broken', [process.execPath, '-e', 'process.exit(3)'], { ...quickRestarts({ breaker, policy: 'on-failure' }), minReadySeconds: 30 }),
  );
  const daemon = await startDaemon(sandbox);

  // The breaker opens at the exit that made it trip: retryAt − that exit is the cooldown.
  const cooldownOf = (s: { breaker: { retryAt?: string }; lastExit?: { at: number } }): number => Date.parse(s.breaker.retryAt ?? '') - (s.lastExit?.at ?? NaN);
  const first = await daemon.waitFor('broken', (s) => s.breaker.phase === 'open', 'the breaker to open');
  assert.equal(first.lastExit?.code, 3);
  assert.equal(cooldownOf(first), 1000, 'the first cooldown is cooldownSeconds');

  const trialFailed = await daemon.waitForEvent('broken', (e) => e.type === 'BreakerOpened' && e.message.includes('TrialFailed'), 'the trial to fail', 20_000);
  assert.match(trialFailed.message, /half-open → open \(TrialFailed/);
  const reopened = await daemon.waitFor('broken', (s) => s.breaker.phase === 'open' && s.breaker.retryAt !== first.breaker.retryAt, 'the breaker re-opened');
  assert.equal(cooldownOf(reopened), 2000, 'the cooldown doubles after a failed trial');
  assert.equal(reopened.lastExit?.code, 3);

  const events = await daemon.events('broken');
  const types = events.map((e) => e.type).join(', ');
  const opened = indexOfEvent(events, 'BreakerOpened');
  const halfOpen = indexOfEvent(events, 'BreakerHalfOpen', opened + 1);
  const trial = indexOfEvent(events, 'Started', halfOpen + 1);
  const exited = indexOfEvent(events, 'Exited', trial + 1);
  const again = indexOfEvent(events, 'BreakerOpened', trial + 1);
  assert.ok(opened >= 0 && halfOpen > opened && trial > halfOpen && exited > trial && again > trial, `opened → half-open → trial → exit → opened: ${types}`);
  assert.equal(events.slice(opened + 1, again).filter((e) => e.type === 'Started').length, 1, `one trial start: ${types}`);
});

test('POST /api/v1/processes/NAME/reset closes an open breaker and the process starts', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const okFile = sandbox.path('ok');
  await sandbox.write(
    'manifests/flaky.yaml',
    commandManifest(sandbox, 'flaky', failsUntil(okFile), quickRestarts({ breaker: { maxFailures: 2, windowSeconds: 600, cooldownSeconds: 600 } })),
  );
  const daemon = await startDaemon(sandbox);
  const open = await daemon.waitFor('flaky', (s) => s.breaker.phase === 'open' && s.phase === 'CircuitOpen', 'the breaker to open');
  assert.equal(open.up, false);
  await writeFile(okFile, '');

  const reply = await daemon.control('reset', 'flaky');
  assert.equal(reply.changed, true);
  const running = await daemon.waitFor('flaky', (s) => s.phase === 'Ready', 'flaky to start after the reset');
  assert.equal(running.breaker.phase, 'closed');
  assert.equal(running.breaker.failures, 0);
  assert.equal(running.backoff.failures, 0, 'reset also forgets the backoff');
  assert.ok(running.pid !== undefined && (await isRunningWith(running.pid)));

  const events = await daemon.events('flaky');
  const closed = indexOfEvent(events, 'BreakerClosed');
  assert.ok(closed > indexOfEvent(events, 'BreakerOpened'), 'closed after it opened');
  assert.match(events[closed]?.message ?? '', /open → closed \(Reset/);
  assert.ok(indexOfEvent(events, 'Started', closed + 1) > closed, 'started after the reset');
});
