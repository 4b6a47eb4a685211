// The exec driver's two spawners, posix_spawn (native/spawn.c) and Node's spawn, give a child the
// same world and report the same exits and errors. Each case runs under both, with real children.
import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import { chmod, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { spawn as spawnChild } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import type { StartRequest } from '../../src/drivers/driver.js';
import { RunCgroup, type Cgroups } from '../../src/drivers/exec/cgroup/index.js';
import { ExecDriver, parseProcStat } from '../../src/drivers/exec/index.js';
import { describeSpawner, isOpenFailure, loadNativeSpawner, spawnChoiceOf, type SpawnChoice } from '../../src/drivers/exec/native.js';
import { PmError, StartError } from '../../src/errors.js';
import { processManifest } from '../support/exec-fixtures.js';
import { killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const SPAWNERS: readonly SpawnChoice[] = ['native', 'node'];
const repo = fileURLToPath(new URL('../..', import.meta.url));

/** A driver for the spawner; skips the native case where it could not be built, except under PM_TEST_STRICT=1. */
function driverFor(t: TestContext, spawn: SpawnChoice): ExecDriver | undefined {
  const native = loadNativeSpawner();
  if (spawn === 'native' && 'reason' in native) {
    if (process.env.PM_TEST_STRICT === '1') assert.fail(`the native spawner ${native.reason}`);
    t.skip(`the native spawner ${native.reason}`);
    return undefined;
  }
  return new ExecDriver({ spawn });
}

function request(dir: string, command: [string, ...string[]], env: Record<string, string> = { PATH: '/usr/bin:/bin' }): StartRequest {
  const log = join(dir, 'child.log');
  return { name: 'child', manifest: processManifest('child', command, dir), env, logs: { stdout: log, stderr: log } };
}

async function startError(driver: ExecDriver, req: StartRequest): Promise<StartError> {
  const err = await driver.start(req).then(
    () => assert.fail('start should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StartError, `a StartError, not ${String(err)}`);
  return err;
}

for (const spawn of SPAWNERS) {
  test(`${spawn}: the child has its own session, /dev/null as stdin, only descriptors 0–2, no signal ignored or blocked, its cwd and env`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    // Read from outside, in /proc, of a program that opens nothing: a shell would show its own
    // pipes, and it blocks every signal while it waits for one of its children.
    const req = request(dir, ['/bin/sleep', '60'], { PATH: '/usr/bin:/bin', GREETING: 'hello there' });
    const handle = await driver.start(req);
    killGroupAfter(t, handle.pgid);
    const proc = `/proc/${handle.pid}`;
    const stat = parseProcStat(await readFile(`${proc}/stat`, 'utf8'));
    assert.equal(stat?.session, handle.pid, 'leads its own session');
    assert.equal(stat?.pgrp, handle.pid, 'leads its own process group');
    assert.equal(await readlink(`${proc}/fd/0`), '/dev/null');
    assert.equal(await readlink(`${proc}/fd/1`), req.logs.stdout);
    assert.equal(await readlink(`${proc}/cwd`), dir);
    assert.ok((await readFile(`${proc}/environ`, 'utf8')).split('\0').includes('GREETING=hello there'));
    // libuv closes only what is close-on-exec: a descriptor pm inherited without it reaches the
    // child too (the test runner's machine may have some). posix_spawn closes everything above 2.
    const expected = spawn === 'native' ? [0, 1, 2] : [0, 1, 2, ...(await inheritedDescriptors())];
    // posix_spawn returns once the exec has replaced the child's memory, a moment before the
    // kernel closes its close-on-exec descriptors: wait for that, then compare.
    const fdsOf = async (): Promise<number[]> => (await readdir(`${proc}/fd`)).map(Number).sort((a, b) => a - b);
    await waitFor(async () => (await fdsOf()).every((fd) => expected.includes(fd)), { message: 'the close-on-exec descriptors closed', timeoutMs: 5_000 }).catch(() => undefined);
    assert.deepEqual(await fdsOf(), expected);
    const signals = (await readFile(`${proc}/status`, 'utf8')).split('\n').filter((line) => /^Sig(Ign|Blk):/.test(line));
    assert.deepEqual(signals, ['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
  });

  test(`${spawn}: a descriptor pm inherited without close-on-exec ${spawn === 'native' ? 'reaches no child' : 'reaches its children (libuv closes only close-on-exec ones)'}`, async (t) => {
    if (!driverFor(t, spawn)) return;
    const dir = await tempDir(t);
    const driverModule = join(repo, 'src', 'drivers', 'exec', 'index.ts');
    const pmScript = join(dir, 'pm.mts');
    const req = request(dir, ['/bin/sleep', '60']);
    await writeFile(
      pmScript,
      `import { readdirSync, readFileSync } from 'node:fs';
       import { ExecDriver } from ${JSON.stringify(driverModule)};
       const inherited = /^flags:\\s+([0-7]+)$/m.exec(readFileSync('/proc/self/fdinfo/200', 'utf8'))?.[1];
       const handle = await new ExecDriver({ spawn: ${JSON.stringify(spawn)} }).start(${JSON.stringify(req)});
       // posix_spawn returns a moment before the kernel closes the child's close-on-exec descriptors.
       const fdsOf = () => readdirSync('/proc/' + handle.pid + '/fd').map(Number).sort((a, b) => a - b);
       for (const until = Date.now() + 5000; Date.now() < until && fdsOf().some((fd) => fd > 2 && fd !== 200); ) await new Promise((r) => setTimeout(r, 10));
       console.log(JSON.stringify({ inherited, pgid: handle.pgid, fds: fdsOf() }));`,
    );
    // bash opens descriptor 200 without close-on-exec and execs pm's script: pm inherits it so
    // (Node marks low inherited descriptors close-on-exec as it starts; dash marks its own).
    const pm = spawnChild('/bin/bash', ['-c', 'exec 200</dev/null; exec "$@"', 'sh', process.execPath, '--import', 'tsx', pmScript], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'], timeout: 20_000 });
    const out = await new Promise<string>((resolve, reject) => {
      let text = '';
      pm.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
      pm.once('error', reject);
      pm.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`the pm script exited ${code}`))));
    });
    const { inherited, pgid, fds } = JSON.parse(out) as { inherited?: string; pgid: number; fds: number[] };
    killGroupAfter(t, pgid);
    assert.ok(inherited !== undefined && (parseInt(inherited, 8) & 0o2000000) === 0, `pm holds descriptor 200 without close-on-exec (flags ${inherited})`);
    if (spawn === 'native') assert.deepEqual(fds, [0, 1, 2]);
    else assert.ok(fds.includes(200), `descriptor 200 reached the child: ${fds.join(' ')}`);
  });

  test(`${spawn}: a process whose cgroup cannot be joined never runs its program, and its start is a StartError`, async (t) => {
    if (!driverFor(t, spawn)) return;
    const dir = await tempDir(t);
    // Writing the PID into this "cgroup" fails for real (EISDIR). The hierarchy around it is a
    // stand-in: a test cannot make a real cgroupfs refuse a write on cue.
    const leaf = join(dir, 'leaf');
    await mkdir(join(leaf, 'cgroup.procs'), { recursive: true });
    const cgroups = { sweep: () => Promise.resolve(), create: () => Promise.resolve(new RunCgroup([leaf])) } as unknown as Cgroups;
    const driver = new ExecDriver({ spawn, cgroups });
    const ran = join(dir, 'ran');
    const req = request(dir, ['/usr/bin/touch', ran]);
    req.manifest = { ...req.manifest, spec: { ...req.manifest.spec, resources: { memory: '64Mi' } } };
    const err = await startError(driver, req);
    assert.match(err.message, /^child: cannot put the process in its cgroup \(.*leaf\): .*EISDIR/);
    assert.equal(await readFile(ran).then(() => 'ran', () => 'never ran'), 'never ran');
    assert.deepEqual(await zombiesOfThisProcess(), []);
  });

  test(`${spawn}: exit codes and signals are reported`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    const exited = await driver.start(request(dir, ['/bin/sh', '-c', 'exit 3']));
    assert.deepEqual(await driver.waitExit(exited).then((e) => [e.code, e.signal, e.known]), [3, null, true]);

    const killed = await driver.start(request(dir, ['/bin/sleep', '60']));
    killGroupAfter(t, killed.pgid);
    const seen = new Promise((resolve) => driver.onExit(killed, resolve));
    process.kill(killed.pid, 'SIGKILL');
    assert.deepEqual(await seen.then((e) => [(e as { code: unknown }).code, (e as { signal: unknown }).signal]), [null, 'SIGKILL']);
  });

  test(`${spawn}: the program is looked up in the child's PATH, past entries that are not executable, as execvp does`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    const [locked, good] = [join(dir, 'locked'), join(dir, 'good')];
    await mkdir(locked);
    await mkdir(good);
    await writeFile(join(locked, 'hello'), '#!/bin/sh\necho locked\n', { mode: 0o644 });
    await writeFile(join(good, 'hello'), '#!/bin/sh\necho good\n', { mode: 0o755 });
    await chmod(join(good, 'hello'), 0o755);

    const req = request(dir, ['hello'], { PATH: `${join(dir, 'missing')}:${locked}:${good}` });
    const handle = await driver.start(req);
    assert.equal((await driver.waitExit(handle)).code, 0);
    assert.equal(await readFile(req.logs.stdout, 'utf8'), 'good\n');

    const denied = await startError(driver, request(dir, ['hello'], { PATH: locked }));
    assert.equal(denied.message, 'child: command "hello" cannot be executed: permission denied');
    const missing = await startError(driver, request(dir, ['hello'], { PATH: join(dir, 'missing') }));
    assert.equal(missing.message, 'child: command "hello" not found in PATH');
  });

  test(`${spawn}: a cwd that is missing or a file is a StartError naming it; logs under a missing cwd do not make it again`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    // driver.start alone, as a crash restart of the daemon calls it (no driver.check first).
    const app = join(dir, 'app');
    const req = request(dir, ['/bin/true']);
    req.manifest = processManifest('child', ['/bin/true'], app);
    req.logs = { stdout: join(app, 'log', 'out.log'), stderr: join(app, 'log', 'out.log') };
    assert.equal((await startError(driver, req)).message, `child: cwd ${app} does not exist`);
    assert.deepEqual(await readdir(dir), [], 'no folder was made');
    const file = join(dir, 'file');
    await writeFile(file, '');
    req.manifest = processManifest('child', ['/bin/true'], file);
    assert.equal((await startError(driver, req)).message, `child: cwd ${file} is not a directory`);
  });

  test(`${spawn}: a file that is not a program (native), a missing program and a NUL byte are StartErrors, and nothing is left`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    const garbage = join(dir, 'garbage');
    await writeFile(garbage, Buffer.from([0, 1, 2, 3, 0x7f, 0x45]));
    await chmod(garbage, 0o755);
    if (spawn === 'native') {
      assert.equal((await startError(driver, request(dir, [garbage]))).message, `child: command "${garbage}" is not a program the system can run`);
    } else {
      // glibc's execvp, which libuv calls, hands a file the kernel cannot run to /bin/sh.
      const handle = await driver.start(request(dir, [garbage]));
      assert.notEqual((await driver.waitExit(handle)).code, 0);
    }
    assert.equal((await startError(driver, request(dir, [join(dir, 'nope')]))).message, `child: command "${join(dir, 'nope')}" not found`);
    assert.match((await startError(driver, request(dir, ['/bin/echo', 'a\0b']))).message, /^child: cannot start "\/bin\/echo": /);
    assert.deepEqual(await zombiesOfThisProcess(), []);
  });

  test(`${spawn}: a log or notification file that cannot be opened is a StartError naming it, and nothing runs`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    // Failures root cannot bypass: a folder where the log file should be, a notify file in a folder that is gone.
    const ran = join(dir, 'ran');
    const logIsFolder = request(dir, ['/usr/bin/touch', ran]);
    const folder = join(dir, 'a-folder');
    await mkdir(folder);
    logIsFolder.logs = { stdout: folder, stderr: folder };
    assert.match((await startError(driver, logIsFolder)).message, /^child: cannot open log file: EISDIR/);

    const readyFile = join(dir, 'gone', 'ready');
    const notifyGone = { ...request(dir, ['/usr/bin/touch', ran]), readyFile };
    const base = notifyGone.manifest;
    notifyGone.manifest = { ...base, spec: { ...base.spec, probes: { startup: { notify: { fd: 3 }, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 } } } };
    const err = await startError(driver, notifyGone);
    assert.equal(err.message.startsWith(`child: cannot open its notification file ${readyFile}: ENOENT`), true, err.message);
    assert.equal(await readFile(ran).then(() => 'ran', () => 'never ran'), 'never ran');
    assert.deepEqual(await zombiesOfThisProcess(), []);
  });

  test(`${spawn}: the handle's start time is the kernel's, for a program named with spaces and parentheses`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    // The kernel's command name (field 2 of /proc/PID/stat) is the file's name: ") (x y" puts a
    // space-separated ")" where a parser counting fields from the first one would go wrong.
    const program = join(dir, 'a) (x y');
    await writeFile(program, await readFile('/bin/sleep'));
    await chmod(program, 0o755);
    const handle = await driver.start(request(dir, [program, '60']));
    killGroupAfter(t, handle.pgid);
    const stat = parseProcStat(await readFile(`/proc/${handle.pid}/stat`, 'utf8'));
    assert.match(handle.startTime, /^\d+$/);
    assert.equal(handle.startTime, stat?.startTime);
  });

  test(`${spawn}: every child that ends is reaped`, async (t) => {
    const driver = driverFor(t, spawn);
    if (!driver) return;
    const dir = await tempDir(t);
    const handles = await Promise.all(Array.from({ length: 20 }, () => driver.start(request(dir, ['/bin/true']))));
    const exits = await Promise.all(handles.map((h) => driver.waitExit(h)));
    assert.deepEqual(new Set(exits.map((e) => e.code)), new Set([0]));
    assert.deepEqual(await zombiesOfThisProcess(), []);
  });
}

test('native: files to open are opened in the thread pool, one path asked twice is one shared description, and a failed open starts nothing', async (t) => {
  const native = loadNativeSpawner();
  if ('reason' in native) {
    if (process.env.PM_TEST_STRICT === '1') assert.fail(`the native spawner ${native.reason}`);
    return t.skip(`the native spawner ${native.reason}`);
  }
  const dir = await tempDir(t);
  const [log, ready, ran] = [join(dir, 'out.log'), join(dir, 'ready'), join(dir, 'ran')];
  await writeFile(log, 'earlier\n');
  await writeFile(ready, 'from an earlier run\n');
  const append = { path: log, flags: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, mode: 0o640 };
  const emptied = { path: ready, flags: constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, mode: 0o600 };
  let onExit: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => (onExit = resolve));
  const child = await native.spawner.spawn({
    file: '/bin/sh',
    args: ['-c', 'echo out; echo err >&2; echo READY=1 >&3; exec sleep 60'],
    env: { PATH: '/usr/bin:/bin' },
    cwd: undefined,
    fds: [undefined, append, append, emptied],
    onExit: () => onExit(),
  });
  t.after(async () => {
    process.kill(child.pid, 'SIGKILL');
    await exited;
  });
  await waitFor(async () => (await readFile(ready, 'utf8')) === 'READY=1\n', { message: 'the child to write to descriptor 3' });
  assert.equal(await readFile(log, 'utf8'), 'earlier\nout\nerr\n');
  // One open file description: the write to 2 moved the offset 1 reads too (two opens would each keep their own).
  const pos = async (fd: number): Promise<string | undefined> => /^pos:\s+(\d+)$/m.exec(await readFile(`/proc/${child.pid}/fdinfo/${fd}`, 'utf8'))?.[1];
  assert.equal(await pos(1), await pos(2));

  const missing = join(dir, 'gone', 'out.log');
  const failed = await native.spawner.spawn({ file: '/usr/bin/touch', args: [ran], env: {}, cwd: undefined, fds: [undefined, { ...append, path: missing }, append], onExit: () => undefined }).then(
    () => assert.fail('the spawn should have failed'),
    (err: unknown) => err as NodeJS.ErrnoException & { fd?: number },
  );
  assert.deepEqual([failed.code, failed.syscall, failed.path, failed.fd], ['ENOENT', 'open', missing, 1]);
  assert.equal(isOpenFailure(failed), true);
  assert.equal(await readFile(ran).then(() => 'ran', () => 'never ran'), 'never ran');
});

test('native: the daemon names the spawner it uses', (t) => {
  const native = loadNativeSpawner();
  if ('reason' in native) {
    if (process.env.PM_TEST_STRICT === '1') assert.fail(`the native spawner ${native.reason}`);
    t.skip(`the native spawner ${native.reason}`);
    return;
  }
  assert.deepEqual(describeSpawner('auto'), { spawn: 'posix_spawn' });
  assert.deepEqual(describeSpawner('node'), { spawn: 'node', reason: 'spawn: node was asked for' });
});

test('PM_SPAWN: auto by default, the three names, and anything else refused', () => {
  assert.equal(spawnChoiceOf({}), 'auto');
  assert.equal(spawnChoiceOf({ PM_SPAWN: '' }), 'auto');
  for (const name of ['auto', 'native', 'node']) assert.equal(spawnChoiceOf({ PM_SPAWN: name }), name);
  assert.throws(
    () => spawnChoiceOf({ PM_SPAWN: 'fork' }),
    (err: unknown) => err instanceof PmError && err.code === 'E_PM_SPAWN' && /PM_SPAWN=fork/.test(err.message),
  );
});

/** Descriptors above 2 this test process holds without close-on-exec (what it inherited so). */
async function inheritedDescriptors(): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc/self/fd')) {
    const fd = Number(entry);
    if (fd < 3) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
    if (flags !== undefined && (parseInt(flags, 8) & 0o2000000) === 0) found.push(fd);
  }
  return found.sort((a, b) => a - b);
}

/** Children of this test process left as zombies: an exit nobody reaped. */
async function zombiesOfThisProcess(): Promise<number[]> {
  const zombies: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = parseProcStat(await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => ''));
    if (stat && stat.ppid === process.pid && stat.state === 'Z') zombies.push(stat.pid);
  }
  return zombies;
}
