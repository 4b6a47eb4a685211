// Small process helpers for the benchmark: run a command to completion, look at a PID in /proc,
// wait for a PID that is not our child to go away.
import { spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Runs argv to completion (stdout and stderr together); rejects only when it cannot start or times out. */
export function runCommand(argv: readonly string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('runCommand: empty argv'));
  const { timeoutMs = 120_000, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...spawnOptions, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => chunks.push(c));
    child.stderr?.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
}

/** Runs argv and returns its output; rejects, with the output, unless it exits 0. */
export async function mustRun(argv: readonly string[], options: SpawnOptions & { timeoutMs?: number } = {}): Promise<string> {
  const result = await runCommand(argv, options);
  if (result.code !== 0) throw new Error(`${argv.join(' ')} exited ${result.code ?? result.signal}:\n${tail(result.output)}`);
  return result.output;
}

/** The executable `program` found on PATH, or undefined. */
export function onPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    try {
      accessSync(`${dir}/${program}`, constants.X_OK);
      return `${dir}/${program}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The process's state letter from /proc/PID/stat, or undefined when it does not exist. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie. */
export function isAlive(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** argv of a live process, or undefined. */
export function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
  } catch {
    return undefined;
  }
}

/** VmRSS from /proc/PID/status, in KiB; undefined when the process is gone. */
export function residentKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * CPU time a process has had so far, from the scheduler's own accounting (/proc/PID/task/TID/schedstat,
 * nanoseconds on a CPU): all its threads, and its main thread alone. Undefined once it is gone. A
 * thread that ended in between drops out of the sum: read it while the threads it had still run.
 */
export function cpuTimes(pid: number): { processMs: number; mainThreadMs: number } | undefined {
  const onCpuMs = (tid: string): number => Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  try {
    let processMs = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        processMs += onCpuMs(tid);
      } catch {
        // That thread ended between the listing and the read.
      }
    }
    return { processMs, mainThreadMs: onCpuMs(String(pid)) };
  } catch {
    return undefined;
  }
}

/** Polls until pid is gone (or a zombie); false on timeout. For processes that are not our children. */
export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** SIGKILL, ignoring a process already gone. */
export function killHard(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * Installs Debian's `pkg` for a peer that is missing (as root only), with one `apt-get update` and
 * a second try when the first install fails. Returns undefined once installed, else why not.
 */
export async function aptInstall(pkg: string, log: (line: string) => void): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return `${pkg} is not installed and the bench is not root (apt-get install -y ${pkg}, then run again)`;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = ['apt-get', 'install', '-y', '--no-install-recommends', pkg];
  log(`installing ${pkg}: ${install.join(' ')}`);
  let result = await runCommand(install, { env, timeoutMs: 600_000 });
  if (result.code !== 0) {
    log('apt-get install failed; apt-get update, then once more');
    await runCommand(['apt-get', 'update'], { env, timeoutMs: 600_000 });
    result = await runCommand(install, { env, timeoutMs: 600_000 });
  }
  return result.code === 0 ? undefined : `${install.join(' ')} failed:\n${tail(result.output, 5)}`;
}

export function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A long-lived program the bench started (a manager's daemon): own process group, output to a log file. */
export class Background {
  readonly pid: number;
  readonly logFile: string;
  /** Settles when it has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #running = true;

  private constructor(pid: number, logFile: string, exited: Background['exited']) {
    this.pid = pid;
    this.logFile = logFile;
    this.exited = exited.finally(() => (this.#running = false));
  }

  /** Starts argv detached (Ctrl-C on the terminal reaches only the bench, which stops it in order). */
  static async start(argv: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; logFile: string }): Promise<Background> {
    const [file, ...args] = argv;
    if (file === undefined) throw new Error('Background.start: empty argv');
    const log = await open(options.logFile, 'a');
    try {
      const child = spawn(file, args, { detached: true, stdio: ['ignore', log.fd, log.fd], env: options.env ?? process.env, cwd: options.cwd });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      return new Background(child.pid as number, options.logFile, exited);
    } finally {
      await log.close();
    }
  }

  get running(): boolean {
    return this.#running;
  }

  /** Sends `signal` and waits for the exit; SIGKILL after timeoutMs. True when it ended by itself. */
  async stop(signal: NodeJS.Signals, timeoutMs: number): Promise<boolean> {
    if (!this.#running) return true;
    try {
      process.kill(this.pid, signal);
    } catch {
      // already gone
    }
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    if ((await Promise.race([this.exited, timer])) !== 'timeout') return true;
    killHard(this.pid);
    await this.exited;
    return false;
  }

  async logTail(lines = 20): Promise<string> {
    return tail(await readFile(this.logFile, 'utf8').catch(() => ''), lines);
  }
}
