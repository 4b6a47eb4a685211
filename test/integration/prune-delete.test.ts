// Deleting: nothing is pruned without --prune; --prune stops the whole process group of what the
// -f paths no longer declare and never touches what another folder applied. pm delete escalates
// to SIGKILL after the grace period.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { createSandbox, isRunningWith } from '../support/cli.js';
import { waitFor, waitForValue } from '../support/wait.js';
import { byName, pids } from './stack.js';

test('a removed manifest is kept without --prune and stopped (with its group) with it; other folders are never pruned', async (t) => {
  const sandbox = await createSandbox(t);
  const grandchildFile = sandbox.path('gone-grandchild.pid');
  await sandbox.write('manifests/keep.yaml', sandbox.manifest({ name: 'keep', program: 'idle' }));
  await sandbox.write('manifests/gone.yaml', sandbox.manifest({ name: 'gone', program: 'idle', env: { GRANDCHILD_PID_FILE: grandchildFile } }));
  await sandbox.write('elsewhere/neighbour.yaml', sandbox.manifest({ name: 'neighbour', program: 'idle' }));
  for (const folder of ['manifests/', 'elsewhere/']) {
    const result = await sandbox.pm(['apply', '-f', folder]);
    assert.equal(result.code, 0, `apply -f ${folder} failed:\n${result.stdout}\n${result.stderr}`);
  }
  const before = pids(await sandbox.get());
  const gonePid = before.gone as number;
  const grandchild = await waitForValue(async () => Number((await readFile(grandchildFile, 'utf8').catch(() => '')).trim()) || undefined, {
    message: 'the grandchild PID file',
  });
  assert.ok(await isRunningWith(grandchild), 'the grandchild runs');

  await sandbox.remove('manifests/gone.yaml');
  const kept = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(kept.code, 0, `apply failed:\n${kept.stdout}\n${kept.stderr}`);
  assert.match(kept.stdout, /^\s+! keep\s+gone\s+no manifest here declares it any more; pass --prune to delete it$/m);
  assert.match(kept.stdout, /^\s+! keep\s+neighbour\s+applied from .*elsewhere\/neighbour\.yaml, outside the -f paths given; left alone$/m);
  assert.deepEqual(pids(await sandbox.get()), before, 'nothing was stopped');

  const dryRun = await sandbox.pm(['diff', '-f', 'manifests/', '--prune']);
  assert.equal(dryRun.code, 1);
  assert.match(dryRun.stdout, /^\s+- delete\s+gone\s/m);
  assert.doesNotMatch(dryRun.stdout, /- delete\s+neighbour/);

  const pruned = await sandbox.pm(['apply', '-f', 'manifests/', '--prune']);
  assert.equal(pruned.code, 0, `apply --prune failed:\n${pruned.stdout}\n${pruned.stderr}`);
  assert.match(pruned.stdout, /^Plan: 0 to start, 0 to restart, 0 to update in place, 1 to delete; 1 unchanged\.$/m);
  assert.equal(await isRunningWith(gonePid), false, 'gone has ended');
  assert.equal(await isRunningWith(grandchild), false, 'its grandchild has ended too');
  const after = byName(await sandbox.get());
  assert.deepEqual([...after.keys()].sort(), ['keep', 'neighbour']);
  assert.equal(after.get('keep')?.pid, before.keep);
  assert.equal(after.get('neighbour')?.pid, before.neighbour, 'a process applied from another folder is never pruned');

  // An empty checkout cannot prune everything: an empty set is an error.
  await sandbox.remove('elsewhere/neighbour.yaml');
  const empty = await sandbox.pm(['apply', '-f', 'elsewhere/', '--prune']);
  assert.equal(empty.code, 2, `an empty set is refused:\n${empty.stdout}\n${empty.stderr}`);
  assert.equal((await sandbox.status('neighbour')).pid, before.neighbour);
});

test('pm delete stops a process that ignores SIGTERM after its grace period; an unknown name exits 1', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/stubborn.yaml', sandbox.manifest({ name: 'stubborn', program: 'ignore-term', stop: { gracePeriodSeconds: 0.5 } }));
  const applied = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(applied.code, 0, `apply failed:\n${applied.stdout}\n${applied.stderr}`);
  const pid = (await sandbox.status('stubborn')).pid as number;
  const log = sandbox.path('state/logs/stubborn.log');
  // The handler must be installed before SIGTERM is sent, or the default action would end it.
  await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).includes('ignoring SIGTERM'), { message: 'stubborn to install its handler' });

  const deleted = await sandbox.pm(['delete', 'stubborn']);
  assert.equal(deleted.code, 0, `delete failed:\n${deleted.stdout}\n${deleted.stderr}`);
  assert.match(deleted.stdout, /^stubborn\s+delete\s+done$/m);
  assert.equal(await isRunningWith(pid), false, 'stubborn has ended');
  assert.match(await readFile(log, 'utf8'), /SIGTERM ignored/, 'SIGTERM came first');
  assert.deepEqual(await sandbox.get(), []);

  const unknown = await sandbox.pm(['delete', 'unknown']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no process named "unknown"/);
});

test('--prune -l prunes only matching labels; the others are kept', async (t) => {
  const sandbox = await createSandbox(t);
  for (const [name, tier] of [['keep', 'web'], ['gone', 'batch'], ['stray', 'web']] as const) {
    await sandbox.write(`manifests/${name}.yaml`, sandbox.manifest({ name, program: 'idle', labels: { tier } }));
  }
  const applied = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(applied.code, 0, `apply failed:\n${applied.stdout}\n${applied.stderr}`);
  const before = pids(await sandbox.get());
  await sandbox.remove('manifests/gone.yaml');
  await sandbox.remove('manifests/stray.yaml');

  const pruned = await sandbox.pm(['apply', '-f', 'manifests/', '--prune', '-l', 'tier=batch']);
  assert.equal(pruned.code, 0, `apply failed:\n${pruned.stdout}\n${pruned.stderr}`);
  assert.match(pruned.stdout, /^\s+- delete\s+gone\s/m);
  assert.match(pruned.stdout, /^\s+! keep\s+stray\s/m);
  assert.equal(await isRunningWith(before.gone as number), false);
  const after = byName(await sandbox.get());
  assert.deepEqual([...after.keys()].sort(), ['keep', 'stray']);
  assert.equal(after.get('stray')?.pid, before.stray);
});

test(
  'a process kept because of -l is not described as outside the -f paths',
  async (t) => {
    const sandbox = await createSandbox(t);
    await sandbox.write('manifests/keep.yaml', sandbox.manifest({ name: 'keep', program: 'idle', labels: { tier: 'web' } }));
    await sandbox.write('manifests/stray.yaml', sandbox.manifest({ name: 'stray', program: 'idle', labels: { tier: 'web' } }));
    const applied = await sandbox.pm(['apply', '-f', 'manifests/']);
    assert.equal(applied.code, 0, `apply failed:\n${applied.stdout}\n${applied.stderr}`);
    await sandbox.remove('manifests/stray.yaml');

    const result = await sandbox.pm(['diff', '-f', 'manifests/', '--prune', '-l', 'tier=batch']);
    const line = result.stdout.split('\n').find((l) => /^\s+! keep\s+stray\s/.test(l));
    assert.ok(line, result.stdout);
    assert.doesNotMatch(line, /outside the -f paths/, 'stray.yaml was under manifests/: it is kept because of -l');
  },
);
