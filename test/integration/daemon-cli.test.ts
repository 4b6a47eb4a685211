// One writer: while a daemon runs, the CLI's apply, get, restart, delete, pause, resume and reset go
// through its API, and their exit codes say what the daemon did.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDaemonSandbox, commandManifest, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import { waitFor } from '../support/wait.js';

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

test('applies sent at the same time are carried out one after the other: none loses the other\'s processes', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const daemon = await startDaemon(sandbox);
  const names = ['q1', 'q2', 'q3', 'q4'];
  const requests = await Promise.all(
    names.map(async (name) => {
      const path = await sandbox.write(`sets/${name}/p.yaml`, fixtureManifest(sandbox, { name, program: 'idle' }, quickRestarts()));
      const { readFile } = await import('node:fs/promises');
      return { files: [{ path, text: await readFile(path, 'utf8') }], roots: [sandbox.path(`sets/${name}`)], prune: true, dryRun: false };
    }),
  );
  const replies = await Promise.all(requests.map((body) => daemon.api('POST', '/api/v1/apply', body)));
  assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
  for (const name of names) await daemon.waitFor(name, (s) => s.phase === 'Ready', `${name} to be Ready`);
  assert.deepEqual((await daemon.list()).map((s) => s.name).sort(), names);
});

test('a oneshot job is not ready while it runs: pm apply waits for it to complete, and fails when it fails', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const daemon = await startDaemon(sandbox);
  const gate = sandbox.path('go');
  await sandbox.write(
    'jobs/job.yaml',
    commandManifest(sandbox, 'job', ['/bin/sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.05; done; exit 3`], { type: 'oneshot', minReadySeconds: 0, restartPolicy: { policy: 'never' } }),
  );
  const applying = sandbox.pmBackground(['apply', '-f', 'jobs/', '--timeout', '60s']);
  await waitFor(() => /^start job: /m.test(applying.stdout()), { message: 'the daemon to accept the apply', timeoutMs: 20_000 });
  const running = await daemon.waitFor('job', (s) => s.up, 'the job to run');
  assert.equal(running.ready, false, 'a running job is not ready');
  assert.notEqual(running.phase, 'Ready');
  await sandbox.write('go', '');
  const ended = await applying.result;
  assert.equal(ended.code, 1, ended.stdout);
  assert.equal((await daemon.get('job')).phase, 'Failed');
});

test('pm delete of a process others depend on is refused, naming them', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const daemon = await startDaemon(sandbox);
  await sandbox.write('set/db.yaml', fixtureManifest(sandbox, { name: 'db', program: 'idle' }, quickRestarts()));
  await sandbox.write('set/app.yaml', fixtureManifest(sandbox, { name: 'app', program: 'idle', dependsOn: [{ name: 'db', condition: 'started' }] }, quickRestarts()));
  assert.equal((await sandbox.pm(['apply', '-f', 'set/'])).code, 0);
  const refused = await sandbox.pm(['delete', 'db']);
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /db is not deleted: app depends on it/);
  assert.equal((await daemon.get('db')).up, true);
  const both = await sandbox.pm(['delete', 'db', 'app']);
  assert.equal(both.code, 0, both.stdout);
  assert.deepEqual(await daemon.list(), []);
});
