// SIGHUP: the daemon reloads its config file (and manifests) without touching the processes,
// names the keys that changed, refuses an invalid file as a whole, moves its API server when the
// listen address changed, and is safe to send as soon as the daemon has announced itself.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createDaemonSandbox, daemonArgs, daemonEnv, fixtureManifest, quickRestarts, readEndpoint, startDaemon } from '../support/daemon.js';
import { waitFor } from '../support/wait.js';

test('SIGHUP reloads the config and names what changed; an invalid config is refused; processes keep running', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const config = sandbox.path('config.yaml');
  await writeFile(config, 'logLevel: info\nresyncSeconds: 30\n');
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox, { args: ['--config', config] });
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid;

  await writeFile(config, 'logLevel: debug\nresyncSeconds: 20\n');
  daemon.kill('SIGHUP');
  const reloaded = await daemon.waitForEvent(undefined, (e) => e.type === 'ConfigReloaded', 'ConfigReloaded');
  assert.match(reloaded.message, /logLevel/);
  assert.match(reloaded.message, /resyncSeconds/);
  assert.doesNotMatch(reloaded.message, /listen|parallel|shutdown/, 'only the keys that changed');

  // Invalid: parallel must be at least 1. The whole file is refused, logLevel: warn included.
  await writeFile(config, 'logLevel: warn\nresyncSeconds: 20\nparallel: 0\n');
  daemon.kill('SIGHUP');
  const rejected = await daemon.waitForEvent(undefined, (e) => e.type === 'ConfigRejected', 'ConfigRejected');
  assert.match(rejected.message, /parallel/);
  assert.equal(rejected.severity, 'warning');

  // Still in force: the config of the first reload (logLevel debug, not the refused warn). A valid
  // file that differs from it only in resyncSeconds is reported as changing only that.
  await writeFile(config, 'logLevel: debug\nresyncSeconds: 25\n');
  daemon.kill('SIGHUP');
  const second = await daemon.waitForEvent(
    undefined,
    (e, i, all) => e.type === 'ConfigReloaded' && all.slice(0, i).some((x) => x.type === 'ConfigRejected'),
    'a second ConfigReloaded',
  );
  assert.match(second.message, /configuration reloaded: resyncSeconds changed$/);

  const x = await daemon.get('x');
  assert.equal(x.pid, pid, 'x keeps its pid across the reloads');
  assert.equal(x.restarts, 0);
  assert.equal((await daemon.api('GET', '/healthz', undefined, { token: null })).status, 200);

  // The daemon still supervises.
  process.kill(pid as number, 'SIGKILL');
  const restarted = await daemon.waitFor('x', (s) => s.pid !== undefined && s.pid !== pid && s.phase === 'Ready', 'x restarted after the reloads');
  assert.equal(restarted.restarts, 1);
});

test('SIGHUP with a new listen address moves the API server and rewrites daemon.json', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const config = sandbox.path('config.yaml');
  const [before, after] = [await sandbox.freePort(), await sandbox.freePort()];
  await writeFile(config, `listen: 127.0.0.1:${before}\n`);
  await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox, { listen: null, args: ['--config', config] });
  assert.equal(daemon.url, `http://127.0.0.1:${before}`);
  const pid = (await daemon.waitFor('x', (s) => s.phase === 'Ready', 'x to be Ready')).pid;

  await writeFile(config, `listen: 127.0.0.1:${after}\n`);
  daemon.kill('SIGHUP');
  const moved = `http://127.0.0.1:${after}`;
  await waitFor(async () => (await readEndpoint(sandbox.stateDir))?.url === moved, { message: 'daemon.json to name the new address' });
  const health = await fetch(`${moved}/healthz`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(health.status, 200);
  await assert.rejects(fetch(`http://127.0.0.1:${before}/healthz`, { signal: AbortSignal.timeout(5_000) }), 'the old address is closed');
  // The CLI finds the daemon through daemon.json.
  const got = await sandbox.pm(['get', 'x', '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, new RegExp(`"pid": ?${pid}\\b`));
});

test(
  'a SIGHUP sent as soon as daemon.json appears reloads the daemon instead of killing it',
  {
  },
  async (t) => {
    const sandbox = await createDaemonSandbox(t);
    // Many files for the watcher to scan widen the gap between daemon.json and the handler.
    await mkdir(join(sandbox.manifestsDir, 'notes'));
    await Promise.all(Array.from({ length: 3000 }, (_, i) => writeFile(join(sandbox.manifestsDir, 'notes', `${i}.txt`), '')));
    await sandbox.write('manifests/x.yaml', fixtureManifest(sandbox, { name: 'x', program: 'idle' }, quickRestarts()));
    const bg = sandbox.pmBackground(daemonArgs(sandbox), daemonEnv(sandbox));
    await waitFor(async () => (await readEndpoint(sandbox.stateDir))?.pid === bg.child.pid, { intervalMs: 1, timeoutMs: 20_000, message: 'daemon.json' });
    // What `systemctl reload` or a deploy script does once the daemon has announced itself.
    bg.child.kill('SIGHUP');
    await waitFor(() => bg.child.exitCode !== null || bg.child.signalCode !== null || bg.stdout().includes('configuration reloaded'), {
      timeoutMs: 20_000,
      message: 'the reload or the end of the daemon',
    });
    assert.equal(bg.child.signalCode, null, `the daemon was ended by ${bg.child.signalCode}`);
    assert.match(bg.stdout(), /configuration reloaded/);
  },
);
