// A process killed behind pm's back (kill -9 while no pm runs) is seen as exited, and the next
// apply starts it again. Its dependents keep running: starting a process that had merely exited
// does not propagate, not even to dependents that declare restart: true.
import assert from 'node:assert/strict';
import { readFile, unlink } from 'node:fs/promises';
import { test } from 'node:test';
import { createSandbox, httpReadiness, isRunningWith } from '../support/cli.js';
import { waitFor, waitForValue } from '../support/wait.js';
import { byName, planLine } from './stack.js';

test('apply restores a process killed with SIGKILL; its dependents without restart: true keep running', async (t) => {
  const sandbox = await createSandbox(t);
  const port = await sandbox.freePort();
  await sandbox.write(
    'manifests/api.yaml',
    sandbox.manifest({ name: 'api', program: 'http-server', env: { PORT: port }, ports: [{ name: 'http', port }], probes: httpReadiness('http') }),
  );
  await sandbox.write('manifests/worker.yaml', sandbox.manifest({ name: 'worker', program: 'idle', dependsOn: [{ name: 'api', condition: 'ready' }] }));
  await sandbox.write('manifests/reporter.yaml', sandbox.manifest({ name: 'reporter', program: 'idle', dependsOn: [{ name: 'api', condition: 'started' }] }));
  // Starting a process that merely exited does not propagate, even to restart: true dependents.
  await sandbox.write('manifests/follower.yaml', sandbox.manifest({ name: 'follower', program: 'idle', dependsOn: [{ name: 'api', restart: true }] }));
  const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
  const before = byName(await sandbox.get());
  const apiPid = before.get('api')?.pid;
  assert.ok(apiPid, 'api runs');

  process.kill(apiPid, 'SIGKILL');
  await waitFor(async () => (await sandbox.status('api')).state !== 'Running', { message: 'pm get to show api not running' });
  const crashed = await sandbox.status('api');
  assert.equal(crashed.pid, null);
  assert.equal(crashed.state, 'Exited', 'the exit happened while no pm watched: code unknown');

  const diff = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff.code, 1);
  assert.match(planLine(diff.stdout, 'start', 'api') ?? '', /exited while no pm was watching/, diff.stdout);

  const restore = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(restore.code, 0, `apply failed:\n${restore.stdout}\n${restore.stderr}`);
  assert.match(restore.stdout, /^Plan: 1 to start, 0 to restart, 0 to update in place, 0 to delete; 3 unchanged\.$/m);
  const after = byName(await sandbox.get());
  const api = after.get('api');
  assert.equal(api?.state, 'Running');
  assert.equal(api?.ready, true);
  assert.notEqual(api?.pid, apiPid);
  assert.ok(api?.pid && (await isRunningWith(api.pid)));
  assert.equal(api?.restarts, 1);
  for (const name of ['worker', 'reporter', 'follower']) {
    assert.equal(after.get(name)?.pid, before.get(name)?.pid, `${name} keeps its PID`);
    assert.equal(after.get(name)?.restarts, 0);
  }
  assert.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 200);
});

test(
  'after a crash of its leader, no process of the old instance outlives pm delete',
  async (t) => {
    const sandbox = await createSandbox(t);
    const grandchildFile = sandbox.path('grandchild.pid');
    await sandbox.write('manifests/forker.yaml', sandbox.manifest({ name: 'forker', program: 'idle', env: { GRANDCHILD_PID_FILE: grandchildFile } }));
    const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
    assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
    const leader = (await sandbox.status('forker')).pid as number;
    const grandchild = await waitForValue(async () => Number((await readFile(grandchildFile, 'utf8').catch(() => '')).trim()) || undefined, {
      message: 'the grandchild PID file',
    });
    await unlink(grandchildFile);

    // Only the leader dies; its grandchild stays in the old process group.
    process.kill(leader, 'SIGKILL');
    await waitFor(async () => (await sandbox.status('forker')).state !== 'Running', { message: 'pm get to show forker not running' });
    const restore = await sandbox.pm(['apply', '-f', 'manifests/']);
    assert.equal(restore.code, 0, `apply failed:\n${restore.stdout}\n${restore.stderr}`);
    const newGrandchild = await waitForValue(async () => Number((await readFile(grandchildFile, 'utf8').catch(() => '')).trim()) || undefined, {
      message: 'the new instance to write its grandchild PID',
    });

    const deleted = await sandbox.pm(['delete', 'forker']);
    assert.equal(deleted.code, 0, `delete failed:\n${deleted.stdout}\n${deleted.stderr}`);
    assert.equal(await isRunningWith(newGrandchild), false, 'the grandchild of the current instance has ended');
    assert.equal(await isRunningWith(grandchild), false, `the grandchild of the crashed instance (pid ${grandchild}) has ended`);
  },
);
