// Readiness pushed by the process (probes.startup.notify): a line on a descriptor pm hands it.
// The probes below have a period of an hour, so a process that becomes ready within the test can
// only have been seen through the notification, never through a periodic check.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { programPath, type Sandbox } from '../support/cli.js';
import { commandManifest, createDaemonSandbox, indexOfEvent, quickRestarts, startDaemon } from '../support/daemon.js';
import { waitForValue } from '../support/wait.js';

const HOUR = 3600;

/**
 * Waits for `go` to exist, writes PM_READY_FD's value to `seen`, says READY=1 on that descriptor
 * (left open: pm must not need it closed), and runs the idle fixture (same PID: exec) so the sandbox can find it.
 */
function notifiesWhen(go: string, seen: string): string[] {
  const script = 'while [ ! -e "$1" ]; do sleep 0.02; done; printf %s "$PM_READY_FD" > "$2"; echo READY=1 >&$PM_READY_FD; shift 2; exec "$@"';
  return ['sh', '-c', script, 'notify', go, seen, process.execPath, programPath('idle')];
}

function notifyManifest(sandbox: Sandbox, name: string, go: string, probe: Record<string, unknown> = {}, notify: Record<string, unknown> = {}): string {
  return commandManifest(sandbox, name, notifiesWhen(go, sandbox.path(`${name}.fd`)), {
    ...quickRestarts(),
    probes: { startup: { notify, periodSeconds: HOUR, failureThreshold: 1, ...probe } },
  });
}

test('notify: not ready until the process says so, then Ready at once, and its dependent starts only then', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const go = sandbox.path('db.go');
  await sandbox.write('manifests/db.yaml', notifyManifest(sandbox, 'db', go));
  await sandbox.write('manifests/app.yaml', commandManifest(sandbox, 'app', [process.execPath, programPath('idle')], { ...quickRestarts(), dependsOn: [{ name: 'db', condition: 'ready' }] }));
  const daemon = await startDaemon(sandbox);

  const running = await daemon.waitFor('db', (s) => s.pid !== undefined && s.pid !== null, 'db to run');
  assert.equal(running.ready, false, 'running but not notified: not ready');
  const app = await daemon.waitFor('app', (s) => s.phase === 'Waiting', 'app to wait for db');
  assert.match(app.detail, /waiting for db \(ready\)/);

  await writeFile(go, '');
  const ready = await daemon.waitFor('db', (s) => s.phase === 'Ready', 'db to be Ready (only the notification can make it so within the test)');
  assert.equal(ready.pid, running.pid, 'the same run: no restart');
  assert.equal(await readFile(sandbox.path('db.fd'), 'utf8'), '3', 'PM_READY_FD names the descriptor');
  await daemon.waitFor('app', (s) => s.phase === 'Ready', 'app to start once db is ready');
  const events = await daemon.events();
  const dbReady = indexOfEvent(events, 'Ready', 0, (e) => e.process === 'db');
  const appStarted = indexOfEvent(events, 'Started', 0, (e) => e.process === 'app');
  assert.ok(dbReady >= 0 && appStarted > dbReady, `app started after db was ready: ${events.map((e) => `${e.process}:${e.type}`).join(', ')}`);
});

test('notify: no line within failureThreshold × periodSeconds is a failed startup, and the process is restarted', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const go = sandbox.path('slow.go');
  await sandbox.write('manifests/slow.yaml', notifyManifest(sandbox, 'slow', go, { periodSeconds: 0.2, failureThreshold: 2 }));
  const daemon = await startDaemon(sandbox);

  const failed = await daemon.waitForEvent('slow', (e) => e.type === 'StartupFailed', 'a StartupFailed event');
  assert.match(failed.message, /startup probe failed 2 times: not notified ready yet \(descriptor 3\)/);
  await daemon.waitForEvent('slow', (e, i, all) => e.type === 'Started' && i > all.findIndex((x) => x.type === 'StartupFailed'), 'a start after the failed startup');

  await writeFile(go, '');
  const ready = await daemon.waitFor('slow', (s) => s.phase === 'Ready', 'slow to be Ready once it notifies');
  assert.ok(ready.restarts >= 1);
});

test('notify: a daemon restarted before or after the line still sees it, without restarting the process', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const early = sandbox.path('early.go');
  const late = sandbox.path('late.go');
  await sandbox.write('manifests/early.yaml', notifyManifest(sandbox, 'early', early));
  await sandbox.write('manifests/late.yaml', notifyManifest(sandbox, 'late', late, {}, { fd: 5 }));
  const first = await startDaemon(sandbox);
  await writeFile(early, '');
  const earlyReady = await first.waitFor('early', (s) => s.phase === 'Ready', 'early to be Ready');
  const lateRunning = await first.waitFor('late', (s) => s.pid !== undefined && s.pid !== null, 'late to run');
  first.kill('SIGKILL');
  await first.stopped.catch(() => undefined);

  const second = await startDaemon(sandbox);
  const adopted = await second.waitFor('early', (s) => s.phase === 'Ready', 'early, notified under the first daemon, Ready under the second');
  assert.equal(adopted.pid, earlyReady.pid);
  assert.equal((await second.get('late')).ready, false);
  await writeFile(late, '');
  const lateReady = await second.waitFor('late', (s) => s.phase === 'Ready', 'late, notifying under the second daemon, Ready');
  assert.equal(lateReady.pid, lateRunning.pid, 'the same run: its descriptor outlived the daemon that gave it');
  assert.equal(await readFile(sandbox.path('late.fd'), 'utf8'), '5');
});

test('notify with pm apply: the apply waits for the line before it starts the dependent', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const go = sandbox.path('db.go');
  await sandbox.write('manifests/db.yaml', notifyManifest(sandbox, 'db', go));
  await sandbox.write('manifests/app.yaml', commandManifest(sandbox, 'app', [process.execPath, programPath('idle')], { minReadySeconds: 0, dependsOn: [{ name: 'db', condition: 'ready' }] }));
  const apply = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '60s']);
  await waitForValue(() => (/^db: running/m.test(apply.stdout()) ? true : undefined), { message: 'the apply to start db' });
  assert.doesNotMatch(apply.stdout(), /^app: (starting|running)/m, 'app waits for db');
  assert.match(apply.stdout(), /^app: waiting \(for db \(ready\)\)/m);
  await writeFile(go, '');
  const result = await apply.result;
  assert.equal(result.code, 0, `apply converges once db notified:\n${apply.stdout()}\n${apply.stderr()}`);
  const order = result.stdout.split('\n').filter((line) => /^(db: ready|app: starting)/.test(line));
  assert.deepEqual(order.map((line) => line.split(' (')[0]), ['db: ready', 'app: starting']);
});
