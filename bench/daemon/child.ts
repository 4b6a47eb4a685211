// The supervised child and how it reports. reporter.c is compiled once per source version into
// bench/.build/ (statically when the C library allows: no dynamic loader in the start-up); each
// supervised process gets its own unix socket, and the bench stamps every connection with
// process.hrtime.bigint() the moment it is accepted.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onPath, runCommand } from './proc.js';

const SOURCE = fileURLToPath(new URL('./reporter.c', import.meta.url));
const BUILD_DIR = fileURLToPath(new URL('../.build/', import.meta.url));

export interface ReporterBinary {
  path: string;
  linkage: 'static' | 'dynamic';
}

/**
 * The compiled reporter (or another single-file C child: `sourcePath`, as bench/coldstart.ts's),
 * built if this source version has not been built yet. Fails clearly without cc.
 */
export async function reporterBinary(sourcePath = SOURCE): Promise<ReporterBinary> {
  const source = await readFile(sourcePath);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const stem = basename(sourcePath, '.c');
  for (const linkage of ['static', 'dynamic'] as const) {
    const path = `${BUILD_DIR}${stem}-${hash}-${linkage}`;
    if (existsSync(path)) return { path, linkage };
  }
  const cc = onPath('cc');
  if (cc === undefined) throw new Error('bench/daemon.ts needs a C compiler: `cc` is not on PATH (apt-get install -y gcc libc6-dev)');
  await mkdir(BUILD_DIR, { recursive: true });
  for (const linkage of ['static', 'dynamic'] as const) {
    const path = `${BUILD_DIR}${stem}-${hash}-${linkage}`;
    const tmp = `${path}.tmp-${process.pid}`;
    const result = await runCommand([cc, '-O2', '-Wall', ...(linkage === 'static' ? ['-static'] : []), '-o', tmp, sourcePath]);
    if (result.code === 0) {
      await rename(tmp, path);
      return { path, linkage };
    }
    await rm(tmp, { force: true });
    if (linkage === 'dynamic') throw new Error(`cc could not build ${sourcePath}:\n${result.output}`);
  }
  throw new Error('unreachable');
}

/** One report: a child connected and said its pid. `at` is when the connection was accepted. */
export interface Arrival {
  pid: number;
  at: bigint;
}

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

/** Listens on one unix socket for one supervised process's children. */
export class ReportSocket {
  readonly path: string;
  readonly #server: Server;
  readonly #arrivals: Arrival[] = [];
  /** Connections still open, by pid: those children are alive. */
  readonly #open = new Map<number, Socket>();
  readonly #goneAt = new Map<number, bigint>();
  #waiters: Waiter[] = [];
  #closing: Promise<void> | undefined;

  private constructor(path: string) {
    this.path = path;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  static async listen(path: string): Promise<ReportSocket> {
    await rm(path, { force: true });
    const reports = new ReportSocket(path);
    await new Promise<void>((resolve, reject) => {
      reports.#server.once('error', reject);
      reports.#server.listen(path, () => {
        reports.#server.off('error', reject);
        resolve();
      });
    });
    return reports;
  }

  /** Arrivals so far; arrival number `count` is the next one. */
  get count(): number {
    return this.#arrivals.length;
  }

  /** Every pid that ever reported here (for the leak check at the end). */
  pids(): number[] {
    return this.#arrivals.map((a) => a.pid);
  }

  /** Children connected now, oldest first. */
  live(): number[] {
    return [...this.#open.keys()];
  }

  /** Arrival number `index` (0-based), waiting for it if needed. */
  async arrival(index: number, timeoutMs: number, what: string): Promise<Arrival> {
    await this.#until(() => this.#arrivals.length > index, timeoutMs, what);
    return this.#arrivals[index] as Arrival;
  }

  /** When pid's connection closed (it died), waiting for it if needed. */
  async gone(pid: number, timeoutMs: number, what: string): Promise<bigint> {
    await this.#until(() => this.#goneAt.has(pid), timeoutMs, what);
    return this.#goneAt.get(pid) as bigint;
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const socket of this.#open.values()) socket.destroy();
      this.#server.close(() => resolve());
    }).then(() => rm(this.path, { force: true }));
    return this.#closing;
  }

  #accept(socket: Socket): void {
    const at = process.hrtime.bigint();
    let text = '';
    let pid: number | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (pid !== undefined) return;
      text += chunk;
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      pid = Number(text.slice(0, newline));
      if (!Number.isInteger(pid) || pid <= 0) {
        socket.destroy();
        return;
      }
      this.#open.set(pid, socket);
      this.#arrivals.push({ pid, at });
      this.#wake();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (pid === undefined) return;
      this.#open.delete(pid);
      this.#goneAt.set(pid, process.hrtime.bigint());
      this.#wake();
    });
  }

  #until(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  #wake(): void {
    const [ready, waiting] = partition(this.#waiters, (w) => w.ready());
    this.#waiters = waiting;
    for (const waiter of ready) waiter.resolve();
  }
}

function partition<T>(items: T[], test: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (test(item) ? yes : no).push(item);
  return [yes, no];
}

/**
 * Waits for the first run of every slot of every manager and notes when it came (slot.upAt); a
 * manager that does not start one fails the run with its diagnostics.
 */
export async function awaitFirstRuns<M extends { name: string; diagnostics(): Promise<string> }, S extends { reports: ReportSocket; upAt: bigint }>(
  pools: ReadonlyMap<M, S[]>,
  timeoutMs: number,
  describe: (manager: M, slot: S) => string,
): Promise<void> {
  for (const [manager, pool] of pools) {
    for (const slot of pool) {
      const first = await slot.reports.arrival(0, timeoutMs, `${manager.name} to start ${describe(manager, slot)}`).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${await manager.diagnostics()}`);
      });
      slot.upAt = first.at;
    }
  }
}
