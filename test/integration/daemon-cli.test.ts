// One writer: while a daemon runs, the CLI's apply, get, restart, delete, pause, resume and reset go
// through its API, and their exit codes say what the daemon did.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonSandbox, commandManifest, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';

test('pm apply of another folder goes through the daemon, waits for readiness, and a second apply changes nothing', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/a.yaml', fixtureManifest(sandbox, { name: 'a', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');

  await sandbox.write('extra/b.yaml', fixtureManifest(sandbox, { name: 'b', program: 'idle' }, quickRestarts()));
  const applied = await sandbox.pm(['apply', '-f', 'extra/', '--timeout', '30s']);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /^start b: /m);
  assert.match(applied.stdout, /^b: Ready/m);
  const b = await daemon.get('b');
  assert.equal(b.phase, 'Ready');

  const again = await sandbox.pm(['apply', '-f', 'extra/']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing to do/);
  assert.equal((await daemon.get('b')).pid, b.pid, 'b untouched');

  // The daemon's own folder is its to apply: an apply from elsewhere may not take a name over.
  await sandbox.write('other/a.yaml', fixtureManifest(sandbox, { name: 'a', program: 'idle', args: ['other'] }, quickRestarts()));
  const conflict = await sandbox.pm(['apply', '-f', 'other/']);
  assert.equal(conflict.code, 2, conflict.stdout);
  assert.match(conflict.stderr, /a: the daemon's manifest directory .* declares it/);

  const listed = await sandbox.pm(['get', '-o', 'json']);
  assert.equal(listed.code, 0, listed.stderr);
  const rows = JSON.parse(listed.stdout) as { name: string; state: string; pid: number | null }[];
  assert.deepEqual(
    rows.map((r) => [r.name, r.state]),
    [
      ['a', 'Ready'],
      ['b', 'Ready'],
    ],
  );
});

test('pm apply through the daemon of a command that cannot start fails with its reason, without waiting for the timeout', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const daemon = await startDaemon(sandbox);
  await sandbox.write('extra/bad.yaml', commandManifest(sandbox, 'bad', ['/nonexistent/program'], quickRestarts()));
  const applied = await sandbox.pm(['apply', '-f', 'extra/', '--timeout', '10m']);
  assert.equal(applied.code, 1, applied.stdout);
  assert.match(applied.stderr, /bad: start failed: .*nonexistent/);
  assert.equal((await daemon.get('bad')).up, false);
});

test('pm restart waits for the new instance; a failing restart script makes it fail', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/a.yaml', fixtureManifest(sandbox, { name: 'a', program: 'idle' }, quickRestarts()));
  await sandbox.write(
    'manifests/s.yaml',
    fixtureManifest(sandbox, { name: 's', program: 'idle' }, { ...quickRestarts(), restartPolicy: { strategy: 'script', script: { command: ['/bin/sh', '-c', 'echo reload refused; exit 4'] } } }),
  );
  const daemon = await startDaemon(sandbox);
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  const s = await daemon.waitFor('s', (st) => st.phase === 'Ready', 's to be Ready');

  const restarted = await sandbox.pm(['restart', 'a']);
  assert.equal(restarted.code, 0, restarted.stderr);
  const after = await daemon.get('a');
  assert.notEqual(after.pid, a.pid);
  assert.equal(after.restarts, 1);

  const scripted = await sandbox.pm(['restart', 's']);
  assert.equal(scripted.code, 1, scripted.stdout);
  assert.match(scripted.stderr, /s: restart script failed: .*code 4.*reload refused/);
  assert.equal((await daemon.get('s')).pid, s.pid, 'the script failed; the process runs as it was');

  // The handled request is not planned again: a later apply has nothing to do.
  const apply = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(apply.code, 0, apply.stderr);
  assert.match(apply.stdout, /nothing to do/);
});

test('pm pause, resume, reset and delete through the daemon', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/a.yaml', fixtureManifest(sandbox, { name: 'a', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');

  assert.equal((await sandbox.pm(['pause', 'a'])).code, 0);
  await daemon.waitFor('a', (s) => s.phase === 'Paused' && !s.up, 'a paused');
  const shown = await sandbox.pm(['get', 'a']);
  assert.match(shown.stdout, /^a\s+exec\s+Paused\s/m);
  assert.equal((await sandbox.pm(['resume', 'a'])).code, 0);
  await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a running again');
  const reset = await sandbox.pm(['reset', 'a']);
  assert.equal(reset.code, 0);
  assert.match(reset.stdout, /breaker already closed/);

  const unknown = await sandbox.pm(['pause', 'nope']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no process named "nope"/);

  const refused = await sandbox.pm(['delete', 'a']);
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /declared in the daemon's manifest directory/);
  assert.equal((await daemon.get('a')).up, true);
});

test('without a daemon, pause needs one and says how to start it', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const result = await sandbox.pm(['pause', 'a']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /needs a running pm daemon/);
  assert.match(result.stderr, /pm daemon -f DIR/);
});
