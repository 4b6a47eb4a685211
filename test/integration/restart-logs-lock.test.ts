// pm restart (now and --later), pm logs (and -f), the state lock between two pm commands, and
// pm validate reading standard input.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSandbox, httpReadiness, isRunningWith, type Sandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';
import { byName, planLine, pids } from './stack.js';

/** True when the process holds an inotify instance with at least one watch (Linux). */
async function hasInotifyWatch(pid: number): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fdinfo`).catch(() => [] as string[]);
  for (const fd of fds) {
    if (/^inotify wd:/m.test(await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => ''))) return true;
  }
  return false;
}

/** api (HTTP, readiness), worker (restart: true on api), sidecar (plain dependency on api). */
async function writeTrio(sandbox: Sandbox): Promise<void> {
  const port = await sandbox.freePort();
  await sandbox.write(
    'manifests/api.yaml',
    sandbox.manifest({ name: 'api', program: 'http-server', env: { PORT: port }, ports: [{ name: 'http', port }], probes: httpReadiness('http') }),
  );
  await sandbox.write('manifests/worker.yaml', sandbox.manifest({ name: 'worker', program: 'idle', dependsOn: [{ name: 'api', restart: true }] }));
  await sandbox.write('manifests/sidecar.yaml', sandbox.manifest({ name: 'sidecar', program: 'idle', dependsOn: [{ name: 'api' }] }));
}

test('pm restart restarts at once with restart: true cascades; --later leaves it to the next apply', async (t) => {
  const sandbox = await createSandbox(t);
  await writeTrio(sandbox);
  const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
  const before = pids(await sandbox.get());

  const restart = await sandbox.pm(['restart', 'api']);
  assert.equal(restart.code, 0, `restart failed:\n${restart.stdout}\n${restart.stderr}`);
  assert.ok(planLine(restart.stdout, 'restart', 'api'), restart.stdout);
  assert.match(planLine(restart.stdout, 'restart', 'worker') ?? '', /dependency api restarts/, restart.stdout);
  const afterRestart = byName(await sandbox.get());
  assert.notEqual(afterRestart.get('api')?.pid, before.api);
  assert.equal(afterRestart.get('api')?.restarts, 1);
  assert.equal(afterRestart.get('api')?.ready, true);
  assert.equal(await isRunningWith(before.api as number), false, 'the old api has ended');
  assert.notEqual(afterRestart.get('worker')?.pid, before.worker, 'worker (restart: true) restarted with api');
  assert.equal(afterRestart.get('sidecar')?.pid, before.sidecar, 'sidecar (no restart: true) kept running');
  const restarted = pids([...afterRestart.values()]);

  const later = await sandbox.pm(['restart', 'api', '--later']);
  assert.equal(later.code, 0, `restart --later failed:\n${later.stdout}\n${later.stderr}`);
  assert.match(later.stdout, /restart requested for api; the next pm apply honours it/);
  assert.deepEqual(pids(await sandbox.get()), restarted, 'nothing restarts before the apply');
  const diff = await sandbox.pm(['diff', '-f', 'manifests/']);
  assert.equal(diff.code, 1);
  assert.match(planLine(diff.stdout, 'restart', 'api') ?? '', /restart requested at/, diff.stdout);

  const apply = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(apply.code, 0, `apply failed:\n${apply.stdout}\n${apply.stderr}`);
  const afterApply = byName(await sandbox.get());
  assert.notEqual(afterApply.get('api')?.pid, restarted.api, 'the apply honoured the request');
  assert.equal(afterApply.get('api')?.restarts, 2);
  assert.notEqual(afterApply.get('worker')?.pid, restarted.worker);
  assert.equal(afterApply.get('sidecar')?.pid, before.sidecar);

  const again = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(again.code, 0);
  assert.match(again.stdout, /^No changes:/m, 'a request is honoured once');
});

test('pm logs prints the output; -f follows appended lines until SIGINT, then exits 0', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/talker.yaml', sandbox.manifest({ name: 'talker', program: 'idle' }));
  const applied = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(applied.code, 0, `apply failed:\n${applied.stdout}\n${applied.stderr}`);
  const pid = (await sandbox.status('talker')).pid as number;
  const log = join(sandbox.stateDir, 'logs', 'talker.log');
  await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).includes('talker started'), { message: 'talker to write its first line' });

  const logs = await sandbox.pm(['logs', 'talker']);
  assert.equal(logs.code, 0, logs.stderr);
  assert.equal(logs.stdout, `talker started pid ${pid}\n`);

  const follow = sandbox.pmBackground(['logs', 'talker', '-f']);
  await waitFor(() => follow.stdout().includes('talker started'), { message: 'pm logs -f to print the existing output' });
  process.kill(pid, 'SIGUSR1');
  await waitFor(() => follow.stdout().includes('talker tick 1'), { message: 'pm logs -f to print an appended line' });
  process.kill(pid, 'SIGUSR1');
  await waitFor(() => follow.stdout().includes('talker tick 2'), { message: 'pm logs -f to print a second appended line' });
  follow.child.kill('SIGINT');
  const ended = await follow.result;
  assert.equal(ended.code, 0, `pm logs -f ends cleanly on SIGINT (signal ${ended.signal}):\n${ended.stderr}`);
  assert.equal(ended.stdout, `talker started pid ${pid}\ntalker tick 1\ntalker tick 2\n`);

  const unknown = await sandbox.pm(['logs', 'nobody']);
  assert.equal(unknown.code, 1);
});

test(
  'pm logs -f on a log file that is not there (moved away by log rotation) waits for it',
  async (t) => {
    const sandbox = await createSandbox(t);
    await sandbox.write('manifests/talker.yaml', sandbox.manifest({ name: 'talker', program: 'idle' }));
    const applied = await sandbox.pm(['apply', '-f', 'manifests/']);
    assert.equal(applied.code, 0, `apply failed:\n${applied.stdout}\n${applied.stderr}`);
    const log = join(sandbox.stateDir, 'logs', 'talker.log');
    await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).includes('talker started'), { message: 'talker to write its first line' });
    await rename(log, `${log}.1`);

    const follow = sandbox.pmBackground(['logs', 'talker', '-f']);
    let exited = false;
    void follow.result.then(() => (exited = true));
    // Until pm watches the missing path (an inotify watch in its fd table) or ends. A follower that
    // only polls shows no watch: then the file appears after the deadline, which it must see too.
    await waitFor(async () => exited || (await hasInotifyWatch(follow.child.pid as number)), { message: 'pm logs -f to watch', timeoutMs: 5_000 }).catch(
      () => undefined,
    );
    assert.doesNotMatch(follow.stderr(), /internal error/);
    assert.equal(exited, false, `pm logs -f ended instead of following:\n${follow.stderr()}`);
    // What the process writes once it reopens its log (as after logrotate's postrotate).
    await writeFile(log, 'reopened\n');
    await waitFor(() => exited || follow.stdout().includes('reopened'), { message: 'pm logs -f to print the new file' });
    assert.equal(exited, false, `pm logs -f ended early:\n${follow.stderr()}`);
    follow.child.kill('SIGINT');
    assert.equal((await follow.result).code, 0);
  },
);

test('a lock left by a pm that was killed (SIGKILL) is recognised as stale and taken over', async (t) => {
  const sandbox = await createSandbox(t);
  const readyFile = sandbox.path('ready');
  const port = await sandbox.freePort();
  await sandbox.write(
    'manifests/slow.yaml',
    sandbox.manifest({ name: 'slow', program: 'http-server', env: { PORT: port, READY_FILE: readyFile }, ports: [{ name: 'http', port }], probes: httpReadiness('http') }),
  );
  const lockPath = join(sandbox.stateDir, 'lock');
  const first = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '10m']);
  await waitFor(async () => (await sandbox.get()).some((p) => p.name === 'slow' && p.state === 'Running'), {
    message: 'the first apply to start slow',
    timeoutMs: 20_000,
  });
  first.child.kill('SIGKILL');
  await first.result;
  assert.equal(existsSync(lockPath), true, 'a killed pm leaves its lock behind');

  await writeFile(readyFile, '');
  const second = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(second.code, 0, `the stale lock is taken over:\n${second.stdout}\n${second.stderr}`);
  assert.equal(existsSync(lockPath), false);
  const slow = await sandbox.status('slow');
  assert.equal(slow.state, 'Running');
  assert.equal(slow.ready, true);
});

test('the state lock: a second apply exits 3 naming the holder; SIGINT releases it and started processes keep running', async (t) => {
  const sandbox = await createSandbox(t);
  const port = await sandbox.freePort();
  // quick is ready at once; slow never gets ready (its READY_FILE is never created).
  await sandbox.write('manifests/quick.yaml', sandbox.manifest({ name: 'quick', program: 'idle' }));
  await sandbox.write(
    'manifests/slow.yaml',
    sandbox.manifest({
      name: 'slow',
      program: 'http-server',
      env: { PORT: port, READY_FILE: sandbox.path('never') },
      ports: [{ name: 'http', port }],
      probes: httpReadiness('http'),
    }),
  );
  const lockPath = join(sandbox.stateDir, 'lock');
  const first = sandbox.pmBackground(['apply', '-f', 'manifests/', '--timeout', '10m']);
  await waitFor(() => existsSync(lockPath), { message: 'the first apply to take the lock', timeoutMs: 20_000 });
  // Wait until it has started both and waits on slow's readiness.
  await waitFor(async () => (await sandbox.get()).filter((p) => p.state === 'Running').length === 2, {
    message: 'the first apply to start quick and slow',
    timeoutMs: 20_000,
  });

  const second = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(second.code, 3, `the second apply is refused:\n${second.stdout}\n${second.stderr}`);
  assert.match(second.stderr, new RegExp(`another pm command \\(pid ${first.child.pid}, "pm apply"`));
  const readOnly = await sandbox.pm(['get', '-o', 'json']);
  assert.equal(readOnly.code, 0, 'pm get does not wait for the lock');

  first.child.kill('SIGINT');
  const ended = await first.result;
  assert.notEqual(ended.code, 0, `the interrupted apply fails (code ${ended.code}, signal ${ended.signal})`);
  assert.equal(ended.code, 130, `interrupted once: exit 130:\n${ended.stderr}`);
  assert.match(ended.stderr, /apply interrupted/);
  assert.match(ended.stderr, /slow/);
  assert.equal(existsSync(lockPath), false, 'the lock is released');

  const statuses = byName(await sandbox.get());
  for (const name of ['quick', 'slow']) {
    const status = statuses.get(name);
    assert.equal(status?.state, 'Running', `${name} keeps running: ${JSON.stringify(status)}`);
    assert.ok(status?.pid && (await isRunningWith(status.pid)));
  }
  assert.equal(statuses.get('slow')?.ready, false);

  // The lock is free again: a later command takes it (and is refused nothing).
  const deleted = await sandbox.pm(['delete', 'quick', 'slow']);
  assert.equal(deleted.code, 0, `delete failed:\n${deleted.stdout}\n${deleted.stderr}`);
  assert.deepEqual(await sandbox.get(), []);
});

test('pm validate -f - reads the manifest from standard input', async (t) => {
  const sandbox = await createSandbox(t);
  const valid = await sandbox.pm(['validate', '-f', '-'], { input: sandbox.manifest({ name: 'piped', program: 'idle' }) });
  assert.equal(valid.code, 0, valid.stderr);
  assert.match(valid.stdout, /^valid: 1 process in -$/m);

  const invalid = await sandbox.pm(['validate', '-f', '-'], { input: 'apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata: {name: Bad_Name}\nspec:\n  exec: {command: [x]}\n' });
  assert.equal(invalid.code, 2);
  assert.match(invalid.stderr, /^error: -:3:\d+: /m);
});
