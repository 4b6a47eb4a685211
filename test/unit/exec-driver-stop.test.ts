// ExecDriver stop, inspect and waitExit: process groups, forced kills, later pm commands
// (a second driver instance) and PIDs reused by other programs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { test, type TestContext } from 'node:test';
import type { ExecHandle, StartRequest } from '../../src/drivers/driver.js';
import { ExecDriver, readBootId, readProcessIdentity } from '../../src/drivers/exec/index.js';
import { environHas } from '../../src/drivers/exec/instance.js';
import { readProcStat } from '../../src/drivers/exec/proc.js';
import { nodeScript } from '../support/exec-fixtures.js';
import { isAlive, killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor, waitForValue } from '../support/wait.js';

const FOREVER = 'setInterval(() => {}, 1000);';
const TRAP_TERM = "process.on('SIGTERM', () => console.log('SIGTERM ignored'));";
const LONG_GRACE = { signal: 'SIGTERM', gracePeriodMs: 30_000 } as const;

async function start(t: TestContext, driver: ExecDriver, request: StartRequest): Promise<ExecHandle> {
  const handle = await driver.start(request);
  killGroupAfter(t, handle.pgid);
  return handle;
}

/** Waits until the log holds a line matching `pattern` and returns the first capture group. */
async function logLine(request: StartRequest, pattern: RegExp): Promise<string> {
  return waitForValue(async () => pattern.exec(await readFile(request.logs.stdout, 'utf8').catch(() => ''))?.[1], {
    message: `log line ${pattern}`,
  });
}

/** A node child that is not started by the driver: another program that happens to hold a PID. */
async function unrelatedProcess(t: TestContext): Promise<number> {
  const child = spawn(process.execPath, ['-e', FOREVER], { detached: true, stdio: 'ignore' });
  killGroupAfter(t, () => child.pid);
  await once(child, 'spawn');
  child.unref();
  return child.pid!;
}

test('stop: SIGTERM ends the process; the exit is known', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const handle = await start(t, driver, nodeScript(dir, FOREVER));

  const result = await driver.stop(handle, LONG_GRACE);
  assert.equal(result.wasRunning, true);
  assert.equal(result.forced, false);
  assert.deepEqual({ ...result.exit, at: 0 }, { code: null, signal: 'SIGTERM', known: true, at: 0 });
  assert.equal(isAlive(handle.pid), false);
  assert.deepEqual(await driver.inspect(handle), { state: 'exited', exit: result.exit });
});

test('stop: a process that ignores SIGTERM gets SIGKILL after the grace period', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const request = nodeScript(dir, `${TRAP_TERM} console.log('ready'); ${FOREVER}`);
  const handle = await start(t, driver, request);
  await logLine(request, /^(ready)$/m);

  const result = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 200 });
  assert.equal(result.forced, true);
  assert.equal(result.wasRunning, true);
  assert.equal(result.exit?.signal, 'SIGKILL');
  assert.match(await readFile(request.logs.stdout, 'utf8'), /SIGTERM ignored/, 'SIGTERM was sent first');
});

test('stop: the whole group goes, including grandchildren that outlive the leader', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  // The grandchild ignores SIGTERM; the leader exits on it. stop must still wait for the group.
  const grandchild = `${TRAP_TERM} console.log('grandchild ready'); ${FOREVER}`;
  const script = `
    const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: 'inherit' });
    console.log('grandchild ' + c.pid);
    ${FOREVER}`;
  const request = nodeScript(dir, script);
  const handle = await start(t, driver, request);
  const grandchildPid = Number(await logLine(request, /^grandchild (\d+)$/m));
  await logLine(request, /^(grandchild ready)$/m);
  assert.equal(isAlive(grandchildPid), true);

  const result = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 200 });
  assert.equal(result.wasRunning, true);
  assert.equal(result.forced, true, 'the grandchild ignored SIGTERM');
  assert.equal(result.exit?.signal, 'SIGTERM', 'the leader itself ended on SIGTERM');
  assert.equal(isAlive(grandchildPid), false);
  assert.equal(isAlive(handle.pid), false);
});

test('stop: members left in the group after the leader exited are stopped too', async (t) => {
  for (const later of [false, true]) {
    const dir = await tempDir(t);
    const driver = new ExecDriver();
    const script = `
      const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(FOREVER)}], { stdio: 'inherit' });
      console.log('grandchild ' + c.pid);
      process.exit(0);`;
    const request = nodeScript(dir, script);
    const handle = await start(t, driver, request);
    const grandchildPid = Number(await logLine(request, /^grandchild (\d+)$/m));
    assert.equal((await driver.waitExit(handle)).code, 0);
    assert.equal(isAlive(grandchildPid), true, 'the grandchild outlives the leader');

    const stopper = later ? new ExecDriver() : driver;
    const result = await stopper.stop(handle, LONG_GRACE);
    assert.deepEqual({ wasRunning: result.wasRunning, forced: result.forced }, { wasRunning: true, forced: false }, `later: ${later}`);
    assert.equal(isAlive(grandchildPid), false, `later: ${later}`);
  }
});

test('stop: a leaderless group that is not ours is never signalled, whatever the handle says', async (t) => {
  // A double-forking daemon: setsid makes sh lead a new session and group, sh puts sleep in the
  // background and exits. The group lives on without its leader, under sh's former PID.
  const daemon = spawn('setsid', ['sh', '-c', 'sleep 4242 </dev/null >/dev/null 2>&1 & echo $!; exit 0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let output = '';
  daemon.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  await once(daemon, 'close');
  const sleepPid = Number(output.trim());
  assert.ok(sleepPid > 1, `sleep's PID: ${JSON.stringify(output)}`);
  t.after(() => {
    if (isAlive(sleepPid)) process.kill(sleepPid, 'SIGKILL');
  });
  const stat = await readProcStat(sleepPid);
  assert.ok(stat);
  const pgid = stat.pgrp;
  assert.notEqual(pgid, sleepPid);
  assert.equal(await readProcessIdentity(pgid), undefined, 'the group has no leader');

  // A handle pointing at that group: its leader is gone, as if pm's process had exited and the
  // number had since been taken by the daemon's group.
  const stale: ExecHandle = { driver: 'exec', pid: pgid, pgid, startTime: '1', bootId: await readBootId() };
  for (const handle of [stale, { ...stale, instance: '0123456789abcdef0123456789abcdef' }]) {
    for (const driver of [new ExecDriver(), new ExecDriver()]) {
      const result = await driver.stop(handle, { signal: 'SIGKILL', gracePeriodMs: 0 });
      assert.deepEqual({ wasRunning: result.wasRunning, forced: result.forced }, { wasRunning: false, forced: false }, `instance: ${handle.instance}`);
      assert.equal(isAlive(sleepPid), true, `the daemon's sleep was not signalled (instance: ${handle.instance})`);
    }
  }
});

test('stop: once the leader is gone, only members carrying the exact instance marker are signalled', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  // Three children stay in the group: one inherits the environment (and the marker), one has a
  // marker that only starts like ours, one has none. Then the leader exits.
  const script = `
    const { spawn } = require('child_process');
    const keep = (env) => spawn(process.execPath, ['-e', ${JSON.stringify(FOREVER)}], { stdio: 'inherit', env }).pid;
    const marked = keep(process.env);
    const lookalike = keep({ ...process.env, PM_INSTANCE: process.env.PM_INSTANCE + '0' });
    const unmarked = keep({ PATH: process.env.PATH });
    console.log('marker ' + process.env.PM_INSTANCE);
    console.log('children ' + marked + ' ' + lookalike + ' ' + unmarked);
    process.exit(0);`;
  const request = nodeScript(dir, script);
  const handle = await start(t, driver, request);
  const [marked, lookalike, unmarked] = (await logLine(request, /^children (\d+ \d+ \d+)$/m)).split(' ').map(Number) as [number, number, number];
  assert.equal(await logLine(request, /^marker (\w+)$/m), handle.instance, 'the process sees its marker as PM_INSTANCE');
  assert.equal((await driver.waitExit(handle)).code, 0);
  for (const pid of [marked, lookalike, unmarked]) await waitFor(() => isAlive(pid), { message: `child ${pid} running` });

  // A handle recorded before markers existed: pm cannot tell its leftovers from strangers, so it
  // signals nothing.
  const { instance: _, ...legacy } = handle;
  const old = await new ExecDriver().stop(legacy, LONG_GRACE);
  assert.equal(old.wasRunning, false);
  assert.deepEqual([marked, lookalike, unmarked].map(isAlive), [true, true, true]);

  for (const stopper of [new ExecDriver(), driver]) {
    const result = await stopper.stop(handle, LONG_GRACE);
    assert.deepEqual({ wasRunning: result.wasRunning, forced: result.forced }, { wasRunning: stopper !== driver, forced: false });
  }
  assert.equal(isAlive(marked), false, 'our leftover was stopped');
  assert.equal(isAlive(lookalike), true, 'a marker that only starts like ours is not ours');
  assert.equal(isAlive(unmarked), true);
});

test('environHas matches whole NUL-separated entries only', () => {
  const environ = Buffer.from('A=1\0PM_INSTANCE=abc\0XPM_INSTANCE=def\0PM_INSTANCE=ghi0\0LAST=x');
  assert.equal(environHas(environ, 'PM_INSTANCE=abc'), true);
  assert.equal(environHas(environ, 'LAST=x'), true);
  assert.equal(environHas(environ, 'A=1'), true);
  assert.equal(environHas(environ, 'PM_INSTANCE=def'), false);
  assert.equal(environHas(environ, 'PM_INSTANCE=ghi'), false);
  assert.equal(environHas(environ, 'PM_INSTANCE=ab'), false);
  assert.equal(environHas(Buffer.alloc(0), 'A=1'), false);
});

test('stop: safe to call twice, and concurrently', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const handle = await start(t, driver, nodeScript(dir, FOREVER));

  const [a, b] = await Promise.all([driver.stop(handle, LONG_GRACE), driver.stop(handle, LONG_GRACE)]);
  assert.equal(a.wasRunning && b.wasRunning, true);
  assert.deepEqual(b, a, 'one stop, one outcome');
  const again = await driver.stop(handle, LONG_GRACE);
  assert.equal(again.wasRunning, false);
  assert.equal(again.forced, false);
  assert.deepEqual(again.exit, a.exit, 'an own child still reports how it ended');
});

test('stop: a process that already exited was not running', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const handle = await start(t, driver, nodeScript(dir, 'process.exit(0)'));
  await driver.waitExit(handle);

  const result = await driver.stop(handle, LONG_GRACE);
  assert.equal(result.wasRunning, false);
  assert.equal(result.forced, false);
  assert.equal(result.exit?.code, 0);
  assert.equal((await new ExecDriver().stop(handle, LONG_GRACE)).wasRunning, false, 'nor for a later pm command');
});

test('a later pm command (second driver) finds the process, and sees it exit without knowing how', async (t) => {
  const dir = await tempDir(t);
  const first = new ExecDriver();
  const handle = await start(t, first, nodeScript(dir, FOREVER));
  const stored: ExecHandle = JSON.parse(JSON.stringify(handle)) as ExecHandle;

  const later = new ExecDriver();
  assert.deepEqual(await later.inspect(stored), { state: 'running', pid: handle.pid });
  const waiting = later.waitExit(stored);
  process.kill(handle.pid, 'SIGTERM');

  const exit = await waiting;
  assert.deepEqual({ code: exit.code, signal: exit.signal, known: exit.known }, { code: null, signal: null, known: false });
  const seen = await later.inspect(stored);
  assert.equal(seen.state, 'exited');
  assert.equal(seen.state === 'exited' && seen.exit.known, false);
  assert.equal((await later.stop(stored, LONG_GRACE)).wasRunning, false);

  const own = await first.inspect(handle);
  assert.equal(own.state === 'exited' && own.exit.signal, 'SIGTERM', 'the parent driver knows the signal');
});

test('a later pm command (second driver) stops a running process', async (t) => {
  const dir = await tempDir(t);
  const handle = await start(t, new ExecDriver(), nodeScript(dir, FOREVER));

  const later = new ExecDriver();
  const result = await later.stop(handle, LONG_GRACE);
  assert.equal(result.wasRunning, true);
  assert.equal(result.forced, false);
  assert.equal(result.exit?.known, false);
  assert.equal(isAlive(handle.pid), false);
});

test('a PID reused by another program is never treated as ours, nor signalled', async (t) => {
  const pid = await unrelatedProcess(t);
  const identity = await readProcessIdentity(pid);
  assert.ok(identity);
  const bootId = await readBootId();
  const wrongStart: ExecHandle = { driver: 'exec', pid, pgid: pid, startTime: String(Number(identity.startTime) + 1), bootId };
  const wrongBoot: ExecHandle = { ...wrongStart, startTime: identity.startTime, bootId: 'another-boot' };

  for (const handle of [wrongStart, wrongBoot]) {
    const driver = new ExecDriver();
    const seen = await driver.inspect(handle);
    assert.equal(seen.state, 'exited');
    assert.equal(seen.state === 'exited' && seen.exit.known, false);
    assert.equal((await driver.waitExit(handle)).known, false);
    const result = await driver.stop(handle, { signal: 'SIGKILL', gracePeriodMs: 0 });
    assert.deepEqual({ wasRunning: result.wasRunning, forced: result.forced }, { wasRunning: false, forced: false });
    assert.equal(isAlive(pid), true, 'the other program was not signalled');
  }

  // Right process, but a stored group id that is not the process's own: not signalled either.
  const wrongGroup: ExecHandle = { driver: 'exec', pid, pgid: 2 ** 22 + 1, startTime: identity.startTime, bootId };
  const result = await new ExecDriver().stop(wrongGroup, { signal: 'SIGKILL', gracePeriodMs: 0 });
  assert.equal(result.wasRunning, false);
  assert.equal(isAlive(pid), true);
});

test('waitExit: an abort signal ends the wait, for own children and for polled processes', async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const handle = await start(t, driver, nodeScript(dir, FOREVER));

  for (const waiter of [driver, new ExecDriver()]) {
    const controller = new AbortController();
    const waiting = waiter.waitExit(handle, controller.signal);
    controller.abort();
    await assert.rejects(waiting, { name: 'AbortError' });
    await assert.rejects(waiter.waitExit(handle, controller.signal), { name: 'AbortError' }, 'already aborted');
  }
  assert.equal(isAlive(handle.pid), true, 'aborting a wait does not touch the process');
  await driver.stop(handle, LONG_GRACE);
});
