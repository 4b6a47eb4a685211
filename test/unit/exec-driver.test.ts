// ExecDriver.start: spawning, identity, log files and start errors, against real node children.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test, type TestContext } from 'node:test';
import type { ExecHandle, StartRequest } from '../../src/drivers/driver.js';
import { ExecDriver, parseProcStat, readBootId } from '../../src/drivers/exec/index.js';
import { findProgram } from '../../src/drivers/exec/preflight.js';
import { StartError } from '../../src/errors.js';
import { nodeScript, processManifest } from '../support/exec-fixtures.js';
import { isAlive, killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const FOREVER = 'setInterval(() => {}, 1000);';

async function start(t: TestContext, driver: ExecDriver, request: StartRequest): Promise<ExecHandle> {
  const handle = await driver.start(request);
  killGroupAfter(t, handle.pgid);
  return handle;
}

async function fileText(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

test('start: the process runs in its own group and session, with a stored identity', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const request = nodeScript(dir, `console.log('hello'); ${FOREVER}`);
  const handle = await start(t, driver, request);

  assert.equal(handle.driver, 'exec');
  assert.equal(handle.pgid, handle.pid);
  assert.match(handle.startTime, /^\d+$/);
  assert.equal(handle.bootId, await readBootId());
  assert.deepEqual(await driver.inspect(handle), { state: 'running', pid: handle.pid });

  const procStat = parseProcStat(await readFile(`/proc/${handle.pid}/stat`, 'utf8'));
  assert.equal(procStat?.pgrp, handle.pid, 'leads its own process group');
  assert.equal(procStat?.session, handle.pid, 'leads its own session');
  assert.equal(procStat?.startTime, handle.startTime);

  await waitFor(async () => (await fileText(request.logs.stdout)) === 'hello\n', { message: 'output in the log file' });
});

test('start: stdout and stderr sharing one file keep their order', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const script = "const fs = require('fs'); for (let i = 0; i < 5; i++) { fs.writeSync(1, 'out' + i + '\\n'); fs.writeSync(2, 'err' + i + '\\n'); }";
  const request = nodeScript(dir, script);
  const handle = await start(t, driver, request);

  const exit = await driver.waitExit(handle);
  assert.equal(exit.code, 0);
  const expected = [0, 1, 2, 3, 4].map((i) => `out${i}\nerr${i}\n`).join('');
  assert.equal(await readFile(request.logs.stdout, 'utf8'), expected);
});

test('start: separate log files are created in new folders, appended to, and not readable by others', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const logs = { stdout: join(dir, 'a', 'b', 'out.log'), stderr: join(dir, 'c', 'err.log') };
  const request = nodeScript(dir, "console.log('to stdout'); console.error('to stderr');", { logs });
  const first = await start(t, driver, request);
  await driver.waitExit(first);
  const second = await start(t, driver, request);
  await driver.waitExit(second);

  assert.equal(await readFile(logs.stdout, 'utf8'), 'to stdout\nto stdout\n');
  assert.equal(await readFile(logs.stderr, 'utf8'), 'to stderr\nto stderr\n');
  for (const path of [logs.stdout, logs.stderr]) {
    const mode = (await stat(path)).mode & 0o777;
    assert.equal(mode & 0o027, 0, `${path} has mode ${mode.toString(8)}: no group write, nothing for others`);
  }
});

test('start: the environment is exactly the requested one plus the instance marker, and cwd is applied', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  // A PM_INSTANCE in the request cannot forge the marker: the driver's own wins.
  const env = { PM_TEST_VALUE: 'x y=z', PM_INSTANCE: 'forged' };
  const request = nodeScript(dir, 'console.log(JSON.stringify({ env: process.env, cwd: process.cwd() }));', { env });
  const handle = await start(t, driver, request);
  await driver.waitExit(handle);

  assert.match(handle.instance ?? '', /^[0-9a-f]{32}$/, '128 random bits, in hex');
  const seen = JSON.parse(await readFile(request.logs.stdout, 'utf8')) as { env: Record<string, string>; cwd: string };
  assert.deepEqual(seen.env, { PM_TEST_VALUE: 'x y=z', PM_INSTANCE: handle.instance });
  assert.equal(seen.cwd, dir);
  const other = await start(t, driver, nodeScript(dir, ''));
  assert.notEqual(other.instance, handle.instance, 'every start gets its own marker');
});

test('start: a command missing from PATH is a StartError that names it', async (t) => {
  const dir = await tempDir(t);
  const request = nodeScript(dir, '');
  request.manifest = processManifest('child', ['nodee-not-a-command', '--version'], dir);

  const err = await new ExecDriver().start(request).then(
    () => assert.fail('start should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StartError);
  assert.equal(err.code, 'E_START');
  assert.match(err.message, /^child: command "nodee-not-a-command" not found in PATH$/);
  assert.match(err.hint ?? '', /PATH is /);
});

test('start: a missing absolute command and a file that is not executable are StartErrors', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const missing = nodeScript(dir, '');
  missing.manifest = processManifest('child', [join(dir, 'no-such-program')], dir);
  await assert.rejects(driver.start(missing), (e: unknown) => e instanceof StartError && /command ".*no-such-program" not found$/.test(e.message));

  const script = join(dir, 'not-executable.sh');
  await writeFile(script, '#!/bin/sh\nexit 0\n');
  await chmod(script, 0o644);
  const denied = nodeScript(dir, '');
  denied.manifest = processManifest('child', [script], dir);
  await assert.rejects(driver.start(denied), (e: unknown) => e instanceof StartError && /cannot be executed: permission denied/.test(e.message));
});

test('start: a cwd that does not exist, or is a file, is a StartError that names it', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const missingCwd = join(dir, 'missing');
  const request = nodeScript(dir, FOREVER);
  request.manifest = processManifest('child', [process.execPath, '-e', FOREVER], missingCwd);
  await assert.rejects(driver.start(request), (e: unknown) => e instanceof StartError && e.message === `child: cwd ${missingCwd} does not exist`);

  const file = join(dir, 'file');
  await writeFile(file, '');
  request.manifest = processManifest('child', [process.execPath, '-e', FOREVER], file);
  await assert.rejects(driver.start(request), (e: unknown) => e instanceof StartError && e.message === `child: cwd ${file} is not a directory`);
});

test('start: the exit code of an own child is known', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const handle = await start(t, driver, nodeScript(dir, 'process.exit(3)'));

  const exit = await driver.waitExit(handle);
  assert.deepEqual({ code: exit.code, signal: exit.signal, known: exit.known }, { code: 3, signal: null, known: true });
  assert.deepEqual(await driver.inspect(handle), { state: 'exited', exit });
  assert.deepEqual(await driver.waitExit(handle), exit, 'waitExit after the exit answers at once');
});

test('start: the process keeps running after the pm process that started it has exited', async (t) => {
  const dir = await tempDir(t);
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const driverModule = join(repo, 'src', 'drivers', 'exec', 'index.ts');
  const request = nodeScript(dir, FOREVER);
  const pmScript = join(dir, 'pm.mts');
  await writeFile(
    pmScript,
    `import { ExecDriver } from ${JSON.stringify(driverModule)};
     const handle = await new ExecDriver().start(${JSON.stringify(request)});
     console.log(JSON.stringify(handle));`,
  );
  // If start() left anything holding the event loop, this would not exit (and time out).
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', pmScript], { cwd: repo, timeout: 20_000 });
  const handle = JSON.parse(stdout) as ExecHandle;
  killGroupAfter(t, handle.pgid);

  assert.equal(isAlive(handle.pid), true);
  const driver = new ExecDriver();
  assert.deepEqual(await driver.inspect(handle), { state: 'running', pid: handle.pid });
  const result = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 30_000 });
  assert.equal(result.wasRunning, true);
  assert.equal(result.exit?.known, false);
});

test('check: the program is the first executable file along PATH, though the folders are looked in at once; cwd and program problems are named', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const [first, second, plain] = [join(dir, 'first'), join(dir, 'second'), join(dir, 'plain')];
  for (const folder of [first, second, plain]) await mkdir(folder);
  for (const folder of [first, second]) await writeFile(join(folder, 'tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  // Not executable, and a folder named like the program: neither is a candidate.
  await writeFile(join(plain, 'tool'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });
  await mkdir(join(dir, 'folder-tool'));
  const request = (command: [string, ...string[]], cwd: string, PATH: string): StartRequest => ({ name: 'child', manifest: processManifest('child', command, cwd), env: { PATH }, logs: { stdout: join(dir, 'log'), stderr: join(dir, 'log') } });
  assert.equal(await findProgram('tool', dir, `${plain}:${second}:${first}`), join(second, 'tool'));
  assert.equal(await findProgram('tool', dir, `${first}:${second}`), join(first, 'tool'));
  assert.equal(await findProgram('tool', dir, plain), undefined);
  await driver.check(request(['tool'], dir, `${plain}:${first}`));
  await assert.rejects(driver.check(request(['tool'], dir, plain)), (e: unknown) => e instanceof StartError && e.message === 'child: command "tool" not found in PATH');
  await assert.rejects(driver.check(request(['./folder-tool'], dir, plain)), (e: unknown) => e instanceof StartError && e.message === `child: command "./folder-tool" is not an executable file (looked at ${join(dir, 'folder-tool')})`);
  // The cwd is reported before the program, though both are wrong.
  await assert.rejects(driver.check(request(['tool'], join(dir, 'gone'), plain)), (e: unknown) => e instanceof StartError && e.message === `child: cwd ${join(dir, 'gone')} does not exist`);
});
