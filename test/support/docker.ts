// The real Docker Engine for tests: a skip reason when it is not there (a failure under
// PM_TEST_STRICT=1), the test image pm-test/busybox:1 built once per machine from Debian's
// busybox-static (../shared/ENVIRONMENT.md), and a per-test context whose containers all carry the
// test's own owner label and are force-removed when the test ends, whether it passed or failed.
//
// Containers the driver creates carry pm.owner=<test owner>; containers a test makes "by hand" (the
// foreign ones) carry pm-test.owner=<test owner>. The owner names the test process
// (pm-test-<pid>-<random>), so a later run removes what a killed run left behind.
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { DockerDriver, type DockerDriverOptions } from '../../src/drivers/docker/index.js';
import { isAlive } from './processes.js';
import { waitFor } from './wait.js';

export const DOCKER_SOCKET = '/var/run/docker.sock';
export const TEST_IMAGE = 'pm-test/busybox:1';
/** Label on containers a test creates itself (not through the driver). */
export const TEST_OWNER_LABEL = 'pm-test.owner';

const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'sleep', 'httpd', 'nc', 'wget', 'true', 'false', 'cat'];
const LOCK_DIR = '/var/tmp/pm-test-busybox-image.lock';
const LOCK_WAIT_MS = 120_000;
/** A lock folder without an owner file this old is a leftover of a run killed while taking it. */
const ORPHAN_LOCK_MS = 60_000;
const OWNER_PATTERN = /^pm-test-(\d+)-[0-9a-f]+$/;
const CALL_TIMEOUT_MS = 30_000;

const strict = process.env.PM_TEST_STRICT === '1';
const missingHint = 'install docker.io and busybox-static and start dockerd (.ci/run does this)';

let probed: { ping: number | string; image: number | string | null } | undefined;

/** One synchronous look at the engine (test options are computed synchronously): /_ping and the image. */
function probe(): { ping: number | string; image: number | string | null } {
  if (probed) return probed;
  const script = `
    const http = require('node:http');
    const [socketPath, imageRef] = process.argv.slice(1);
    const get = (path) => new Promise((resolve) => {
      const req = http.get({ socketPath, path, timeout: 3000 }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => resolve(e.code || e.message));
    });
    (async () => {
      const ping = await get('/_ping');
      const image = ping === 200 ? await get('/images/' + imageRef + '/json') : null;
      process.stdout.write(JSON.stringify({ ping, image }));
    })();`;
  const result = spawnSync(process.execPath, ['-e', script, DOCKER_SOCKET, TEST_IMAGE], { encoding: 'utf8', timeout: 10_000 });
  try {
    probed = JSON.parse(result.stdout) as typeof probed;
  } catch {
    probed = { ping: result.error?.message ?? `probe exited with ${result.status}`, image: null };
  }
  return probed!;
}

/** Why Docker tests cannot run here, or undefined when they can. */
function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `Docker tests run on Linux only (this is ${process.platform})`;
  const { ping, image } = probe();
  if (ping !== 200) return `the Docker engine does not answer on ${DOCKER_SOCKET} (${ping}): ${missingHint}`;
  if (image !== 200) {
    if (!existsSync(BUSYBOX)) return `${TEST_IMAGE} is not built and ${BUSYBOX} is missing: ${missingHint}`;
    if (!isStaticElf(BUSYBOX)) return `${BUSYBOX} is dynamically linked and cannot run alone in an image: install busybox-static`;
  }
  return undefined;
}

/**
 * For test options: `test(name, { skip: dockerSkip() }, …)`. The reason to skip when the engine or
 * busybox-static is missing; false when present, or under PM_TEST_STRICT=1 (the test then fails).
 */
export function dockerSkip(): string | false {
  const reason = unavailableReason();
  return reason !== undefined && !strict ? reason : false;
}

/** A client of the real engine for a test's own actions ("someone did it by hand"). */
export function engineClient(): Docker {
  return new Docker({ socketPath: DOCKER_SOCKET });
}

/**
 * Builds pm-test/busybox:1 unless the engine has it: once per machine, and one builder at a time
 * (a lock folder with the builder's PID; a dead builder's lock is taken over). Returns the name.
 */
export async function ensureTestImage(): Promise<string> {
  const docker = engineClient();
  if (await hasImage(docker)) return TEST_IMAGE;
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (!(await takeLock())) {
    if (await hasImage(docker)) return TEST_IMAGE;
    if (Date.now() > deadline) throw new Error(`another process has held ${LOCK_DIR} for ${LOCK_WAIT_MS} ms without building ${TEST_IMAGE}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  try {
    if (!(await hasImage(docker))) await buildImage(docker);
  } finally {
    await rm(LOCK_DIR, { recursive: true, force: true });
  }
  return TEST_IMAGE;
}

export interface DockerTestContext {
  /** The engine, for what a test does by hand (inspect, kill, restart, create foreign containers). */
  docker: Docker;
  socketPath: string;
  image: string;
  /** This test's owner: the driver's pm.owner, and the pm-test.owner label of hand-made containers. */
  owner: string;
  /** Labels for a container the test creates itself, so cleanup finds it. */
  testLabels: Record<string, string>;
  /** A process name no other test uses (DNS-1123). */
  processName(): string;
  /** A driver owned by this test (extra options override, e.g. socketPath). */
  driver(options?: Partial<DockerDriverOptions>): DockerDriver;
}

/**
 * The Docker context of one test; undefined when Docker is unavailable (the test is then skipped;
 * under PM_TEST_STRICT=1 this throws). Cleanup is registered before anything is created.
 */
export async function useDocker(t: TestContext): Promise<DockerTestContext | undefined> {
  const reason = unavailableReason();
  if (reason !== undefined) {
    if (strict) throw new Error(`${reason} (PM_TEST_STRICT=1: a failure, not a skip)`);
    t.skip(reason);
    return undefined;
  }
  const docker = engineClient();
  const owner = `pm-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  t.after(() => removeOwned(docker, owner));
  await sweepLeftovers(docker);
  const image = await ensureTestImage();
  let names = 0;
  const nameSalt = randomBytes(3).toString('hex');
  return {
    docker,
    socketPath: DOCKER_SOCKET,
    image,
    owner,
    testLabels: { [TEST_OWNER_LABEL]: owner },
    processName: () => `t${process.pid}-${nameSalt}-${++names}`,
    driver: (options = {}) => new DockerDriver({ owner, socketPath: DOCKER_SOCKET, timeoutMs: CALL_TIMEOUT_MS, ...options }),
  };
}

/** Polls `docker top` until a process whose command line contains `needle` runs in the container. */
export async function waitForContainerProcess(docker: Docker, id: string, needle: string): Promise<void> {
  await waitFor(
    async () => {
      const top = (await docker.getContainer(id).top({ ps_args: '-o pid,args' }).catch(() => undefined)) as { Processes?: string[][] } | undefined;
      return (top?.Processes ?? []).some((row) => row.join(' ').includes(needle));
    },
    { timeoutMs: 15_000, intervalMs: 20, message: `a process "${needle}" in container ${id.slice(0, 12)}` },
  );
}

/**
 * A unix socket that forwards to the engine and records what clients send, so a test can see the
 * request lines and headers pm sends (and that it sends the environment only in bodies). It can
 * also refuse new connections and cut open ones, to simulate an engine restart for one client.
 */
export interface RecordingProxy {
  socketPath: string;
  /** Request line and headers of every request so far, in order. */
  heads(): string[];
  /** Everything clients sent (heads and bodies), latin1. */
  sent(): string;
  /** While on, new connections are closed at once. */
  refuse(on: boolean): void;
  /** Closes every open connection (both sides). */
  cut(): void;
}

export async function startRecordingProxy(t: TestContext, target = DOCKER_SOCKET): Promise<RecordingProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'pm-docker-proxy-'));
  // Others may traverse the folder (a test drops privileges to reach the socket); the socket's own mode decides.
  await chmod(dir, 0o711);
  const socketPath = join(dir, 'docker.sock');
  const transcripts: string[] = [];
  const open = new Set<Socket>();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) return void client.destroy();
    const index = transcripts.push('') - 1;
    const upstream = connect(target);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (chunk: Buffer) => {
      transcripts[index] += chunk.toString('latin1');
      upstream.write(chunk);
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
  t.after(async () => {
    for (const s of open) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });
  return {
    socketPath,
    heads: () => transcripts.flatMap((text) => [...text.matchAll(/(?:GET|POST|PUT|DELETE|HEAD) \S+ HTTP\/1\.[01]\r\n[\s\S]*?\r\n\r\n/g)].map((m) => m[0])),
    sent: () => transcripts.join(''),
    refuse: (on) => void (refusing = on),
    cut: () => {
      for (const s of open) s.destroy();
    },
  };
}

/** Force-removes every container of `owner` (the driver's and the test's own); throws if any is left. */
export async function removeOwned(docker: Docker, owner: string): Promise<void> {
  const list = async (): Promise<Docker.ContainerInfo[]> => {
    const [driverMade, handMade] = await Promise.all([
      docker.listContainers({ all: true, filters: { label: [`pm.owner=${owner}`] } }),
      docker.listContainers({ all: true, filters: { label: [`${TEST_OWNER_LABEL}=${owner}`] } }),
    ]);
    return [...driverMade, ...handMade];
  };
  await Promise.all((await list()).map((c) => removeContainer(docker, c.Id)));
  const left = await list();
  if (left.length > 0) throw new Error(`containers of ${owner} survived cleanup: ${left.map((c) => `${c.Names.join(',')} (${c.State})`).join('; ')}`);
}

async function removeContainer(docker: Docker, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true, v: true });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    // 404: gone already; 409: a removal is under way (by another cleanup).
    if (status !== 404 && status !== 409) throw error;
  }
}

/** Removes containers of test processes that are gone (killed before their cleanup ran). */
async function sweepLeftovers(docker: Docker): Promise<void> {
  const [driverMade, handMade] = await Promise.all([
    docker.listContainers({ all: true, filters: { label: ['pm.owner'] } }),
    docker.listContainers({ all: true, filters: { label: [TEST_OWNER_LABEL] } }),
  ]);
  const orphans = [...driverMade, ...handMade].filter((c) => {
    const owner = c.Labels['pm.owner'] ?? c.Labels[TEST_OWNER_LABEL] ?? '';
    const pid = OWNER_PATTERN.exec(owner)?.[1];
    return pid !== undefined && !isAlive(Number(pid));
  });
  await Promise.all(orphans.map((c) => removeContainer(docker, c.Id).catch(() => undefined)));
}

async function hasImage(docker: Docker): Promise<boolean> {
  try {
    await docker.getImage(TEST_IMAGE).inspect();
    return true;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw error;
  }
}

/** mkdir is atomic: whoever creates the folder builds. A lock whose builder is dead is removed. */
async function takeLock(): Promise<boolean> {
  try {
    await mkdir(LOCK_DIR);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = Number.parseInt(await readFile(join(LOCK_DIR, 'pid'), 'utf8').catch(() => ''), 10);
    const stale = Number.isInteger(holder) ? !isAlive(holder) : Date.now() - (await stat(LOCK_DIR).then((s) => s.mtimeMs, () => Date.now())) > ORPHAN_LOCK_MS;
    if (stale) await rm(LOCK_DIR, { recursive: true, force: true });
    return false;
  }
  await writeFile(join(LOCK_DIR, 'pid'), String(process.pid));
  return true;
}

/** A root file system of busybox and its applet links, imported as the test image. */
async function buildImage(docker: Docker): Promise<void> {
  const work = await mkdtemp('/var/tmp/pm-test-busybox-');
  try {
    const root = join(work, 'root');
    await mkdir(join(root, 'bin'), { recursive: true });
    await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    const tar = join(work, 'root.tar');
    await promisify(execFile)('tar', ['-C', root, '-cf', tar, '.'], { timeout: 60_000 });
    const [repo, tag] = TEST_IMAGE.split(':') as [string, string];
    const stream = await docker.importImage(tar, { repo, tag });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve())));
    if (!(await hasImage(docker))) throw new Error(`importing ${TEST_IMAGE} reported success, but the engine does not have it`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** True when the ELF file has no program interpreter (PT_INTERP): it runs without a libc on disk. */
function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.toString('latin1', 0, 4) !== '\x7fELF') return false;
    const is64 = header[4] === 2;
    const le = header[5] === 1;
    const u16 = (b: Buffer, o: number): number => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(0x20) : header.readBigUInt64BE(0x20)) : u32(header, 0x1c);
    const phentsize = u16(header, is64 ? 0x36 : 0x2a);
    const phnum = u16(header, is64 ? 0x38 : 0x2c);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (u32(table, i * phentsize) === 3) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}
