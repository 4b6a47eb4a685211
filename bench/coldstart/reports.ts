// The bench's side of bench/coldstart/child.c: one unix socket for every child of every manager.
// A child says "S NAME PID T" when it runs and "R NAME T" when it is ready (T: its own
// CLOCK_MONOTONIC in ns, process.hrtime.bigint()'s clock), or "E NAME message" when it could not
// become ready; its connection stays open while it lives. The bench reads one run at a time.
import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';

export interface Start {
  pid: number;
  at: bigint;
}

/** What the children of one run reported. */
export interface RunReports {
  /** Every start, by name (more than one: the manager restarted it). */
  starts: Map<string, Start[]>;
  /** The first ready report, by name. */
  ready: Map<string, bigint>;
  errors: string[];
}

interface Waiter {
  done: () => boolean;
  resolve: () => void;
}

export class ColdReports {
  readonly path: string;
  readonly #server: Server;
  /** Live connections, with the pid the child gave (its own namespace's pid). */
  readonly #open = new Map<Socket, number | undefined>();
  #run: RunReports = emptyRun();
  #waiters: Waiter[] = [];
  #closing: Promise<void> | undefined;

  private constructor(path: string) {
    this.path = path;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  static async listen(path: string): Promise<ColdReports> {
    await rm(path, { force: true });
    const reports = new ColdReports(path);
    await new Promise<void>((resolve, reject) => {
      reports.#server.once('error', reject);
      reports.#server.listen(path, () => {
        reports.#server.off('error', reject);
        resolve();
      });
    });
    return reports;
  }

  /** Forgets the previous run's reports; call with no child alive. */
  beginRun(): RunReports {
    this.#run = emptyRun();
    return this.#run;
  }

  /** Children connected now. */
  get liveCount(): number {
    return this.#open.size;
  }

  /** Pids children of this run gave (host pids, except under systemd's PID namespace). */
  livePids(): number[] {
    return [...this.#open.values()].filter((pid): pid is number => pid !== undefined);
  }

  /** Resolves once every name has reported ready; rejects on a child's error report or after timeoutMs. */
  allReady(names: readonly string[], timeoutMs: number): Promise<void> {
    return this.#until(() => names.every((n) => this.#run.ready.has(n)), timeoutMs, () => {
      const missing = names.filter((n) => !this.#run.ready.has(n));
      const notStarted = missing.filter((n) => !this.#run.starts.has(n));
      return `${missing.length} of ${names.length} processes to be ready (${notStarted.length} never started; first missing: ${missing.slice(0, 5).join(', ')})`;
    });
  }

  /** Resolves once no child is connected (all have died). */
  allGone(timeoutMs: number): Promise<void> {
    return this.#until(() => this.#open.size === 0, timeoutMs, () => `${this.#open.size} children to exit (pids ${this.livePids().slice(0, 10).join(', ')})`, false);
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      for (const socket of this.#open.keys()) socket.destroy();
      this.#server.close(() => resolve());
    }).then(() => rm(this.path, { force: true }));
    return this.#closing;
  }

  #accept(socket: Socket): void {
    this.#open.set(socket, undefined);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        this.#line(socket, buffered.slice(0, newline));
        buffered = buffered.slice(newline + 1);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#open.delete(socket);
      this.#wake();
    });
  }

  #line(socket: Socket, line: string): void {
    const [kind, name, ...rest] = line.split(' ');
    if (name === undefined) return;
    if (kind === 'S' && rest.length === 2) {
      const start = { pid: Number(rest[0]), at: BigInt(rest[1] as string) };
      this.#open.set(socket, start.pid);
      this.#run.starts.set(name, [...(this.#run.starts.get(name) ?? []), start]);
    } else if (kind === 'R' && rest.length === 1) {
      if (!this.#run.ready.has(name)) this.#run.ready.set(name, BigInt(rest[0] as string));
    } else if (kind === 'E') {
      this.#run.errors.push(`${name}: ${rest.join(' ')}`);
    }
    this.#wake();
  }

  /** failOnError: a child's "E" report ends the wait at once. */
  #until(done: () => boolean, timeoutMs: number, what: () => string, failOnError = true): Promise<void> {
    const check = (): boolean => done() || (failOnError && this.#run.errors.length > 0);
    const settle = (resolve: () => void, reject: (error: Error) => void): void => {
      if (failOnError && this.#run.errors.length > 0) reject(new Error(`a child could not become ready: ${this.#run.errors.slice(0, 3).join('; ')}`));
      else resolve();
    };
    if (check()) return new Promise<void>((resolve, reject) => settle(resolve, reject));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        done: check,
        resolve: () => {
          clearTimeout(timer);
          settle(resolve, reject);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  #wake(): void {
    const waiting: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.done()) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }
}

function emptyRun(): RunReports {
  return { starts: new Map(), ready: new Map(), errors: [] };
}
