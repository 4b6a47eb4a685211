// pm apply on a fresh state directory starts a four-process stack in dependency order and waits
// for it; a second apply (and pm diff) finds nothing to do and touches nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSandbox, isRunningWith } from '../support/cli.js';
import { byName, jobRuns, pids, planLine, writeStack } from './stack.js';

test('apply converges a stack in dependency order; applying again changes nothing', async (t) => {
  const sandbox = await createSandbox(t);
  const stack = await writeStack(sandbox);

  const first = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(first.code, 0, `apply failed:\n${first.stdout}\n${first.stderr}`);
  assert.match(first.stdout, /^Plan: 4 to start, 0 to restart, 0 to update in place, 0 to delete; 0 unchanged\.$/m);
  for (const name of ['job', 'api', 'worker', 'other']) {
    assert.ok(planLine(first.stdout, 'start', name), `plan line "+ start ${name}" in:\n${first.stdout}`);
  }
  assert.match(first.stdout, /^\s+start\s+1: job, other\s+2: api\s+3: worker$/m);
  assert.match(first.stdout, /^job\s+start\s+completed \(exited with code 0\)$/m);
  assert.match(first.stdout, /^api\s+start\s+ready \(pid \d+\)$/m);
  assert.match(first.stdout, /^worker\s+start\s+ready \(pid \d+\)$/m);
  assert.match(first.stdout, /^other\s+start\s+ready \(pid \d+\)$/m);
  assert.match(first.stdout, /^apply: done in \d+(\.\d+)?s$/m);
  assert.equal(first.stderr, '');

  const statuses = byName(await sandbox.get());
  assert.deepEqual([...statuses.keys()].sort(), ['api', 'job', 'other', 'worker']);
  for (const name of ['api', 'worker', 'other']) {
    const status = statuses.get(name);
    assert.equal(status?.state, 'Running', `${name}: ${JSON.stringify(status)}`);
    // worker declares no readiness probe: get's help says READY is "-" then, its code says yes.
    if (name === 'worker') assert.notEqual(status?.ready, false, `${name}: ${JSON.stringify(status)}`);
    else assert.equal(status?.ready, true, `${name}: ${JSON.stringify(status)}`);
    assert.equal(status?.restarts, 0);
    assert.ok(status?.pid !== null && status?.pid !== undefined && (await isRunningWith(status.pid)), `${name} runs`);
  }
  assert.equal(statuses.get('job')?.state, 'Completed');
  assert.equal(statuses.get('job')?.lastExit, 'exited with code 0');
  assert.equal(statuses.get('job')?.pid, null);
  assert.equal(await jobRuns(stack), 1);
  // The API really serves on its port.
  assert.equal((await fetch(`http://127.0.0.1:${stack.apiPort}/ready`)).status, 200);

  const before = pids([...statuses.values()]);
  const second = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(second.code, 0, `second apply failed:\n${second.stdout}\n${second.stderr}`);
  assert.match(second.stdout, /^No changes: 0 to start, 0 to restart, 0 to update in place, 0 to delete; 4 unchanged\.$/m);
  assert.deepEqual(pids(await sandbox.get()), before);
  assert.equal(await jobRuns(stack), 1, 'the completed job is not run again');

  const diff = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff.code, 0, `diff:\n${diff.stdout}\n${diff.stderr}`);
  assert.match(diff.stdout, /^No changes:/m);
});
