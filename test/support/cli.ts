// A sandbox per integration test: a temporary folder with its own state directory, the real CLI
// (compiled, in dist/) run as a child process, and cleanup that kills everything the test caused,
// whether it passed or failed.
import { isExecHandle } from '../../src/drivers/driver.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { stringify } from 'yaml';
import { readProcessIdentity } from '../../src/drivers/exec/index.js';
import type { ProcessRecord } from '../../src/store/records.js';
import { FileStore } from '../../src/store/file-store.js';
import { waitFor } from './wait.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cliPath = join(repoRoot, 'dist', 'cli', 'main.js');
const programsDir = join(repoRoot, 'test', 'fixtures', 'programs');

export interface PmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PmOptions {
  /** Written to the command's standard input (otherwise it reads /dev/null). */
  input?: string;
  env?: Record<string, string>;
  /** The command is SIGKILLed and the call rejects after this long (default 60 s). */
  timeoutMs?: number;
  /** Working directory (default: the sandbox folder). */
  cwd?: string;
  /** Run under `prlimit --nofile=N` (background commands): a real descriptor limit, for tests of running out. */
  maxOpenFiles?: number;
}

/** A pm command left running in the background. */
export interface BackgroundPm {
  child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Settles when the command has exited: its code (null when a signal ended it) and output. */
  result: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** One entry of `pm get -o json`. */
export interface ProcessStatus {
  name: string;
  driver: string;
  state: string;
  ready: boolean | null;
  readyDetail: string;
  restarts: number;
  pid: number | null;
  startedAt: string | null;
  lastExit: string | null;
  source: string;
  labels: Record<string, string>;
  command: string[];
}

export type FixtureProgram = 'http-server' | 'job' | 'idle' | 'ignore-term';

/** The few manifest fields tests vary; the command is a fixture program run by this Node. */
export interface ProcessSpec {
  name: string;
  program: FixtureProgram;
  args?: string[];
  env?: Record<string, string | number | { fromEnv: string } | { fromFile: string }>;
  labels?: Record<string, string>;
  ports?: { name: string; port: number }[];
  dependsOn?: { name: string; condition?: 'started' | 'ready' | 'completed'; restart?: boolean }[];
  probes?: Record<string, unknown>;
  restartPolicy?: 'always' | 'on-failure' | 'never';
  type?: 'service' | 'oneshot';
  minReadySeconds?: number;
  stop?: { signal?: string; gracePeriodSeconds?: number };
}

export interface Sandbox {
  dir: string;
  stateDir: string;
  manifestsDir: string;
  /** Where fixture programs register their PIDs (see test/fixtures/programs/register.mjs). */
  pidDir: string;
  /** Runs `pm ARGS` to completion. Never rejects for a non-zero exit; rejects on timeout. */
  pm(args: string[], options?: PmOptions): Promise<PmResult>;
  /** Starts `pm ARGS` and returns at once; killed at cleanup if still running. */
  pmBackground(args: string[], options?: Omit<PmOptions, 'input' | 'timeoutMs'>): BackgroundPm;
  /** Absolute path of a path relative to the sandbox folder. */
  path(relative: string): string;
  /** Writes a file (creating folders); returns its absolute path. */
  write(relative: string, text: string): Promise<string>;
  remove(relative: string): Promise<void>;
  /** A TCP port on 127.0.0.1 that was free a moment ago. */
  freePort(): Promise<number>;
  /** `pm get -o json`, parsed; fails the test when pm does not exit 0. */
  get(): Promise<ProcessStatus[]>;
  /** One entry of get(), failing when pm does not list it. */
  status(name: string): Promise<ProcessStatus>;
  /** The state directory's record of NAME (records.jsonl), as pm reads it. */
  record(name: string): Promise<ProcessRecord>;
  /** A manifest for a fixture program, as YAML. */
  manifest(spec: ProcessSpec): string;
}

/** Creates a sandbox whose processes and files are removed when the test ends, pass or fail. */
export async function createSandbox(t: TestContext): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'pm-it-'));
  const stateDir = join(dir, 'state');
  const manifestsDir = join(dir, 'manifests');
  const pidDir = join(dir, 'pids');
  await Promise.all([mkdir(stateDir), mkdir(manifestsDir), mkdir(pidDir)]);
  const background = new Set<ChildProcess>();
  t.after(() => cleanup(dir, stateDir, pidDir, background));

  const envFor = (extra: Record<string, string> | undefined): NodeJS.ProcessEnv => ({
    ...process.env,
    PM_STATE_DIR: stateDir,
    NO_COLOR: '1',
    ...extra,
  });

  const sandbox: Sandbox = {
    dir,
    stateDir,
    manifestsDir,
    pidDir,
    pm: (args, options = {}) => runPm(args, { ...options, cwd: options.cwd ?? dir }, envFor(options.env)),
    pmBackground(args, options = {}) {
      // prlimit sets the limit and execs node: the child keeps its PID.
      const argv = [process.execPath, cliPath, ...args];
      const [file, ...rest] = options.maxOpenFiles === undefined ? argv : ['/usr/bin/prlimit', `--nofile=${options.maxOpenFiles}:${options.maxOpenFiles}`, '--', ...argv];
      const child = spawn(file as string, rest, { cwd: options.cwd ?? dir, env: envFor(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
      background.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const result = new Promise<Awaited<BackgroundPm['result']>>((resolve, reject) => {
        child.once('error', reject);
        child.once('close', (code, signal) => {
          background.delete(child);
          resolve({ code, signal, stdout, stderr });
        });
      });
      result.catch(() => undefined);
      return { child, stdout: () => stdout, stderr: () => stderr, result };
    },
    path: (relative) => join(dir, relative),
    async write(relative, text) {
      const file = join(dir, relative);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, text);
      return file;
    },
    async remove(relative) {
      await unlink(join(dir, relative));
    },
    freePort,
    async get() {
      const result = await sandbox.pm(['get', '-o', 'json']);
      if (result.code !== 0) throw new Error(`pm get exited ${result.code}: ${result.stderr}`);
      return JSON.parse(result.stdout) as ProcessStatus[];
    },
    async status(name) {
      const found = (await sandbox.get()).find((s) => s.name === name);
      if (!found) throw new Error(`pm get does not list ${name}`);
      return found;
    },
    async record(name) {
      const record = await (await FileStore.open(stateDir)).getRecord(name);
      if (!record) throw new Error(`no record of ${name} in ${stateDir}`);
      return record;
    },
    manifest: (spec) => manifestYaml(spec, pidDir),
  };
  return sandbox;
}

function runPm(args: string[], options: PmOptions, env: NodeJS.ProcessEnv): Promise<PmResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd,
      env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    if (options.input !== undefined) child.stdin?.end(options.input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new Error(`pm ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      else if (code === null) reject(new Error(`pm ${args.join(' ')} was ended by ${signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Absolute path of a fixture program. */
export function programPath(program: FixtureProgram): string {
  return join(programsDir, `${program}.mjs`);
}

function manifestYaml(spec: ProcessSpec, pidDir: string): string {
  const doc = {
    apiVersion: 'pm.dev/v1alpha1',
    kind: 'Process',
    metadata: { name: spec.name, ...(spec.labels && { labels: spec.labels }) },
    spec: {
      exec: {
        command: [process.execPath, programPath(spec.program), ...(spec.args ?? [])],
        env: { NAME: spec.name, PM_IT_PID_DIR: pidDir, ...spec.env },
      },
      // Long enough that a fixture crashing at start is seen, short enough to keep the suite quick.
      minReadySeconds: spec.minReadySeconds ?? 0.2,
      ...(spec.type && { type: spec.type }),
      ...(spec.ports && { ports: spec.ports }),
      ...(spec.dependsOn && { dependsOn: spec.dependsOn }),
      ...(spec.probes && { probes: spec.probes }),
      ...(spec.restartPolicy && { restartPolicy: { policy: spec.restartPolicy } }),
      stop: { gracePeriodSeconds: 2, ...spec.stop },
    },
  };
  return stringify(doc);
}

/** A readiness probe: GET /ready on the port, every 0.2 s. */
export function httpReadiness(port: number | string): Record<string, unknown> {
  return { readiness: { http: { port, path: '/ready' }, periodSeconds: 0.2 } };
}

/** Joins manifests into one multi-document YAML file. */
export function documents(...yamls: string[]): string {
  return yamls.join('---\n');
}

/** True while `pid` exists, is not a zombie, and (when given) has this start time. */
export async function isRunningWith(pid: number, startTime?: string): Promise<boolean> {
  const identity = await readProcessIdentity(pid).catch(() => undefined);
  if (!identity || identity.state === 'Z' || identity.state === 'X') return false;
  return startTime === undefined || identity.startTime === startTime;
}

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

async function cleanup(dir: string, stateDir: string, pidDir: string, background: Set<ChildProcess>): Promise<void> {
  // 1. pm commands still running in the background: they could start more processes.
  const children = [...background];
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(
    children.map((child) =>
      child.exitCode !== null || child.signalCode !== null ? undefined : new Promise((resolve) => child.once('close', resolve)),
    ),
  ).catch(() => undefined);

  // 2. Every process pm recorded: its whole group, if the PID is still the one pm started.
  let records: ProcessRecord[] = [];
  try {
    records = [...(await (await FileStore.open(stateDir)).listRecords()).values()];
  } catch {
    // Unreadable (a test's corrupt record): the PID registry below still covers its processes.
  }
  for (const record of records) {
    const handle = record.handle;
    if (handle && isExecHandle(handle) && (await isRunningWith(handle.pid, handle.startTime))) killQuietly(-handle.pgid);
  }

  // 3. Every fixture process that registered itself (grandchildren, instances pm no longer records).
  const registered = await readdir(pidDir).catch(() => [] as string[]);
  const killed: number[] = [];
  for (const name of registered) {
    const pid = Number(name);
    const startTime = (await readFile(join(pidDir, name), 'utf8').catch(() => '')).trim();
    if (await isRunningWith(pid, startTime === 'unknown' ? undefined : startTime)) {
      killQuietly(pid);
      killed.push(pid);
    }
  }
  await waitFor(async () => (await Promise.all(killed.map((pid) => isRunningWith(pid)))).every((alive) => !alive), {
    timeoutMs: 5_000,
    message: 'sandbox processes to end',
  }).catch(() => undefined);

  // 4. The folder.
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
