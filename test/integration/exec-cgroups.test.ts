// Resource limits of exec processes through real cgroups: memory, cpus, pids and ioWeight put the
// process in a cgroup of its own (<pm's cgroup>/pm-exec/<process>-<instance>) before its first
// instruction, the kernel enforces them, and the cgroup goes once the run has ended. Needs root
// and a writable hierarchy with the memory, cpu and pids controllers: skipped with the reason
// otherwise (a failure under PM_TEST_STRICT=1). The v2 file writes are tested against a fake
// hierarchy in test/unit/exec-cgroup.test.ts.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ExecHandle, StartRequest } from '../../src/drivers/driver.js';
import { SUBTREE } from '../../src/drivers/exec/cgroup/index.js';
import { parseProcCgroup } from '../../src/drivers/exec/cgroup/detect.js';
import { ExecDriver, parseProcStat } from '../../src/drivers/exec/index.js';
import { StartError } from '../../src/errors.js';
import type { Resources } from '../../src/manifest/types.js';
import { cgroupDirsOf, cgroupFile, cgroupProcessName, cgroupSkip, removeRunCgroupsAfter, runCgroupsOf, subtreeDirs } from '../support/cgroups.js';
import { createSandbox, isRunningWith } from '../support/cli.js';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import { processManifest } from '../support/exec-fixtures.js';
import { isAlive, killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const skip = await cgroupSkip();
const MI = 1024 * 1024;
const IDLE = "console.log('up'); setInterval(() => {}, 1000);";
const LIMITS: Resources = { memory: '64Mi', cpus: 0.5, pids: 20 };

/** A request for `command` under `resources`, logging to DIR/NAME.log. */
function request(dir: string, name: string, command: [string, ...string[]], resources: Resources): StartRequest {
  const manifest = processManifest(name, command, dir);
  const log = join(dir, `${name}.log`);
  return { name, manifest: { ...manifest, spec: { ...manifest.spec, resources } }, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, logs: { stdout: log, stderr: log } };
}

/** A process name for this test whose run cgroups are removed when it ends. */
function nameFor(t: TestContext, label: string): string {
  const name = cgroupProcessName(label);
  removeRunCgroupsAfter(t, () => [name]);
  return name;
}

async function start(t: TestContext, driver: ExecDriver, req: StartRequest): Promise<ExecHandle> {
  await driver.check(req);
  const handle = await driver.start(req);
  killGroupAfter(t, handle.pgid);
  return handle;
}

const text = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');
const stop = (driver: ExecDriver, handle: ExecHandle): Promise<unknown> => driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 2000 });

test('memory, cpus, pids: the program is in its own cgroup from its first instruction, which goes when it exits', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'first');
  const driver = new ExecDriver();
  // cat reads its own cgroup membership as the first thing it does.
  const req = request(dir, name, ['/bin/cat', '/proc/self/cgroup'], LIMITS);
  const handle = await start(t, driver, req);
  assert.equal((await driver.waitExit(handle)).code, 0);

  const seen = parseProcCgroup(await text(req.logs.stdout));
  for (const controller of ['memory', 'cpu', 'pids']) {
    const entry = seen.find((e) => e.controllers.includes(controller)) ?? seen.find((e) => e.id === 0);
    assert.ok(entry?.path.endsWith(`/${SUBTREE}/${name}-${handle.instance}`), `${controller}: ${entry?.path}`);
  }
  await waitFor(async () => (await runCgroupsOf(name)).length === 0, { message: 'its cgroups to be removed after the exit' });
});

test('with a notify probe on descriptor 3 the gate waits on 4: the program is in its cgroup and writes its line to 3', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'notify');
  const driver = new ExecDriver();
  const readyFile = join(dir, 'ready');
  // The program reads its cgroup membership, then notifies on 3, which the gate left alone.
  const base = request(dir, name, ['/bin/sh', '-c', 'cat /proc/self/cgroup; echo READY=1 >&3'], LIMITS);
  const req: StartRequest = { ...base, readyFile, manifest: { ...base.manifest, spec: { ...base.manifest.spec, probes: { startup: { notify: { fd: 3 }, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 } } } } };
  const handle = await start(t, driver, req);
  assert.equal((await driver.waitExit(handle)).code, 0, await text(req.logs.stdout));
  assert.equal(await text(readyFile), 'READY=1\n');
  const entry = parseProcCgroup(await text(req.logs.stdout)).find((e) => e.controllers.includes('memory') || e.id === 0);
  assert.ok(entry?.path.endsWith(`/${SUBTREE}/${name}-${handle.instance}`), `memory: ${entry?.path}`);
});

test('the limits are in the cgroup files, the PID and group are the program\'s own, and stop removes the cgroups', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'files');
  const driver = new ExecDriver();
  const req = request(dir, name, [process.execPath, '-e', IDLE], LIMITS);
  const handle = await start(t, driver, req);
  await waitFor(async () => (await text(req.logs.stdout)) === 'up\n', { message: 'the program to run' });

  const dirs = await cgroupDirsOf(handle.pid);
  const v2 = dirs.get('');
  if (v2?.includes(`/${SUBTREE}/`)) {
    assert.equal(await cgroupFile(v2, 'memory.max'), String(64 * MI));
    assert.equal(await cgroupFile(v2, 'cpu.max'), '50000 100000');
    assert.equal(await cgroupFile(v2, 'pids.max'), '20');
  } else {
    const [memory, cpu, pids] = ['memory', 'cpu', 'pids'].map((c) => [...dirs].find(([key]) => key.split(',').includes(c))?.[1] ?? '');
    assert.equal(await cgroupFile(memory!, 'memory.limit_in_bytes'), String(64 * MI));
    const memsw = await cgroupFile(memory!, 'memory.memsw.limit_in_bytes').catch(() => undefined);
    if (memsw !== undefined) assert.equal(memsw, String(64 * MI), 'swap is within the limit too');
    assert.equal(await cgroupFile(cpu!, 'cpu.cfs_period_us'), '100000');
    assert.equal(await cgroupFile(cpu!, 'cpu.cfs_quota_us'), '50000');
    assert.equal(await cgroupFile(pids!, 'pids.max'), '20');
    for (const cgroup of [memory!, cpu!, pids!]) assert.equal(await cgroupFile(cgroup, 'cgroup.procs'), String(handle.pid));
  }
  const stat = parseProcStat(await readFile(`/proc/${handle.pid}/stat`, 'utf8'));
  assert.equal(stat?.pgrp, handle.pid, 'leads its own group');
  assert.equal(stat?.startTime, handle.startTime, 'the PID the handle records');
  assert.deepEqual((await readFile(`/proc/${handle.pid}/cmdline`, 'utf8')).split('\0').slice(0, 2), [process.execPath, '-e'], 'the gate exec-ed the program');

  const stopped = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 2000 });
  assert.equal(stopped.wasRunning, true);
  assert.deepEqual(await runCgroupsOf(name), [], 'removed by stop');
});

test('pids: forking past the limit fails in the child; what it forked keeps the cgroup until stop', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'pids');
  const driver = new ExecDriver();
  const script = 'i=0; while [ $i -lt 30 ]; do sleep 600 & i=$((i+1)); done; echo all $i started';
  const req = request(dir, name, ['/bin/sh', '-c', script], { pids: 10 });
  const handle = await start(t, driver, req);
  const exit = await driver.waitExit(handle);

  const log = await text(req.logs.stdout);
  assert.notEqual(exit.code, 0, log);
  assert.match(log, /Cannot fork|Resource temporarily unavailable/);
  assert.doesNotMatch(log, /all 30 started/);
  const [cgroup] = await runCgroupsOf(name);
  assert.ok(cgroup, 'the cgroup is still there: the sleeps it forked live in it');
  const current = Number(await cgroupFile(cgroup, 'pids.current'));
  assert.ok(current > 0 && current <= 10, `pids.current ${current}`);

  await stop(driver, handle);
  assert.deepEqual(await runCgroupsOf(name), [], 'stop ended the sleeps (they carry the instance marker), then removed it');
});

test('memory: a child allocating past the limit is OOM-killed (SIGKILL); without the limit the same program finishes', { skip }, async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const script = "console.log('allocating'); const keep = []; for (let i = 0; i < 400; i++) keep.push(Buffer.alloc(1024 * 1024, 1)); console.log('done');";

  const free = request(dir, nameFor(t, 'alloc-free'), [process.execPath, '-e', script], {});
  const freeExit = await driver.waitExit(await start(t, driver, free));
  assert.equal(freeExit.code, 0, await text(free.logs.stdout));
  assert.equal(await text(free.logs.stdout), 'allocating\ndone\n');

  const capped = request(dir, nameFor(t, 'alloc-capped'), [process.execPath, '-e', script], { memory: '128Mi' });
  const cappedExit = await driver.waitExit(await start(t, driver, capped));
  assert.equal(cappedExit.signal, 'SIGKILL', `${JSON.stringify(cappedExit)} ${await text(capped.logs.stdout)}`);
  assert.equal(await text(capped.logs.stdout), 'allocating\n');
  await waitFor(async () => (await runCgroupsOf(capped.name)).length === 0, { message: 'its cgroup to be removed after the kill' });
});

test('two processes get separate cgroups; one crashing loses its own and leaves the other\'s', { skip }, async (t) => {
  const dir = await tempDir(t);
  const driver = new ExecDriver();
  const a = request(dir, nameFor(t, 'a'), [process.execPath, '-e', IDLE], { memory: '64Mi' });
  const b = request(dir, nameFor(t, 'b'), [process.execPath, '-e', IDLE], { memory: '96Mi' });
  const [ha, hb] = [await start(t, driver, a), await start(t, driver, b)];
  const memoryOf = async (pid: number): Promise<string> => [...(await cgroupDirsOf(pid))].find(([key]) => key.split(',').includes('memory') || key === '')?.[1] ?? '';
  const [ma, mb] = [await memoryOf(ha.pid), await memoryOf(hb.pid)];
  assert.notEqual(ma, mb);
  assert.ok(ma.endsWith(`/${a.name}-${ha.instance}`) && mb.endsWith(`/${b.name}-${hb.instance}`), `${ma} ${mb}`);

  process.kill(ha.pid, 'SIGKILL');
  assert.equal((await driver.waitExit(ha)).signal, 'SIGKILL');
  await waitFor(async () => (await runCgroupsOf(a.name)).length === 0, { message: 'the crashed one\'s cgroup to be removed' });
  assert.ok(isAlive(hb.pid));
  assert.equal(await cgroupFile(mb, 'cgroup.procs'), String(hb.pid));
  await stop(driver, hb);
  assert.deepEqual(await runCgroupsOf(b.name), []);
});

test('openFiles and memory together: prlimit runs inside the gate, the program keeps the PID', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'nofile');
  const driver = new ExecDriver();
  const req = request(dir, name, [process.execPath, '-e', IDLE], { memory: '64Mi', openFiles: 777 });
  const handle = await start(t, driver, req);
  await waitFor(async () => (await text(req.logs.stdout)) === 'up\n', { message: 'the program to run' });
  assert.match(await readFile(`/proc/${handle.pid}/limits`, 'utf8'), /^Max open files\s+777\s+777\s+files\s*$/m);
  assert.equal((await readFile(`/proc/${handle.pid}/cmdline`, 'utf8')).split('\0')[0], process.execPath);
  const memory = [...(await cgroupDirsOf(handle.pid))].find(([key]) => key.split(',').includes('memory') || key === '')?.[1] ?? '';
  assert.ok(memory.endsWith(`/${name}-${handle.instance}`), memory);
  await stop(driver, handle);
});

test('ioWeight: the cgroup\'s weight where the kernel offers one; otherwise check() refuses it, naming the fix', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'io');
  const driver = new ExecDriver();
  const req = request(dir, name, [process.execPath, '-e', IDLE], { ioWeight: 500 });
  const refused = await driver.check(req).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (refused !== undefined) {
    t.diagnostic('no proportional I/O weight on this machine: the refusal is tested');
    assert.ok(refused instanceof StartError);
    assert.match(refused.problem, /^resources\.ioWeight cannot be enforced: /);
    assert.match(refused.hint ?? '', /remove resources\.ioWeight/);
    return;
  }
  const handle = await start(t, driver, req);
  const [cgroup] = await runCgroupsOf(name);
  assert.ok(cgroup);
  const files = await Promise.all(['blkio.weight', 'blkio.bfq.weight', 'io.weight', 'io.bfq.weight'].map((f) => cgroupFile(cgroup, f).catch(() => undefined)));
  t.diagnostic(`weights: ${JSON.stringify(files)}`);
  // Docker's scale as is (v1, bfq), or runc's conversion for io.weight (500 → 4950).
  assert.ok(files.some((v) => v === '500' || v === 'default 4950' || v?.startsWith('default 4950\n')), JSON.stringify(files));
  await stop(driver, handle);
});

test('a start removes the empty cgroups an earlier pm left for that process, and keeps one that still has members', { skip }, async (t) => {
  const dir = await tempDir(t);
  const name = nameFor(t, 'leftover');
  const driver = new ExecDriver();
  const bases = await subtreeDirs();
  const empty = `${name}-${'e'.repeat(32)}`;
  const busy = `${name}-${'b'.repeat(32)}`;
  for (const base of bases) await mkdir(join(base, empty), { recursive: true });
  await mkdir(join(bases[0]!, busy), { recursive: true });
  // A process of that earlier run, still alive in its cgroup.
  const member = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.after(() => member.kill('SIGKILL'));
  await writeFile(join(bases[0]!, busy, 'cgroup.procs'), String(member.pid));

  const handle = await start(t, driver, request(dir, name, [process.execPath, '-e', IDLE], { memory: '64Mi' }));
  const left = (await runCgroupsOf(name)).map((d) => d.slice(d.lastIndexOf('/') + 1));
  assert.ok(!left.includes(empty), `the empty leftover is gone: ${left.join(' ')}`);
  assert.ok(left.includes(busy), 'the one with a member is kept');
  assert.ok(left.includes(`${name}-${handle.instance}`));
  await stop(driver, handle);
});

test('pm apply: the process runs in its cgroups; after a crash nobody saw, the next apply removes the old ones; pm delete removes the new', { skip }, async (t) => {
  const sandbox = await createSandbox(t);
  const name = nameFor(t, 'cli');
  await sandbox.write(`manifests/${name}.yaml`, fixtureManifest(sandbox, { name, program: 'idle' }, { resources: { memory: '64Mi', cpus: 0.5, pids: 50 } }));
  const first = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(first.code, 0, first.stderr);
  const pid = (await sandbox.status(name)).pid as number;
  const before = await runCgroupsOf(name);
  assert.ok(before.length >= 1);
  const instance = before[0]!.slice(before[0]!.lastIndexOf('/') + name.length + 2);
  assert.match(await readFile(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`/${SUBTREE}/${name}-${instance}$`, 'm'));

  process.kill(pid, 'SIGKILL');
  await waitFor(async () => !(await isRunningWith(pid)), { message: 'the process to die' });
  assert.deepEqual(await runCgroupsOf(name), before, 'no pm saw the exit: the cgroups are still there, empty');

  const again = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(again.code, 0, again.stderr);
  const next = (await sandbox.status(name)).pid as number;
  assert.notEqual(next, pid);
  const after = await runCgroupsOf(name);
  assert.ok(after.length >= 1 && after.every((d) => !before.includes(d)), `old ones removed at the start: ${after.join(' ')}`);

  const deleted = await sandbox.pm(['delete', name]);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(await runCgroupsOf(name), []);
});

test('pm daemon: a crash removes the cgroups of that run and the restart gets new ones; removing the manifest removes the last', { skip }, async (t) => {
  const sandbox = await createDaemonSandbox(t);
  const name = nameFor(t, 'daemon');
  await sandbox.write(`manifests/${name}.yaml`, fixtureManifest(sandbox, { name, program: 'idle' }, { ...quickRestarts(), resources: { memory: '64Mi', cpus: 0.5, pids: 50 } }));
  // An empty folder is an invalid set (nothing would change): a process without limits stays.
  await sandbox.write('manifests/keep.yaml', fixtureManifest(sandbox, { name: 'keep', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const pid = (await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready')).pid as number;
  const before = await runCgroupsOf(name);
  assert.ok(before.length >= 1);
  assert.ok((await readFile(`/proc/${pid}/cgroup`, 'utf8')).includes(before[0]!.slice(before[0]!.lastIndexOf('/'))));

  process.kill(pid, 'SIGKILL');
  const next = (await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.pid !== pid, 'restarted')).pid as number;
  await waitFor(async () => (await runCgroupsOf(name)).every((d) => !before.includes(d)), { message: 'the crashed run\'s cgroups to be removed' });
  const now = await runCgroupsOf(name);
  assert.ok(now.length >= 1);
  assert.ok((await readFile(`/proc/${next}/cgroup`, 'utf8')).includes(now[0]!.slice(now[0]!.lastIndexOf('/'))));

  await sandbox.remove(`manifests/${name}.yaml`);
  await waitFor(async () => !(await isRunningWith(next)), { timeoutMs: 15_000, message: `the process stopped once its manifest is gone\n${daemon.output()}` });
  await waitFor(async () => (await runCgroupsOf(name)).length === 0, { message: 'its cgroups removed' });
});
