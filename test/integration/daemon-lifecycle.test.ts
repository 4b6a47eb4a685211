// Starting and stopping the daemon: one daemon per state directory, and SIGTERM ends it cleanly,
// leaving its processes running (the default) or stopping them (--shutdown stop).
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRunningWith } from '../support/cli.js';
import { commandManifest, createDaemonSandbox, daemonArgs, daemonEnv, fixtureManifest, quickRestarts, readEndpoint, startDaemon } from '../support/daemon.js';
import { waitFor } from '../support/wait.js';

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

test('a second daemon on the same state directory refuses to start; the first keeps running', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const first = await startDaemon(sandbox);
  const pid = (await first.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid;

  const second = await sandbox.pm(daemonArgs(sandbox), { ...daemonEnv(sandbox), timeoutMs: 20_000 });
  assert.equal(second.code, 3, `refused (busy)\n${second.stdout}\n${second.stderr}`);
  assert.match(second.stderr, new RegExp(`another pm command \\(pid ${first.pid}, "pm daemon"`));
  assert.equal((await readEndpoint(sandbox.stateDir))?.pid, first.pid, 'daemon.json still names the first daemon');
  const x = await first.get('x');
  assert.equal(x.pid, pid);
  assert.equal(x.restarts, 0);
});

test('SIGTERM: the daemon exits 0, removes daemon.json and leaves its processes running', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid as number;
  assert.ok(await exists(join(sandbox.stateDir, 'daemon.json')));

  daemon.kill('SIGTERM');
  const result = await daemon.stopped;
  assert.equal(result.code, 0, `exit code 0\n${daemon.output()}`);
  assert.equal(await exists(join(sandbox.stateDir, 'daemon.json')), false, 'daemon.json removed');
  assert.ok(await isRunningWith(pid), 'x keeps running (shutdown: leave-running)');
  assert.equal((await sandbox.record('x')).handle?.pid, pid, 'its record still names it, for the next daemon');
});

test('SIGTERM with --shutdown stop: the daemon stops its processes, then exits 0', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  await sandbox.write('manifests/y.yaml', fixtureManifest(sandbox, { name: 'y', program: 'idle', dependsOn: [{ name: 'x' }] }, quickRestarts()));
  const daemon = await startDaemon(sandbox, { args: ['--shutdown', 'stop'] });
  const x = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid as number;
  const y = (await daemon.waitFor('y', (s) => s.phase === 'Ready', 'y to be Ready')).pid as number;

  daemon.kill('SIGTERM');
  const result = await daemon.stopped;
  assert.equal(result.code, 0, `exit code 0\n${daemon.output()}`);
  assert.equal(await exists(join(sandbox.stateDir, 'daemon.json')), false, 'daemon.json removed');
  // Stopped before the daemon exited, not after.
  assert.equal(await isRunningWith(x), false, 'x is stopped');
  assert.equal(await isRunningWith(y), false, 'y is stopped');
  // Stopped deliberately, not crashed: nothing is left for a next daemon to restart as a failure.
  assert.equal((await sandbox.record('x')).backoff?.failures ?? 0, 0);
});

test('--shutdown stop with many adopted processes and few descriptors: every one is stopped', async (t) => {
  // 60 stops at once each looked for its group in /proc; with a low descriptor limit (a real one,
  // through prlimit) the reads failed with EMFILE, the groups read as empty, and the processes were
  // reported stopped while they ran on.
  const sandbox = await createDaemonSandbox(t);
  const names = Array.from({ length: 60 }, (_, i) => `s${i}`);
  await sandbox.write('manifests/many.yaml', names.map((name) => commandManifest(sandbox, name, ['sleep', '3600'], quickRestarts())).join('---\n'));
  const first = await startDaemon(sandbox);
  await waitFor(async () => (await first.list()).filter((s) => s.phase === 'Ready').length === names.length, { timeoutMs: 30_000, message: 'all 60 to be Ready' });
  const pids = (await first.list()).map((s) => s.pid as number);
  first.kill('SIGTERM');
  assert.equal((await first.stopped).code, 0);

  const second = await startDaemon(sandbox, { args: ['--shutdown', 'stop'], maxOpenFiles: 256 });
  await waitFor(async () => (await second.list()).filter((s) => s.phase === 'Ready').length === names.length, { timeoutMs: 30_000, message: 'all 60 adopted' });
  assert.deepEqual((await second.list()).map((s) => s.pid).sort(), [...pids].sort(), 'adopted, not restarted');
  second.kill('SIGTERM');
  assert.equal((await second.stopped).code, 0, second.output());
  const alive = (await Promise.all(pids.map((pid) => isRunningWith(pid)))).filter(Boolean).length;
  assert.equal(alive, 0, `every process stopped\n${second.output()}`);
});
