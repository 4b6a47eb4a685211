// The daemon's HTTP side: the API refuses requests without the right token while /healthz and
// /metrics stay open, metrics report what happened, and pause / resume / restart through the API
// act on the process. Also a dependency on a oneshot job: the dependent starts once the job completed.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { isRunningWith } from '../support/cli.js';
import { createDaemonSandbox, fixtureManifest, indexOfEvent, metricValue, quickRestarts, startDaemon } from '../support/daemon.js';
import { waitFor } from '../support/wait.js';

test('the API refuses a missing or wrong token with 401; /healthz and /metrics need none', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid;

  const wrong = `${daemon.token.slice(0, -1)}${daemon.token.endsWith('0') ? '1' : '0'}`;
  for (const token of [null, wrong, '']) {
    const who = token === null ? 'no token' : token === '' ? 'an empty token' : 'a wrong token';
    const list = await daemon.api<{ error: { code: string } }>('GET', '/api/v1/processes', undefined, { token });
    assert.equal(list.status, 401, `GET /api/v1/processes with ${who}`);
    assert.equal(list.body.error.code, 'E_AUTH');
    const restart = await daemon.api<{ error: { code: string } }>('POST', '/api/v1/processes/x/restart', undefined, { token });
    assert.equal(restart.status, 401, `POST restart with ${who}`);
    assert.equal(restart.body.error.code, 'E_AUTH');
  }
  // A refused restart did nothing: the next, accepted one is the first restart.
  assert.equal((await daemon.api('POST', '/api/v1/processes/x/restart')).status, 200);
  const restarted = await daemon.waitFor('x', (s) => s.pid !== pid && s.phase === 'Ready', 'x restarted by the authorised request');
  assert.equal(restarted.restarts, 1, 'only the authorised restart happened');

  const health = await daemon.api<{ status: string; pid: number }>('GET', '/healthz', undefined, { token: null });
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  assert.equal(health.body.pid, daemon.pid);
  const metrics = await daemon.api<string>('GET', '/metrics', undefined, { token: null });
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^pm_process_up\{process="x"\} 1$/m);
});

test('metrics match what happened: one SIGKILL → restarts_total 1, up 1, state Ready, actions counted', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid as number;
  let text = await daemon.metrics();
  assert.equal(metricValue(text, 'pm_process_restarts_total', { process: 'x' }), 0);
  assert.equal(metricValue(text, 'pm_actions_total', { kind: 'start', result: 'ok' }), 1);
  assert.equal(metricValue(text, 'pm_actions_total', { kind: 'restart', result: 'ok' }), 0);

  process.kill(pid, 'SIGKILL');
  await daemon.waitFor('x', (s) => s.pid !== undefined && s.pid !== pid && s.phase === 'Ready', 'x restarted');
  // The restart's reconcile is counted when it returns, a moment after the status shows Ready.
  await waitFor(async () => (metricValue((text = await daemon.metrics()), 'pm_reconcile_duration_seconds_count', { result: 'ok' }) ?? 0) >= 2, { message: 'the restart reconcile counted' });
  const x = (labels: Record<string, string> = {}) => ({ process: 'x', ...labels });
  assert.equal(metricValue(text, 'pm_process_restarts_total', x()), 1);
  assert.equal(metricValue(text, 'pm_process_up', x()), 1);
  assert.equal(metricValue(text, 'pm_process_ready', x()), 1);
  assert.equal(metricValue(text, 'pm_process_state', x({ state: 'Ready' })), 1);
  for (const state of ['Failed', 'BackOff', 'CircuitOpen', 'Starting']) assert.equal(metricValue(text, 'pm_process_state', x({ state })), 0, state);
  assert.equal(metricValue(text, 'pm_process_breaker_state', x({ state: 'closed' })), 1);
  assert.equal(metricValue(text, 'pm_process_backoff_seconds', x()), 0.05, 'one failure counted: the initial delay');
  assert.equal(metricValue(text, 'pm_actions_total', { kind: 'start', result: 'ok' }), 1);
  assert.equal(metricValue(text, 'pm_actions_total', { kind: 'restart', result: 'ok' }), 1);
  assert.equal(metricValue(text, 'pm_actions_total', { kind: 'start', result: 'failed' }), 0);
  assert.equal(metricValue(text, 'pm_manifest_reloads_total', { result: 'accepted' }), 1);
});

test('pause holds the process stopped and resume starts it again; restart through the API gives a new pid', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  // A short resync: the daemon keeps looking at the paused process.
  const daemon = await startDaemon(sandbox, { args: ['--resync-seconds', '0.2'] });
  const first = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid as number;

  assert.equal((await daemon.control('pause', 'x')).changed, true);
  const paused = await daemon.waitFor('x', (s) => s.phase === 'Paused', 'x to be Paused');
  assert.equal(paused.paused, true);
  assert.equal(paused.up, false);
  assert.equal(paused.pid, undefined);
  assert.equal(await isRunningWith(first), false, 'the process is stopped');
  // Not restarted while paused, however often the daemon looks.
  const reconciles = async (): Promise<number> => metricValue(await daemon.metrics(), 'pm_reconcile_duration_seconds_count', { result: 'ok' }) ?? 0;
  const seen = await reconciles();
  await waitFor(async () => (await reconciles()) >= seen + 3, { message: 'three more reconciles while paused' });
  assert.equal((await daemon.get('x')).phase, 'Paused');
  assert.equal((await daemon.events('x')).filter((e) => e.type === 'Started').length, 1, 'no start while paused');

  assert.equal((await daemon.control('resume', 'x')).changed, true);
  const resumed = await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x running again after resume');
  assert.notEqual(resumed.pid, first);
  assert.equal(resumed.paused, false);
  const types = (await daemon.events('x')).map((e) => e.type);
  assert.ok(indexOfEvent(await daemon.events('x'), 'Started', types.indexOf('Resumed')) > types.indexOf('Resumed'), `Started after Resumed: ${types.join(', ')}`);

  const restart = await daemon.control('restart', 'x');
  assert.equal(restart.changed, true);
  const restarted = await daemon.waitFor('x', (s) => s.pid !== resumed.pid && s.phase === 'Ready', 'x restarted through the API');
  assert.equal(await isRunningWith(resumed.pid as number), false);
  const events = await daemon.events('x');
  const restarting = indexOfEvent(events, 'Restarting');
  assert.ok(restarting >= 0, `a Restarting event: ${events.map((e) => e.type).join(', ')}`);
  assert.match(events[restarting]?.message ?? '', /restart/i);
  const started = indexOfEvent(events, 'Started', restarting + 1);
  assert.ok(started > restarting);
  assert.match(events[started]?.message ?? '', new RegExp(`pid ${restarted.pid}`));
  assert.equal(restarted.restarts, 2, 'resume and restart each count');
});

test('a restart through the API cascades to the dependents that declare restart: true, and to no others', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const idle = (name: string, dependsOn?: { name: string; restart?: boolean }[]) =>
    sandbox.write(`manifests/${name}.yaml`, fixtureManifest(sandbox, { name, program: 'idle', ...(dependsOn && { dependsOn }) }, quickRestarts()));
  await idle('db');
  await idle('follower', [{ name: 'db', restart: true }]);
  await idle('bystander', [{ name: 'db' }]);
  const daemon = await startDaemon(sandbox);
  const pids = new Map<string, number | undefined>();
  for (const name of ['db', 'follower', 'bystander']) pids.set(name, (await daemon.waitFor(name, (s) => s.phase === 'Ready', `${name} to be Ready`)).pid);

  await daemon.control('restart', 'db');
  const db = await daemon.waitFor('db', (s) => s.pid !== pids.get('db') && s.phase === 'Ready', 'db restarted');
  const follower = await daemon.waitFor('follower', (s) => s.pid !== pids.get('follower') && s.phase === 'Ready', 'follower restarted with db');
  assert.equal(db.restarts, 1);
  assert.equal(follower.restarts, 1);
  const restarting = (await daemon.events('follower')).find((e) => e.type === 'Restarting');
  assert.match(restarting?.message ?? '', /dependency db restarts/);
  const bystander = await daemon.get('bystander');
  assert.equal(bystander.pid, pids.get('bystander'), 'a dependent without restart: true keeps running');
  assert.equal(bystander.restarts, 0);
});

test('a process that depends on a oneshot job (condition completed) starts only once the job completed', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const release = sandbox.path('release');
  await sandbox.write(
    'manifests/job.yaml',
    fixtureManifest(sandbox, { name: 'job', program: 'job', type: 'oneshot', restartPolicy: 'on-failure', env: { WAIT_FILE: release } }, { minReadySeconds: 0 }),
  );
  await sandbox.write('manifests/b.yaml', fixtureManifest(sandbox, { name: 'b', program: 'idle', dependsOn: [{ name: 'job', condition: 'completed' }] }, quickRestarts()));
  const daemon = await startDaemon(sandbox);

  const job = await daemon.waitFor('job', (s) => s.up, 'job to be running');
  const waiting = await daemon.waitFor('b', (s) => s.phase === 'Waiting', 'b to wait for job');
  assert.equal(waiting.up, false);
  assert.match(waiting.detail, /job \(completed\)/);

  await writeFile(release, '');
  const b = await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b to start after job completed');
  const done = await daemon.get('job');
  assert.equal(done.phase, 'Completed');
  assert.equal(done.lastExit?.code, 0);
  assert.equal(done.restarts, 0, 'the job ran once');
  assert.ok(b.pid !== undefined && b.pid !== job.pid);

  const completed = (await daemon.events('job')).find((e) => e.type === 'Completed');
  const started = (await daemon.events('b')).filter((e) => e.type === 'Started');
  assert.ok(completed, 'job has a Completed event');
  assert.equal(started.length, 1, 'b started once');
  assert.ok((started[0]?.time ?? '') >= completed.time, `b started (${started[0]?.time}) after job completed (${completed.time})`);
});
