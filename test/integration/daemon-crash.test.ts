// pm daemon answers crashes by itself: a child killed with SIGKILL is started again at once, and a
// process that keeps crashing waits longer each time until its circuit breaker opens and stops
// the restarts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRunningWith } from '../support/cli.js';
import { commandManifest, createDaemonSandbox, fixtureManifest, indexOfEvent, metricValue, quickRestarts, startDaemon, type ProcessStatus } from '../support/daemon.js';
import { waitFor } from '../support/wait.js';

test('a child killed with SIGKILL is restarted: new pid, one restart, Exited then Started, Ready again', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const first = await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready');
  const oldPid = first.pid as number;
  assert.ok(oldPid > 0);
  assert.equal(first.restarts, 0);

  process.kill(oldPid, 'SIGKILL');
  const after = await daemon.waitFor('x', (s) => s.pid !== undefined && s.pid !== oldPid && s.phase === 'Ready', 'x to run again under a new pid');
  assert.equal(after.restarts, 1);
  assert.equal(after.up, true);
  assert.equal(after.ready, true);
  assert.equal(after.lastExit?.signal, 'SIGKILL');
  assert.equal(await isRunningWith(oldPid), false, 'the old instance is gone');
  assert.ok(await isRunningWith(after.pid as number), 'the new instance runs');

  const events = await daemon.events('x');
  const exited = indexOfEvent(events, 'Exited');
  assert.ok(exited >= 0, 'an Exited event');
  assert.match(events[exited]?.message ?? '', /SIGKILL/);
  const started = indexOfEvent(events, 'Started', exited + 1);
  assert.ok(started > exited, `Started after Exited: ${events.map((e) => e.type).join(', ')}`);
  assert.match(events[started]?.message ?? '', new RegExp(`pid ${after.pid}`));
});

test('repeated crashes wait longer each time, then the circuit breaker opens and nothing restarts', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const maxFailures = 4;
  await sandbox.write(
    'manifests/crasher.yaml',
    commandManifest(sandbox, 'crasher', ['sh', '-c', 'exit 1'], quickRestarts({ initialSeconds: 0.1, breaker: { maxFailures, windowSeconds: 600, cooldownSeconds: 600 } })),
  );
  // A short resync: the daemon looks at the process again and again while its breaker is open.
  const daemon = await startDaemon(sandbox, { args: ['--resync-seconds', '0.2'] });

  // Every status seen while it crash-loops: (failures, delay) pairs.
  const seen = new Map<number, number>();
  const open = await daemon.waitFor(
    'crasher',
    (s) => {
      if (s.backoff.failures > 0) {
        const previous = seen.get(s.backoff.failures);
        assert.ok(previous === undefined || previous === s.backoff.delayMs, `one delay per failure count: ${JSON.stringify(s.backoff)}`);
        seen.set(s.backoff.failures, s.backoff.delayMs);
      }
      return s.breaker.phase === 'open' && s.phase === 'CircuitOpen';
    },
    'the breaker to open (phase CircuitOpen)',
  );
  assert.deepEqual(
    [...seen].sort(([a], [b]) => a - b),
    [
      [1, 100],
      [2, 200],
      [3, 400],
      [4, 800],
    ],
    'each failure doubles the delay (jitter 0): 100, 200, 400, 800 ms',
  );
  assert.equal(open.phase, 'CircuitOpen');
  assert.equal(open.up, false);
  assert.equal(open.pid, undefined);
  assert.equal(open.breaker.failures, maxFailures);
  assert.ok(open.breaker.retryAt !== undefined && Date.parse(open.breaker.retryAt) > Date.now(), 'the trial is far away');

  const events = await daemon.events('crasher');
  const opened = indexOfEvent(events, 'BreakerOpened');
  assert.ok(opened >= 0, `a BreakerOpened event: ${events.map((e) => e.type).join(', ')}`);
  assert.match(events[opened]?.message ?? '', /closed → open \(TooManyFailures/);
  assert.equal(events.filter((e) => e.type === 'Started').length, maxFailures, 'one start per failure');
  assert.equal(events.filter((e) => e.type === 'Exited').length, maxFailures);

  // Nothing restarts while it is open: let the daemon reconcile it several more times.
  const requeues = async (): Promise<number> => metricValue(await daemon.metrics(), 'pm_reconcile_duration_seconds_count', { result: 'requeue' }) ?? 0;
  const before = await requeues();
  await waitFor(async () => (await requeues()) >= before + 3, { message: 'three more reconciles of the open breaker' });
  const still: ProcessStatus = await daemon.get('crasher');
  assert.equal(still.phase, 'CircuitOpen');
  assert.equal(still.pid, undefined);
  assert.equal(still.restarts, maxFailures - 1);
  assert.equal((await daemon.events('crasher')).filter((e) => e.type === 'Started').length, maxFailures, 'no start while open');
});
