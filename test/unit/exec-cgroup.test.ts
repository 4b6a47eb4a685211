// The exec driver's cgroups without touching the machine's: parsing /proc/self/cgroup and
// mountinfo, the files each limit becomes, and a temp dir that stands in for a cgroup hierarchy
// this machine does not have (cgroup v2 with controllers; a v1 blkio without I/O weights). A plain
// directory is not cgroupfs: nothing is enforced there and a cgroup with files in it cannot be
// rmdir'ed, so these tests look at what pm writes, where, and in which order; the real hierarchy
// is tested in test/integration/exec-cgroups.test.ts.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { StartRequest } from '../../src/drivers/driver.js';
import { behindGate, gateScript, SH } from '../../src/drivers/exec/cgroup/gate.js';
import { hierarchiesOf, parseMountinfo, parseProcCgroup } from '../../src/drivers/exec/cgroup/detect.js';
import { Cgroups } from '../../src/drivers/exec/cgroup/index.js';
import { settingsFor } from '../../src/drivers/exec/cgroup/settings.js';
import { ExecDriver } from '../../src/drivers/exec/index.js';
import { PRLIMIT, withLimits } from '../../src/drivers/exec/spawn.js';
import { StartError } from '../../src/errors.js';
import { ioWeightV2 } from '../../src/manifest/resources.js';
import type { Resources } from '../../src/manifest/types.js';
import { nodeScript } from '../support/exec-fixtures.js';
import { killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

// A hybrid host like this one: v1 controllers (cpu and cpuacct mounted together), a named systemd
// hierarchy, and a v2 mount without controllers.
const HYBRID_CGROUP = ['12:pids:/', '7:blkio:/', '4:memory:/session/abc', '3:cpu,cpuacct:/', '9:name=systemd:/', '0::/'].join('\n');
const HYBRID_MOUNTINFO = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs ro,size=4096k',
  '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio',
  '39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

test('detect: /proc/self/cgroup lines, mountinfo cgroup mounts with escaped paths', () => {
  assert.deepEqual(parseProcCgroup('3:cpu,cpuacct:/a b\n0::/x/y\n'), [
    { id: 3, controllers: ['cpu', 'cpuacct'], path: '/a b' },
    { id: 0, controllers: [], path: '/x/y' },
  ]);
  const mounts = parseMountinfo('50 1 0:40 /docker/c1 /mnt/cg\\040x rw - cgroup2 cgroup2 rw,nsdelegate\n51 1 8:1 / / rw - ext4 /dev/vda rw\n');
  assert.deepEqual(mounts, [{ root: '/docker/c1', mountPoint: '/mnt/cg x', fstype: 'cgroup2', superOptions: ['rw', 'nsdelegate'] }]);
});

test('detect: a hybrid host has v1 hierarchies for the controllers and an empty v2; named hierarchies are left out', () => {
  const found = hierarchiesOf({ selfCgroup: HYBRID_CGROUP, mountinfo: HYBRID_MOUNTINFO }).map(({ version, controllers, path, dir }) => ({ version, controllers, path, dir }));
  assert.deepEqual(found, [
    { version: 1, controllers: ['pids'], path: '/', dir: '/sys/fs/cgroup/pids' },
    { version: 1, controllers: ['blkio'], path: '/', dir: '/sys/fs/cgroup/blkio' },
    { version: 1, controllers: ['memory'], path: '/session/abc', dir: '/sys/fs/cgroup/memory/session/abc' },
    { version: 1, controllers: ['cpu', 'cpuacct'], path: '/', dir: '/sys/fs/cgroup/cpu,cpuacct' },
    { version: 2, controllers: [], path: '/', dir: '/sys/fs/cgroup/unified' },
  ]);
});

test('detect: v2 through a bind-mounted sub-tree, and pm\'s own leaf pm-main counts as its cgroup\'s', () => {
  const mountinfo = '60 1 0:50 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw';
  const [h] = hierarchiesOf({ selfCgroup: '0::/kubepods/pod1/pm.service/pm-main\n', mountinfo });
  assert.equal(h?.path, '/kubepods/pod1/pm.service');
  assert.equal(h?.dir, '/sys/fs/cgroup/pm.service');
  // A cgroup the mount does not show is not reachable.
  assert.deepEqual(hierarchiesOf({ selfCgroup: '0::/elsewhere\n', mountinfo }), []);
});

test('settings: v1 and v2 files for each limit; memory caps swap too, the CPU quota has a floor, I/O weight converted for io.weight only', () => {
  const limits = { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pids: 20, ioWeight: 500 };
  const flat = (version: 1 | 2): string[] => settingsFor(limits, version).flatMap((s) => s.writes.map((w) => `${s.controller} ${w.choices.map(([f, v]) => `${f}=${v}`).join('|')}${w.optional ? ' (if present)' : ''}`));
  assert.deepEqual(flat(1), [
    'memory memory.limit_in_bytes=67108864',
    'memory memory.memsw.limit_in_bytes=67108864 (if present)',
    'cpu cpu.cfs_period_us=100000',
    'cpu cpu.cfs_quota_us=50000',
    'pids pids.max=20',
    'blkio blkio.weight=500|blkio.bfq.weight=500',
  ]);
  assert.deepEqual(flat(2), [
    'memory memory.max=67108864',
    'memory memory.swap.max=0 (if present)',
    'cpu cpu.max=50000 100000',
    'pids pids.max=20',
    `io io.weight=default ${ioWeightV2(500)}|io.bfq.weight=500`,
  ]);
  assert.equal(ioWeightV2(500), 4950);
  assert.deepEqual(settingsFor({ cpus: 0.001 }, 2)[0]?.writes[0]?.choices, [['cpu.max', '1000 100000']]);
  assert.deepEqual(settingsFor({ openFiles: 10 }, 1), []);
});

test('gate: a constant script; the program and every argument follow as positional parameters, prlimit inside', () => {
  const argv = behindGate(withLimits(['node', 'a b', '$HOME', '"; rm -rf /'], { openFiles: 64 }));
  assert.deepEqual(argv, [SH, '-c', gateScript(3), 'pm-exec', PRLIMIT, '--nofile=64:64', '--', 'node', 'a b', '$HOME', '"; rm -rf /']);
});

/** A fake cgroup v2 mount: pm (this test process) alone in /pm.service, which is offered `controllers`. */
async function fakeV2(t: TestContext, controllers = 'cpu io memory pids', members = [process.pid]): Promise<{ mount: string; group: string; cgroups: Cgroups }> {
  const mount = await tempDir(t, 'pm-fake-cgroup2-');
  const group = join(mount, 'pm.service');
  await mkdir(group);
  await writeFile(join(mount, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  await writeFile(join(group, 'cgroup.controllers'), `${controllers}\n`);
  await writeFile(join(group, 'cgroup.subtree_control'), '\n');
  await writeFile(join(group, 'cgroup.type'), 'domain\n');
  await writeFile(join(group, 'cgroup.procs'), members.map((pid) => `${pid}\n`).join(''));
  await writeFile(join(group, 'io.weight'), 'default 100\n');
  const source = { selfCgroup: '0::/pm.service\n', mountinfo: `41 31 0:38 / ${mount} rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n` };
  return { mount, group, cgroups: new Cgroups({ source: () => Promise.resolve(source), pid: process.pid }) };
}

function limited(request: StartRequest, resources: Resources): StartRequest {
  return { ...request, manifest: { ...request.manifest, spec: { ...request.manifest.spec, resources } } };
}

const read = (path: string): Promise<string> => readFile(path, 'utf8');

test('v2 (fake hierarchy): pm leaves its cgroup for pm-main, enables the controllers on the way down, writes the limits, and the child joins before it runs', async (t) => {
  const { group, cgroups } = await fakeV2(t);
  const dir = await tempDir(t);
  const instance = 'f'.repeat(32);
  const leaf = join(group, 'pm-exec', `child-${instance}`);
  // The kernel gives a new cgroup the files of its enabled controllers: here the test makes them.
  await mkdir(leaf, { recursive: true });
  for (const [file, value] of Object.entries({ 'memory.max': 'max', 'memory.swap.max': 'max', 'cpu.max': 'max 100000', 'pids.max': 'max', 'io.weight': 'default 100' })) {
    await writeFile(join(leaf, file), `${value}\n`);
  }

  const script = 'console.log(JSON.stringify(process.argv.slice(1))); setInterval(() => {}, 1000);';
  const base = nodeScript(dir, script);
  const [program, ...args] = base.manifest.spec.exec!.command;
  const request = limited({ ...base, instance, manifest: { ...base.manifest, spec: { ...base.manifest.spec, exec: { ...base.manifest.spec.exec!, command: [program, ...args, 'a b', '$HOME', '"; exit 3'] } } } }, { memory: '64Mi', cpus: 0.5, pids: 20, ioWeight: 500 });
  const driver = new ExecDriver({ cgroups });
  await driver.check(request);
  const handle = await driver.start(request);
  killGroupAfter(t, handle.pgid);

  assert.equal(await read(join(group, 'pm-main', 'cgroup.procs')), String(process.pid), 'pm moved itself out of its cgroup first');
  assert.equal(await read(join(group, 'cgroup.subtree_control')), '+memory +cpu +pids +io');
  assert.equal(await read(join(group, 'pm-exec', 'cgroup.subtree_control')), '+memory +cpu +pids +io');
  assert.equal(await read(join(leaf, 'memory.max')), String(64 * 1024 * 1024));
  assert.equal(await read(join(leaf, 'memory.swap.max')), '0');
  assert.equal(await read(join(leaf, 'cpu.max')), '50000 100000');
  assert.equal(await read(join(leaf, 'pids.max')), '20');
  assert.equal(await read(join(leaf, 'io.weight')), 'default 4950');
  assert.equal(await read(join(leaf, 'cgroup.procs')), String(handle.pid), 'the child, by the PID the handle records');
  // Through the gate, the program got its arguments untouched, in the same process.
  const log = request.logs.stdout;
  await waitFor(async () => (await read(log).catch(() => '')).includes(']'), { message: 'the program to print its arguments' });
  assert.deepEqual(JSON.parse(await read(log)), ['a b', '$HOME', '"; exit 3']);
  assert.match(await read(`/proc/${handle.pid}/cmdline`), /^[^\0]*node\0-e\0/, 'the gate exec-ed the program: same PID');
  await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 2000 });
});

test('v2 (fake hierarchy): a cgroup holding processes pm did not start, or not offered a controller, is a StartError at check, naming the limit and the fix', async (t) => {
  const crowded = await fakeV2(t, 'cpu io memory pids', [process.pid, 1]);
  const dir = await tempDir(t);
  const request = limited(nodeScript(dir, ''), { memory: '64Mi' });
  const error = await new ExecDriver({ cgroups: crowded.cgroups }).check(request).then(
    () => assert.fail('check passed'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof StartError);
  assert.match(error.problem, /^resources\.memory cannot be enforced: pm's cgroup \/pm\.service also holds processes pm did not start \(pid 1\)/);
  assert.match(error.hint ?? '', /Delegate=yes.*driver docker or systemd.*remove resources\.memory/);

  const partial = await fakeV2(t, 'memory pids');
  const both = await new ExecDriver({ cgroups: partial.cgroups }).check(limited(request, { memory: '64Mi', cpus: 1, ioWeight: 100 })).then(
    () => assert.fail('check passed'),
    (e: unknown) => e as StartError,
  );
  assert.equal(
    both.problem,
    "resources.cpus cannot be enforced: the cpu controller is not enabled for pm's cgroup /pm.service (cgroup v2; its cgroup.controllers: memory pids); " +
      "resources.ioWeight cannot be enforced: the io controller is not enabled for pm's cgroup /pm.service (cgroup v2; its cgroup.controllers: memory pids)",
  );
  // Nothing was changed by a check.
  assert.equal(await read(join(partial.group, 'cgroup.subtree_control')), '\n');
});

test('v1 (fake hierarchy): no blkio weight file means resources.ioWeight cannot be enforced; no memory hierarchy at all, resources.memory', async (t) => {
  const mount = await tempDir(t, 'pm-fake-blkio-');
  await mkdir(join(mount, 'svc'));
  await writeFile(join(mount, 'svc', 'blkio.throttle.read_bps_device'), '');
  const source = { selfCgroup: '7:blkio:/svc\n0::/\n', mountinfo: `38 31 0:35 / ${mount} rw - cgroup cgroup rw,blkio\n` };
  const cgroups = new Cgroups({ source: () => Promise.resolve(source) });
  const error = await cgroups.check('io', { ioWeight: 300, memoryBytes: 1024 }).then(
    () => assert.fail('check passed'),
    (e: unknown) => e as StartError,
  );
  assert.equal(
    error.message,
    `io: resources.memory cannot be enforced: no cgroup hierarchy here has the memory (v1) or memory (v2) controller; resources.ioWeight cannot be enforced: ${join(mount, 'svc')} has no blkio.weight nor blkio.bfq.weight (no I/O scheduler with proportional weights on this machine's disks)`,
  );
  assert.match(error.hint ?? '', /remove resources\.memory; give the disk an I\/O scheduler with weights \(bfq\), or remove resources\.ioWeight$/);
  // A limit a cgroup does not enforce needs nothing of it.
  await cgroups.check('io', { openFiles: 10 });
  assert.equal(await cgroups.create('io', 'a1', { openFiles: 10 }), undefined);
});
