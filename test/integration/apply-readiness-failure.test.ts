// An apply that cannot converge: the readiness probe of api targets a port nothing listens on.
// pm apply --timeout gives up, names api with its last probe result and the dependent that waited,
// and releases the state lock.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSandbox, httpReadiness, isRunningWith } from '../support/cli.js';
import { waitFor } from '../support/wait.js';
import { byName } from './stack.js';

test('apply --timeout fails naming the unready process, its probe error and the waiting dependent', async (t) => {
  const sandbox = await createSandbox(t);
  const deadPort = await sandbox.freePort();
  await sandbox.write('manifests/api.yaml', sandbox.manifest({ name: 'api', program: 'idle', probes: httpReadiness(deadPort), stop: { gracePeriodSeconds: 1 } }));
  await sandbox.write(
    'manifests/worker.yaml',
    sandbox.manifest({ name: 'worker', program: 'idle', dependsOn: [{ name: 'api', condition: 'ready' }], stop: { gracePeriodSeconds: 1 } }),
  );

  const result = await sandbox.pm(['apply', '-f', 'manifests/', '--timeout', '3s']);
  assert.equal(result.code, 1, `apply should fail:\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stderr, /apply did not converge within 3s/);
  const apiLine = result.stderr.split('\n').find((line) => /^\s+api: /.test(line));
  assert.ok(apiLine, `stderr names api:\n${result.stderr}`);
  assert.match(apiLine, /readiness/);
  assert.match(apiLine, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${deadPort}`));
  const workerLine = result.stderr.split('\n').find((line) => /^\s+worker: /.test(line));
  assert.ok(workerLine, `stderr names worker:\n${result.stderr}`);
  assert.match(workerLine, /waiting/);
  assert.match(workerLine, /api \(ready\)/);

  assert.equal(existsSync(join(sandbox.stateDir, 'lock')), false, 'the lock is released');
  const statuses = byName(await sandbox.get());
  // api was started and keeps running (processes outlive the apply); worker never started.
  const api = statuses.get('api');
  assert.equal(api?.state, 'Running');
  assert.equal(api?.ready, false);
  assert.ok(api?.pid && (await isRunningWith(api.pid)));
  const worker = statuses.get('worker');
  assert.ok(worker === undefined || worker.state === 'NotStarted', `worker was not started: ${JSON.stringify(worker)}`);
});

test(
  'a job left running by an interrupted apply: the next apply stops waiting once the job has exited',
  async (t) => {
    const sandbox = await createSandbox(t);
    const goFile = sandbox.path('go');
    await sandbox.write('manifests/job.yaml', sandbox.manifest({ name: 'job', program: 'job', env: { WAIT_FILE: goFile }, restartPolicy: 'on-failure', type: 'oneshot' }));
    await sandbox.write('manifests/api.yaml', sandbox.manifest({ name: 'api', program: 'idle', dependsOn: [{ name: 'job', condition: 'completed' }] }));

    // 1. An apply is interrupted while the job runs: the job keeps running, with no pm as its parent.
    const first = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '10m']);
    await waitFor(async () => (await sandbox.get()).some((p) => p.name === 'job' && p.state === 'Running'), {
      message: 'the first apply to start the job',
      timeoutMs: 20_000,
    });
    first.child.kill('SIGINT');
    assert.equal((await first.result).code, 130);
    assert.equal((await sandbox.status('job')).state, 'Running');

    // 2. The next apply waits for it; the job then finishes. The timeout only bounds the test: the
    //    apply must end because the job ended, long before it, not because of it.
    const second = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '5s']);
    // Its plan is printed once it has observed the job running.
    await waitFor(() => /^Plan: 1 to start/m.test(second.stdout()), { message: 'the second apply to plan', timeoutMs: 20_000 });
    await writeFile(goFile, '');
    await waitFor(async () => (await sandbox.status('job')).state !== 'Running', { message: 'the job to end' });

    const ended = await second.result;
    assert.doesNotMatch(ended.stderr, /did not converge within/, 'the apply noticed that the job ended');
    assert.equal(ended.code, 1, `the job's exit code is unknown to this apply, so api cannot start:\n${ended.stdout}\n${ended.stderr}`);
    assert.match(ended.stderr, /api: .*job .*exit/);

    // 3. The apply after that runs the job again, since api needs it completed, and then starts api.
    const third = await sandbox.pm(['apply', '-f', 'manifests/', '--timeout', '30s']);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stdout, /start\s+job\s+api needs it completed/);
    assert.equal((await sandbox.status('job')).state, 'Completed');
    assert.equal((await sandbox.status('api')).state, 'Running');
  },
);
