// What apply waits for and how it ends: oneshot jobs, processes that crash at once, an interrupted
// restart, and flags that would make pruning ambiguous.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parse } from 'yaml';
import { createSandbox, httpReadiness } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

test('a oneshot job is waited for: apply ends when it has exited 0, and a failed one fails the apply', async (t) => {
  const sandbox = await createSandbox(t);
  const goFile = sandbox.path('go');
  const countFile = sandbox.path('count');
  await sandbox.write(
    'manifests/job.yaml',
    sandbox.manifest({ name: 'job', program: 'job', type: 'oneshot', restartPolicy: 'on-failure', env: { WAIT_FILE: goFile, COUNT_FILE: countFile } }),
  );
  const apply = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '60s']);
  await waitFor(async () => (await readFile(countFile, 'utf8').catch(() => '')).includes('ran'), { message: 'the job to run' });
  // Still running: apply must still be waiting for it.
  assert.equal(apply.child.exitCode, null, 'apply waits while the oneshot runs');
  await sandbox.write('go', '');
  const done = await apply.result;
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stdout, /job\s+start\s+completed/);
  assert.equal((await sandbox.status('job')).state, 'Completed');

  const again = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(again.code, 0, `a completed oneshot needs nothing:\n${again.stdout}`);

  await sandbox.write('manifests/job.yaml', sandbox.manifest({ name: 'job', program: 'job', type: 'oneshot', restartPolicy: 'never', env: { EXIT_CODE: 3 } }));
  const failed = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /job: failed — exited with code 3/);
});

test('a oneshot with restartPolicy always, or with a readiness probe, is refused', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/a.yaml', sandbox.manifest({ name: 'a', program: 'job', type: 'oneshot' }));
  await sandbox.write('manifests/b.yaml', sandbox.manifest({ name: 'b', program: 'job', type: 'oneshot', restartPolicy: 'never', probes: httpReadiness(1) }));
  const result = await sandbox.pm(['validate', '-f', 'manifests/']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /manifests\/a\.yaml:\d+:\d+: a oneshot process with restartPolicy always/);
  assert.match(result.stderr, /manifests\/b\.yaml:\d+:\d+: a oneshot process has no readiness to probe/);
});

test('a service that exits at once is not reported as started', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/crash.yaml', sandbox.manifest({ name: 'crash', program: 'job', env: { EXIT_CODE: 1 }, minReadySeconds: 2 }));
  const result = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(result.code, 1, result.stdout);
  assert.match(result.stderr, /crash: failed — exited with code 1; see pm logs crash/);
});

test('Ctrl-C after a restart has stopped a process starts it again instead of leaving it down', async (t) => {
  const sandbox = await createSandbox(t);
  const port = await sandbox.freePort();
  // gate is running but never ready (no READY file), so api's restart waits for it forever.
  await sandbox.write(
    'manifests/gate.yaml',
    sandbox.manifest({ name: 'gate', program: 'http-server', env: { PORT: port, READY_FILE: sandbox.path('ready') }, probes: httpReadiness(port) }),
  );
  await sandbox.write('manifests/api.yaml', sandbox.manifest({ name: 'api', program: 'idle' }));
  const first = await sandbox.pm(['apply', '-f', 'manifests/', '--timeout', '2s']);
  assert.equal(first.code, 1, 'gate never gets ready');
  assert.equal((await sandbox.status('api')).state, 'Running');
  const oldPid = (await sandbox.status('api')).pid;

  await sandbox.write('manifests/api.yaml', sandbox.manifest({ name: 'api', program: 'idle', args: ['v2'], dependsOn: [{ name: 'gate', condition: 'ready' }] }));
  const apply = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '60s']);
  await waitFor(() => /api: waiting/.test(apply.stdout()), { message: 'api to wait for gate' });
  apply.child.kill('SIGINT');
  const ended = await apply.result;
  assert.equal(ended.code, 130, ended.stderr);
  const api = await sandbox.status('api');
  assert.equal(api.state, 'Running', 'api runs again');
  assert.notEqual(api.pid, oldPid);
});

test('-l without --prune, and --prune from stdin without -l, are refused', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/a.yaml', sandbox.manifest({ name: 'a', program: 'idle' }));
  const selectorOnly = await sandbox.pm(['apply', '-f', 'manifests/', '-l', 'tier=web']);
  assert.equal(selectorOnly.code, 2);
  assert.match(selectorOnly.stderr, /-l selects what --prune may delete/);
  const badSelector = await sandbox.pm(['diff', '-f', 'manifests/', '--prune', '-l', 'tier!=web']);
  assert.equal(badSelector.code, 2);
  const stdinPrune = await sandbox.pm(['apply', '-f', '-', '--prune'], { input: sandbox.manifest({ name: 'a', program: 'idle' }) });
  assert.equal(stdinPrune.code, 2);
  assert.match(stdinPrune.stderr, /--prune with -f - needs -l/);
  assert.deepEqual(await sandbox.get(), [], 'nothing was started');
});

test('pm get -o yaml shows the last-applied manifest, like kubectl', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/a.yaml', sandbox.manifest({ name: 'a', program: 'idle', labels: { tier: 'web' } }));
  assert.equal((await sandbox.pm(['apply', '-f', 'manifests/'])).code, 0);
  const result = await sandbox.pm(['get', 'a', '-o', 'yaml']);
  const status = parse(result.stdout) as { state: string; manifest: { metadata: { labels: Record<string, string> }; spec: { stop: { signal: string } } } };
  assert.equal(status.state, 'Running');
  assert.equal(status.manifest.metadata.labels.tier, 'web');
  assert.equal(status.manifest.spec.stop.signal, 'SIGTERM', 'defaults are shown');
});
