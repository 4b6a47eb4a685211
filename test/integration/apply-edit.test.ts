// Editing manifests: a change to what shapes a process (spec.exec) restarts it and the dependents
// that declare restart: true, nothing else; a change only pm uses (labels, probe timing) is
// recorded without restarting anything.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSandbox, isRunningWith } from '../support/cli.js';
import { byName, jobRuns, pids, planLine, writeStack } from './stack.js';

test('an env change restarts api and its restart: true dependent only; a label/probe change restarts nothing', async (t) => {
  const sandbox = await createSandbox(t);
  const stack = await writeStack(sandbox, { apiEnv: { GREETING: 'hello' } });
  const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
  const before = pids(await sandbox.get());
  const jobStartedAt = (await sandbox.record('job')).startedAt;

  // 1. spec.exec.env of api.
  await writeStack(sandbox, { apiEnv: { GREETING: 'bonjour' } }, stack);
  const diff = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff.code, 1, `diff should report changes:\n${diff.stdout}\n${diff.stderr}`);
  assert.match(diff.stdout, /spec\.exec\.env\.GREETING/);
  assert.match(diff.stdout, /~ spec\.exec\.env\.GREETING: "hello" → "bonjour"/);
  assert.ok(planLine(diff.stdout, 'restart', 'api'), `api restarts:\n${diff.stdout}`);
  assert.match(planLine(diff.stdout, 'restart', 'worker') ?? '', /dependency api restarts/, `worker restarts with api:\n${diff.stdout}`);
  assert.equal(planLine(diff.stdout, '\\w+', 'other'), undefined, `other is not in the plan:\n${diff.stdout}`);
  assert.equal(planLine(diff.stdout, '\\w+', 'job'), undefined, `job is not in the plan:\n${diff.stdout}`);
  assert.match(diff.stdout, /^Plan: 0 to start, 2 to restart, 0 to update in place, 0 to delete; 2 unchanged\.$/m);

  const apply = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(apply.code, 0, `apply failed:\n${apply.stdout}\n${apply.stderr}`);
  const after = byName(await sandbox.get());
  for (const name of ['api', 'worker']) {
    const status = after.get(name);
    assert.equal(status?.state, 'Running', `${name}: ${JSON.stringify(status)}`);
    assert.notEqual(status?.pid, before[name], `${name} has a new PID`);
    assert.equal(await isRunningWith(before[name] as number), false, `the old ${name} (pid ${before[name]}) has ended`);
    assert.equal(status?.restarts, 1);
  }
  assert.equal(after.get('other')?.pid, before.other, 'other keeps its PID');
  assert.equal(after.get('job')?.state, 'Completed');
  assert.equal((await sandbox.record('job')).startedAt, jobStartedAt, 'the job was not started again');
  assert.equal(await jobRuns(stack), 1);
  assert.equal((await sandbox.record('api')).manifest.spec.exec?.env.GREETING, 'bonjour');

  // 2. Labels and a probe's periodSeconds of other: recorded in place.
  const beforeUpdate = pids([...after.values()]);
  await writeStack(sandbox, { apiEnv: { GREETING: 'bonjour' }, otherLabels: { team: 'b', tier: 'edge' }, otherPeriodSeconds: 0.3 }, stack);
  const diff2 = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff2.code, 1, `diff should report changes:\n${diff2.stdout}\n${diff2.stderr}`);
  assert.match(diff2.stdout, /^Plan: 0 to start, 0 to restart, 1 to update in place, 0 to delete; 3 unchanged\.$/m);
  assert.ok(planLine(diff2.stdout, 'update', 'other'), `other is updated in place:\n${diff2.stdout}`);
  assert.match(diff2.stdout, /metadata\.labels/);
  assert.match(diff2.stdout, /spec\.probes\.readiness\.periodSeconds: 0\.2 → 0\.3/);

  const apply2 = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(apply2.code, 0, `apply failed:\n${apply2.stdout}\n${apply2.stderr}`);
  const final = await sandbox.get();
  assert.deepEqual(pids(final), beforeUpdate, 'no process was restarted');
  assert.deepEqual(byName(final).get('other')?.labels, { team: 'b', tier: 'edge' });
  assert.equal(byName(final).get('other')?.restarts, 0);
  assert.equal((await sandbox.record('other')).manifest.spec.probes.readiness?.periodSeconds, 0.3);
  assert.equal(await jobRuns(stack), 1);

  const diff3 = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff3.code, 0, `in sync after the update:\n${diff3.stdout}`);
});
