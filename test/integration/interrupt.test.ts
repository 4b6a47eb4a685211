// Ctrl-C in the middle of a stop phase: what was not stopped keeps running and is reported, what
// was stopped for a restart runs again, and the command says it was interrupted (exit 130).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

// `top` and `app` ignore SIGTERM, so their stop takes the whole grace period: the window in which
// the test interrupts. A stop in progress is finished, not abandoned, so this is also how long
// each test waits after Ctrl-C.
const GRACE = 3;

test('interrupting pm delete between stop waves: the rest keeps running and the command fails', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/base.yaml', sandbox.manifest({ name: 'base', program: 'idle' }));
  await sandbox.write('manifests/top.yaml', sandbox.manifest({ name: 'top', program: 'ignore-term', dependsOn: [{ name: 'base' }], stop: { gracePeriodSeconds: GRACE } }));
  assert.equal((await sandbox.pm(['apply', '-f', 'manifests/'])).code, 0);
  const basePid = (await sandbox.status('base')).pid;

  const del = sandbox.pmBackground(['delete', '-f', 'manifests/']);
  const topLog = join(sandbox.stateDir, 'logs', 'top.log');
  await waitFor(async () => (await readFile(topLog, 'utf8')).includes('SIGTERM ignored'), { message: 'top to be asked to stop' });
  del.child.kill('SIGINT');
  const ended = await del.result;
  assert.equal(ended.code, 130, `${ended.stdout}\n${ended.stderr}`);
  assert.match(ended.stderr, /base: not deleted: the delete was interrupted \(still running as before\)/);
  const base = await sandbox.status('base');
  assert.equal(base.state, 'Running');
  assert.equal(base.pid, basePid);
});

test('interrupting a restart between stop waves starts the stopped dependent again', async (t) => {
  const sandbox = await createSandbox(t);
  const dep = (v: string): string => sandbox.manifest({ name: 'dep', program: 'idle', env: { V: v } });
  await sandbox.write('manifests/dep.yaml', dep('1'));
  await sandbox.write(
    'manifests/app.yaml',
    sandbox.manifest({ name: 'app', program: 'ignore-term', dependsOn: [{ name: 'dep', condition: 'ready', restart: true }], stop: { gracePeriodSeconds: GRACE } }),
  );
  assert.equal((await sandbox.pm(['apply', '-f', 'manifests/'])).code, 0);
  const before = { dep: (await sandbox.status('dep')).pid, app: (await sandbox.status('app')).pid };

  await sandbox.write('manifests/dep.yaml', dep('2'));
  const apply = sandbox.pmBackground(['apply', '-f', 'manifests/']);
  const appLog = join(sandbox.stateDir, 'logs', 'app.log');
  await waitFor(async () => (await readFile(appLog, 'utf8')).includes('SIGTERM ignored'), { message: 'app to be asked to stop' });
  apply.child.kill('SIGINT');
  const ended = await apply.result;
  assert.equal(ended.code, 130, `${ended.stdout}\n${ended.stderr}`);
  assert.match(ended.stderr, /dep: not restarted: the apply was interrupted/);
  // app's stop completed (SIGKILL after the grace period), then it was started again; dep untouched.
  await waitFor(async () => (await sandbox.status('app')).state === 'Running', { message: 'app to run again' });
  assert.notEqual((await sandbox.status('app')).pid, before.app);
  assert.equal((await sandbox.status('dep')).pid, before.dep);
});
