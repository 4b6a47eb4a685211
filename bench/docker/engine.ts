// The Docker Engine side of bench/docker.ts: the reporter built for containers, what the engine is,
// the crash (SIGKILL of a container's main process, found through inspect), the engine's container
// events with their times (for the breakdown), and removal of every container a run created.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import type Docker from 'dockerode';
import { cmdline, isAlive, onPath, runCommand } from '../daemon/proc.js';

const SOURCE = fileURLToPath(new URL('./reporter.c', import.meta.url));
const BUILD_DIR = fileURLToPath(new URL('../.build/', import.meta.url));
/** Where the reporter is bind-mounted in every container. */
export const REPORTER_IN_CONTAINER = '/reporter';
/** Where a container's report folder is bind-mounted, and its socket there. */
export const REPORT_DIR_IN_CONTAINER = '/report';
export const REPORT_SOCKET_IN_CONTAINER = `${REPORT_DIR_IN_CONTAINER}/r.sock`;
/** Every container of a run carries this label, valued with the run's id (pm's through spec.docker.labels). */
export const RUN_LABEL = 'pm-bench.run';
const RUN_ID = /^pm-bench-docker-(\d+)-[0-9a-f]+$/;

/** bench/docker/reporter.c, built statically into bench/.build/ once per source version (the image has no C library). */
export async function containerReporter(): Promise<string> {
  const source = await readFile(SOURCE);
  const path = `${BUILD_DIR}docker-reporter-${createHash('sha256').update(source).digest('hex').slice(0, 12)}-static`;
  if (existsSync(path)) return path;
  const cc = onPath('cc');
  if (cc === undefined) throw new Error('bench/docker.ts needs a C compiler: `cc` is not on PATH (apt-get install -y gcc libc6-dev)');
  await mkdir(BUILD_DIR, { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const result = await runCommand([cc, '-O2', '-Wall', '-static', '-o', tmp, SOURCE]);
  if (result.code !== 0) {
    await rm(tmp, { force: true });
    throw new Error(`cc could not build ${SOURCE} statically (the container has no C library to link against):\n${result.output}`);
  }
  await rename(tmp, path);
  return path;
}

export function newRunId(): string {
  return `pm-bench-docker-${process.pid}-${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0')}`;
}

export interface EngineDescription {
  /** "Docker Engine 20.10.24+dfsg1 (API 1.41), containerd 1.6.20~ds1, runc 1.1.5+ds1". */
  versions: string;
  /** Storage driver, cgroup driver and version, default network driver... as `docker info` says. */
  setup: string;
  engineVersion: string;
}

export async function describeEngine(docker: Docker): Promise<EngineDescription> {
  const version = (await docker.version()) as Docker.DockerVersion & { Components?: { Name: string; Version: string }[] };
  const info = (await docker.info()) as { Driver?: string; CgroupDriver?: string; CgroupVersion?: string; SecurityOptions?: string[]; Runtimes?: object; DefaultRuntime?: string };
  const component = (name: string): string | undefined => version.Components?.find((c) => c.Name.toLowerCase() === name)?.Version;
  const parts = [`Docker Engine ${version.Version} (API ${version.ApiVersion})`];
  for (const name of ['containerd', 'runc']) {
    const v = component(name);
    if (v !== undefined) parts.push(`${name} ${v}`);
  }
  const security = (info.SecurityOptions ?? []).map((s) => /name=([^,]+)/.exec(s)?.[1] ?? s).join('+');
  return {
    versions: parts.join(', '),
    setup: `storage driver ${info.Driver ?? '?'}, cgroup ${info.CgroupVersion ?? '?'} (${info.CgroupDriver ?? '?'} driver), runtime ${info.DefaultRuntime ?? '?'}${security ? `, security ${security}` : ''}`,
    engineVersion: version.Version,
  };
}

/**
 * The host pid of the container's main process, checked to be the reporter (a pid is never
 * killed on the word of a stale inspect). Throws when the container does not run it now.
 */
export async function reporterPid(docker: Docker, container: string): Promise<number> {
  const info = await docker.getContainer(container).inspect();
  const pid = info.State.Pid;
  if (!info.State.Running || pid <= 0) throw new Error(`${container} is not running (${info.State.Status})`);
  if (!isAlive(pid) || cmdline(pid)?.[0] !== REPORTER_IN_CONTAINER) throw new Error(`${container}: pid ${pid} is not the reporter (${cmdline(pid)?.join(' ') ?? 'gone'})`);
  return pid;
}

/** A wait on the engine's wait endpoint, as pm's docker driver keeps one per running container. */
export interface ExitWait {
  /** When the engine's answer (the exit code) had arrived (monotonic ns); undefined if cancelled or failed first. */
  answered: Promise<bigint | undefined>;
  cancel(): void;
}

/**
 * POST /containers/NAME/wait?condition=not-running, the call through which pm learns of an exit.
 * Resolves once the engine has begun the wait (it sends its headers at once, the body at the exit).
 */
export function waitForExit(socketPath: string, container: string, timeoutMs: number): Promise<ExitWait> {
  return new Promise((resolve, reject) => {
    let answer: (at: bigint | undefined) => void = () => undefined;
    const answered = new Promise<bigint | undefined>((r) => (answer = r));
    const req = request({ socketPath, method: 'POST', path: `/containers/${encodeURIComponent(container)}/wait?condition=not-running`, headers: { 'Content-Length': 0 } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`wait on ${container}: HTTP ${res.statusCode}`));
        return;
      }
      res.on('data', () => undefined);
      res.on('end', () => answer(process.hrtime.bigint()));
      res.on('error', () => answer(undefined));
      res.on('close', () => answer(undefined));
      resolve({ answered, cancel: () => req.destroy() });
    });
    req.on('error', (error) => {
      answer(undefined);
      reject(error);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`wait on ${container}: no answer within ${timeoutMs} ms`)));
    req.end();
  });
}

/** One container event as the engine reported it; `at` on the bench's monotonic clock (ns). */
export interface EngineEvent {
  name: string;
  action: string;
  at: bigint;
}

interface RawEvent {
  Type?: string;
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
  timeNano?: number;
}

/**
 * The engine's container events for one run's label, kept with their times. The engine stamps an
 * event with its wall clock (ns); the bench's clock is monotonic: `offset` (wall − monotonic, taken
 * once at the start) converts, good to microseconds over a run unless the wall clock is stepped.
 */
export class EventLog {
  readonly #events: EngineEvent[] = [];
  readonly #stream: NodeJS.ReadableStream & { destroy?: () => void };
  readonly #offset: bigint;
  #buffer = '';
  #failed: Error | undefined;

  private constructor(stream: NodeJS.ReadableStream, offset: bigint) {
    this.#stream = stream;
    this.#offset = offset;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.#take(chunk));
    stream.on('error', (error: Error) => (this.#failed = error));
  }

  static async open(docker: Docker, runId: string): Promise<EventLog> {
    const stream = await docker.getEvents({ filters: { type: ['container'], label: [`${RUN_LABEL}=${runId}`] } });
    return new EventLog(stream, wallMinusMonotonic());
  }

  /** Events of `name` at or after `from` (monotonic ns), in the engine's order. */
  since(name: string, from: bigint): EngineEvent[] {
    if (this.#failed) throw new Error(`the engine's event stream failed: ${this.#failed.message}`);
    return this.#events.filter((e) => e.name === name && e.at >= from);
  }

  /** Waits (polling, briefly) until `name` has an event `action` at or after `from`; undefined if none came within timeoutMs. */
  async waitFor(name: string, action: string, from: bigint, timeoutMs: number): Promise<EngineEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.since(name, from).find((e) => e.action === action);
      if (found || Date.now() > deadline) return found;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Forgets events before `before` (monotonic ns): the log stays small over a long run. */
  prune(before: bigint): void {
    const keep = this.#events.filter((e) => e.at >= before);
    this.#events.splice(0, this.#events.length, ...keep);
  }

  close(): void {
    this.#stream.removeAllListeners('data');
    this.#stream.on('error', () => undefined);
    this.#stream.destroy?.();
  }

  #take(chunk: string): void {
    this.#buffer += chunk;
    let newline: number;
    while ((newline = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line === '') continue;
      const event = JSON.parse(line) as RawEvent;
      const name = event.Actor?.Attributes?.name;
      if (event.Type !== 'container' || name === undefined || event.Action === undefined || event.timeNano === undefined) continue;
      // timeNano exceeds 2^53: the JSON number lost its last bits, a few hundred ns at most.
      this.#events.push({ name, action: event.Action.split(':')[0] as string, at: BigInt(Math.round(event.timeNano)) - this.#offset });
    }
  }
}

/** Wall clock minus monotonic clock, in ns: the smallest of a few readings' brackets. */
function wallMinusMonotonic(): bigint {
  let best: { width: bigint; offset: bigint } | undefined;
  for (let i = 0; i < 20; i++) {
    const before = process.hrtime.bigint();
    const wall = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
    const after = process.hrtime.bigint();
    const width = after - before;
    if (!best || width < best.width) best = { width, offset: wall - (before + width / 2n) };
  }
  return (best as { offset: bigint }).offset;
}

/** Force-removes every container carrying all of `label` (key=value each); resolves with how many there were. */
export async function removeLabelled(docker: Docker, label: string[]): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: { label } });
  await Promise.all(
    found.map(async (c) => {
      try {
        await docker.getContainer(c.Id).remove({ force: true });
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        // 404: gone already; 409: a removal is under way.
        if (status !== 404 && status !== 409) throw error;
      }
    }),
  );
  const left = await docker.listContainers({ all: true, filters: { label } });
  if (left.length > 0) throw new Error(`containers with ${label.join(', ')} survived removal: ${left.map((c) => c.Names.join(',')).join('; ')}`);
  return found.length;
}

/** Containers of earlier runs whose bench process is gone (killed before its cleanup ran): removed. */
export async function sweepLeftovers(docker: Docker, log: (line: string) => void): Promise<void> {
  const found = await docker.listContainers({ all: true, filters: { label: [RUN_LABEL] } });
  const dead = new Set(
    found
      .map((c) => c.Labels[RUN_LABEL] ?? '')
      .filter((id) => {
        const pid = RUN_ID.exec(id)?.[1];
        return pid !== undefined && !isAlive(Number(pid));
      }),
  );
  for (const id of dead) log(`removed ${await removeLabelled(docker, [`${RUN_LABEL}=${id}`])} container(s) left by an earlier run (${id})`);
}

/** Durations (ms) of single engine calls, as a client sees them (the API round trip included). */
export interface OperationTimes {
  /** POST /containers/create. */
  create: number[];
  /** POST /containers/ID/start of a container just created, until the call returns. */
  startNew: number[];
  /** POST /containers/ID/start of the same container after its process was killed: restart=always's restart, without its delay. */
  startAgain: number[];
  /** DELETE /containers/ID of the exited container. */
  remove: number[];
}

export interface OperationSetup {
  name: string;
  image: string;
  reporter: string;
  reportDir: string;
  labels: Record<string, string>;
  network: string | undefined;
  isInterrupted: () => boolean;
}

/**
 * (d) the engine's own costs, one call at a time, the same container as in the trials: create,
 * start, SIGKILL and wait, start again, SIGKILL and wait, remove; `rounds` times. pm's replacement
 * needs remove + create + start, restart=always's a start of the same container (after 100 ms).
 */
export async function engineOperations(docker: Docker, setup: OperationSetup, rounds: number): Promise<OperationTimes> {
  const times: OperationTimes = { create: [], startNew: [], startAgain: [], remove: [] };
  const timed = async <T>(into: number[], work: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    const result = await work();
    into.push(Number(process.hrtime.bigint() - t0) / 1e6);
    return result;
  };
  const killAndWait = async (container: Docker.Container): Promise<void> => {
    const info = await container.inspect();
    const pid = info.State.Pid;
    if (pid > 0 && cmdline(pid)?.[0] === REPORTER_IN_CONTAINER) process.kill(pid, 'SIGKILL');
    await container.wait({ condition: 'not-running' });
  };
  for (let i = 0; i < rounds; i++) {
    if (setup.isInterrupted()) throw new Error('interrupted');
    const container = await timed(times.create, () =>
      docker.createContainer({
        name: setup.name,
        Image: setup.image,
        Cmd: [REPORTER_IN_CONTAINER, REPORT_SOCKET_IN_CONTAINER],
        Labels: setup.labels,
        HostConfig: {
          RestartPolicy: { Name: 'no' },
          Mounts: [
            { Type: 'bind', Source: setup.reportDir, Target: REPORT_DIR_IN_CONTAINER },
            { Type: 'bind', Source: setup.reporter, Target: REPORTER_IN_CONTAINER, ReadOnly: true },
          ],
          ...(setup.network !== undefined && { NetworkMode: setup.network }),
        },
      }),
    );
    await timed(times.startNew, () => container.start());
    await killAndWait(container);
    await timed(times.startAgain, () => container.start());
    await killAndWait(container);
    await timed(times.remove, () => container.remove());
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 100));
  }
  return times;
}
