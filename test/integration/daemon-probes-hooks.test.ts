// What the daemon does beyond exits: a failing liveness probe restarts the process, a failing
// preStart hook fails the start (reported with its output, counted for backoff), and a restart
// script replaces stop-and-start when a restart is asked for.
import assert from 'node:assert/strict';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { isRunningWith } from '../support/cli.js';
import { createDaemonSandbox, fixtureManifest, indexOfEvent, quickRestarts, startDaemon } from '../support/daemon.js';
import { waitForValue } from '../support/wait.js';

test('a failing liveness probe restarts the process: LivenessFailed, then a new pid', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const port = await sandbox.freePort();
  const healthy = sandbox.path('healthy');
  await writeFile(healthy, '');
  // http-server answers GET /ready with 503 while READY_FILE is missing: the liveness path here.
  // The startup probe holds liveness off until the server listens.
  await sandbox.write(
    'manifests/web.yaml',
    fixtureManifest(
      sandbox,
      { name: 'web', program: 'http-server', env: { PORT: port, READY_FILE: healthy }, ports: [{ name: 'http', port }] },
      {
        ...quickRestarts(),
        probes: {
          startup: { tcp: { port: 'http' }, periodSeconds: 0.05, failureThreshold: 200 },
          liveness: { http: { port: 'http', path: '/ready' }, periodSeconds: 0.1, failureThreshold: 2 },
        },
      },
    ),
  );
  const daemon = await startDaemon(sandbox);
  const first = await daemon.waitFor('web', (s) => s.phase === 'Ready', 'web to be Ready');
  const oldPid = first.pid as number;
  assert.equal(indexOfEvent(await daemon.events('web'), 'LivenessFailed'), -1, 'healthy so far');

  await unlink(healthy);
  const failed = await daemon.waitForEvent('web', (e) => e.type === 'LivenessFailed', 'a LivenessFailed event');
  assert.match(failed.message, /liveness probe failed 2 times: .*503/);
  const replacement = await daemon.waitForEvent(
    'web',
    (e, i, all) => e.type === 'Started' && i > all.findIndex((x) => x.type === 'LivenessFailed'),
    'a start after the liveness failure',
  );
  assert.doesNotMatch(replacement.message, new RegExp(`pid ${oldPid}\\b`));

  // Healthy again: it settles under a new pid.
  await writeFile(healthy, '');
  const after = await daemon.waitFor('web', (s) => s.phase === 'Ready' && s.pid !== oldPid, 'web Ready under a new pid');
  assert.ok(after.restarts >= 1);
  assert.equal(await isRunningWith(oldPid), false, 'the unhealthy instance was stopped');
  const events = await daemon.events('web');
  const liveness = indexOfEvent(events, 'LivenessFailed');
  const exited = indexOfEvent(events, 'Exited', liveness + 1);
  assert.ok(exited > liveness, `the stop it caused counts as an exit: ${events.map((e) => e.type).join(', ')}`);
  assert.ok(indexOfEvent(events, 'Started', exited + 1) > exited);
});

test('a failing preStart hook fails the start: HookFailed and StartFailed with its output, a counted failure', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write(
    'manifests/x.yaml',
    fixtureManifest(
      sandbox,
      { name: 'x', program: 'idle' },
      {
        // A long first delay: exactly one failed start during the test.
        ...quickRestarts({ initialSeconds: 60 }),
        hooks: { preStart: { command: ['sh', '-c', 'echo "the database is not there"; exit 1'] } },
      },
    ),
  );
  const daemon = await startDaemon(sandbox);
  const status = await daemon.waitFor('x', (s) => s.backoff.failures > 0 && s.phase === 'BackOff', 'the failed start to be counted');
  assert.equal(status.backoff.failures, 1);
  assert.equal(status.backoff.delayMs, 60_000);
  assert.equal(status.breaker.failures, 1);
  assert.equal(status.up, false);

  const events = await daemon.events('x');
  const hook = indexOfEvent(events, 'HookFailed');
  assert.ok(hook >= 0, `a HookFailed event: ${events.map((e) => e.type).join(', ')}`);
  assert.match(events[hook]?.message ?? '', /preStart hook exited with code 1 .*: the database is not there/);
  const startFailed = indexOfEvent(events, 'StartFailed', hook + 1);
  assert.ok(startFailed > hook, 'StartFailed after HookFailed');
  assert.match(events[startFailed]?.message ?? '', /the database is not there/);
  assert.equal(indexOfEvent(events, 'Started'), -1, 'the process never started');
});

test('restartPolicy.strategy script: a requested restart runs the script with PM_REASON and PM_PROCESS; the pid stays', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const out = sandbox.path('script-ran');
  await sandbox.write(
    'manifests/x.yaml',
    fixtureManifest(
      sandbox,
      { name: 'x', program: 'idle' },
      {
        ...quickRestarts(),
        restartPolicy: { strategy: 'script', script: { command: ['sh', '-c', `printf '%s\\n%s\\n' "$PM_REASON" "$PM_PROCESS" > '${out}'`] } },
      },
    ),
  );
  const daemon = await startDaemon(sandbox);
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid;

  assert.equal((await daemon.control('restart', 'x')).changed, true);
  const ran = await daemon.waitForEvent('x', (e) => e.type === 'ScriptRan', 'the restart script to run');
  assert.match(ran.message, /restart requested at /);
  const written = await waitForValue(async () => (await readFile(out, 'utf8').catch(() => '')) || undefined, { message: 'the script output file' });
  const [reason, name] = written.split('\n');
  assert.match(reason ?? '', /^restart requested at \d{4}-\d\d-\d\dT/);
  assert.equal(name, 'x');

  // The script counts as a restart (the count can trail the ScriptRan event by a moment).
  const after = await daemon.waitFor('x', (s) => s.restarts === 1, 'the script to count as a restart');
  assert.equal(after.pid, pid, 'the process keeps running as it was');
  assert.equal(after.phase, 'Ready');
  const types = (await daemon.events('x')).map((e) => e.type);
  assert.ok(!types.includes('Restarting') && !types.includes('Stopped'), `no stop: ${types.join(', ')}`);
  assert.equal(types.filter((ty) => ty === 'Started').length, 1);
});
