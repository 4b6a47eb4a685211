// A real `pm daemon` per test, in a sandbox (test/support/cli.ts): started in the background on a
// free port, spoken to over its HTTP API with the token from the state directory, and SIGKILLed
// when the test ends, pass or fail — by the sandbox's cleanup (which then kills what it started,
// by their records and PID files) and by createDaemonSandbox's sweep of whatever is left.
// Also: manifests with the fields sandbox.manifest() does not take, and readers for metrics and /proc.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parse, stringify } from 'yaml';
import type { ControlResult, ControlVerb, DaemonEvent, ProcessStatus, ReadinessReport } from '../../src/daemon/api.js';
import type { DaemonEndpoint } from '../../src/server/client.js';
import { createSandbox, isRunningWith, programPath, type BackgroundPm, type FixtureProgram, type ProcessSpec, type Sandbox } from './cli.js';
import { waitFor } from './wait.js';

export type { DaemonEvent, ProcessStatus, ReadinessReport };

/** Every HTTP call gives up after this long: a stuck daemon fails the test instead of hanging it. */
const REQUEST_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 20_000;
const WAIT_TIMEOUT_MS = 15_000;

export interface DaemonOptions {
  /** More flags for `pm daemon`, e.g. ['--resync-seconds', '0.2'] or ['--config', PATH]. */
  args?: string[];
  env?: Record<string, string>;
  /** Default: the sandbox's manifests directory. */
  manifestsDir?: string;
  /** --listen (default 127.0.0.1:0, a free port); null passes no flag, e.g. to take it from a config file. */
  listen?: string | null;
  /** A descriptor limit for the daemon (prlimit --nofile). */
  maxOpenFiles?: number;
}

export interface ApiReply<T> {
  status: number;
  body: T;
}

export interface Daemon {
  bg: BackgroundPm;
  /** http://127.0.0.1:PORT, from daemon.json. */
  url: string;
  token: string;
  pid: number;
  /** One request; `token: null` sends none. Never rejects for an HTTP status, only on a network error or timeout. */
  api<T = unknown>(method: 'GET' | 'POST', path: string, body?: unknown, options?: { token?: string | null }): Promise<ApiReply<T>>;
  /** GET /api/v1/processes/NAME; fails when not 200. */
  get(name: string): Promise<ProcessStatus>;
  list(): Promise<ProcessStatus[]>;
  /** The process's recent events (oldest first), or without a name every event the daemon keeps. */
  events(name?: string): Promise<DaemonEvent[]>;
  /** POST /api/v1/processes/NAME/VERB; fails when not 200. */
  control(verb: ControlVerb, name: string): Promise<ControlResult>;
  readyz(): Promise<ApiReply<ReadinessReport>>;
  /** /metrics as text. */
  metrics(): Promise<string>;
  /** Polls NAME's status until `predicate` holds; returns that status. */
  waitFor(name: string, predicate: (status: ProcessStatus) => boolean, message: string, timeoutMs?: number): Promise<ProcessStatus>;
  /** Polls the events (of `name`, or all) until one matches; returns it. */
  waitForEvent(name: string | undefined, predicate: (event: DaemonEvent, index: number, all: DaemonEvent[]) => boolean, message: string, timeoutMs?: number): Promise<DaemonEvent>;
  kill(signal?: NodeJS.Signals): void;
  /** Settles when the daemon process has exited. */
  stopped: BackgroundPm['result'];
  /** The daemon's output so far (JSON log lines), for failure messages. */
  output(): string;
}

/** The daemons started on each sandbox, for createDaemonSandbox's cleanup. */
const daemonsOf = new WeakMap<Sandbox, Daemon[]>();

/**
 * createSandbox, plus a last sweep when the test ends: its daemons are killed first (nothing new is
 * spawned after that), then every process still carrying the sandbox's PM_IT_PID_DIR. The
 * sandbox's own cleanup finds processes by their records and PID files, and a daemon writes a new
 * record just after the spawn, and a fixture registers just after it starts: an instance started
 * moments before the test ended can have neither yet.
 */
export async function createDaemonSandbox(t: TestContext): Promise<Sandbox> {
  const sandbox = await createSandbox(t);
  t.after(async () => {
    const daemons = daemonsOf.get(sandbox) ?? [];
    for (const daemon of daemons) daemon.kill('SIGKILL');
    await Promise.all(daemons.map((daemon) => daemon.stopped.catch(() => undefined)));
    const leftovers = await processesWithEnv(`PM_IT_PID_DIR=${sandbox.pidDir}`);
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await waitFor(async () => (await Promise.all(leftovers.map((pid) => isRunningWith(pid)))).every((alive) => !alive), {
      timeoutMs: 5_000,
      message: 'leftover sandbox processes to end',
    }).catch(() => undefined);
  });
  return sandbox;
}

/** The command line startDaemon runs: `daemon -f DIR --listen 127.0.0.1:0 --log-format json ...args`. */
export function daemonArgs(sandbox: Sandbox, options: DaemonOptions = {}): string[] {
  const listen = options.listen === undefined ? '127.0.0.1:0' : options.listen;
  return ['daemon', '-f', options.manifestsDir ?? sandbox.manifestsDir, ...(listen === null ? [] : ['--listen', listen]), '--log-format', 'json', ...(options.args ?? [])];
}

/** The environment startDaemon adds: no config file from the user running the tests, only what a test passes. */
export function daemonEnv(sandbox: Sandbox, options: DaemonOptions = {}): { env: Record<string, string> } {
  return { env: { XDG_CONFIG_HOME: sandbox.path('xdg-config'), ...options.env } };
}

/** Starts `pm daemon` on the sandbox and resolves once it announced itself, answers /healthz and has finished starting. */
export async function startDaemon(sandbox: Sandbox, options: DaemonOptions = {}): Promise<Daemon> {
  const bg = sandbox.pmBackground(daemonArgs(sandbox, options), { ...daemonEnv(sandbox, options), ...(options.maxOpenFiles !== undefined && { maxOpenFiles: options.maxOpenFiles }) });
  const output = (): string => `stdout:\n${tail(bg.stdout())}\nstderr:\n${tail(bg.stderr())}`;
  let exited = false;
  void bg.result.then(() => (exited = true));

  let url = '';
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`pm daemon exited while starting (code ${bg.child.exitCode}, signal ${bg.child.signalCode})`);
        const endpoint = await readEndpoint(sandbox.stateDir);
        // A daemon.json left by an earlier daemon (killed with SIGKILL) names another pid.
        if (!endpoint || endpoint.pid !== bg.child.pid || endpoint.url === undefined) return false;
        url = endpoint.url;
        const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(() => undefined);
        // The last start-up step (the SIGHUP handler) is in place once this line is written.
        return health?.status === 200 && bg.stdout().includes('"msg":"pm daemon running"');
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 20, message: 'pm daemon to start' },
    );
  } catch (error) {
    bg.child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${output()}`, { cause: error });
  }
  const token = (await readFile(join(sandbox.stateDir, 'api-token'), 'utf8')).trim();

  async function api<T>(method: 'GET' | 'POST', path: string, body?: unknown, opts: { token?: string | null } = {}): Promise<ApiReply<T>> {
    const bearer = opts.token === undefined ? token : opts.token;
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(bearer !== null && { authorization: `Bearer ${bearer}` }),
        ...(body !== undefined && { 'content-type': 'application/json' }),
        'x-pm-actor': 'pm-it',
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    const json = (response.headers.get('content-type') ?? '').startsWith('application/json');
    return { status: response.status, body: (json ? JSON.parse(text) : text) as T };
  }

  async function ok<T>(method: 'GET' | 'POST', path: string): Promise<T> {
    const reply = await api<T>(method, path);
    if (reply.status !== 200) throw new Error(`${method} ${path} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
    return reply.body;
  }

  const processPath = (name: string): string => `/api/v1/processes/${encodeURIComponent(name)}`;
  const daemon: Daemon = {
    bg,
    url,
    token,
    pid: bg.child.pid as number,
    api,
    get: async (name) => (await ok<{ process: ProcessStatus }>('GET', processPath(name))).process,
    list: async () => (await ok<{ items: ProcessStatus[] }>('GET', '/api/v1/processes')).items,
    events: async (name) =>
      name === undefined ? (await ok<{ items: DaemonEvent[] }>('GET', '/api/v1/events?limit=10000')).items : (await ok<{ events: DaemonEvent[] }>('GET', processPath(name))).events,
    control: (verb, name) => ok<ControlResult>('POST', `${processPath(name)}/${verb}`),
    readyz: () => api<ReadinessReport>('GET', '/readyz', undefined, { token: null }),
    async metrics() {
      const reply = await api<string>('GET', '/metrics', undefined, { token: null });
      if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`);
      return reply.body;
    },
    async waitFor(name, predicate, message, timeoutMs = WAIT_TIMEOUT_MS) {
      let last: ProcessStatus | undefined;
      try {
        await waitFor(async () => predicate((last = await daemon.get(name))), { timeoutMs, intervalMs: 10, message });
      } catch (error) {
        throw new Error(`${(error as Error).message}\nlast status of ${name}: ${JSON.stringify(last)}\nevents: ${await describeEvents(daemon, name)}\n${output()}`, {
          cause: error,
        });
      }
      return last as ProcessStatus;
    },
    async waitForEvent(name, predicate, message, timeoutMs = WAIT_TIMEOUT_MS) {
      let found: DaemonEvent | undefined;
      try {
        await waitFor(
          async () => {
            const events = await daemon.events(name);
            found = events.find(predicate);
            return found !== undefined;
          },
          { timeoutMs, intervalMs: 10, message },
        );
      } catch (error) {
        throw new Error(`${(error as Error).message}\nevents: ${await describeEvents(daemon, name)}\n${output()}`, { cause: error });
      }
      return found as DaemonEvent;
    },
    kill: (signal = 'SIGKILL') => void bg.child.kill(signal),
    stopped: bg.result,
    output,
  };
  daemonsOf.set(sandbox, [...(daemonsOf.get(sandbox) ?? []), daemon]);
  return daemon;
}

export async function readEndpoint(stateDir: string): Promise<DaemonEndpoint | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'daemon.json'), 'utf8')) as DaemonEndpoint;
  } catch {
    // not written yet, or being replaced
    return undefined;
  }
}

async function describeEvents(daemon: Daemon, name: string | undefined): Promise<string> {
  try {
    return (await daemon.events(name)).map((e) => `\n  ${e.time} ${e.process ?? '-'} ${e.type}: ${e.message}`).join('');
  } catch (error) {
    return `(could not read them: ${(error as Error).message})`;
  }
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

// ---- manifests -------------------------------------------------------------------------------

/** Spec fields the sandbox's manifest() does not take, merged over what it writes (objects merge, the rest replaces). */
export type SpecOverrides = Record<string, unknown>;

/** A fixture program's manifest (sandbox.manifest) with more spec fields, e.g. restartPolicy.backoff. */
export function fixtureManifest(sandbox: Sandbox, spec: ProcessSpec, overrides: SpecOverrides = {}): string {
  const doc = parse(sandbox.manifest(spec)) as { spec: Record<string, unknown> };
  doc.spec = merge(doc.spec, overrides);
  return stringify(doc);
}

/** A manifest for any command, with the sandbox's PID registry in its environment. */
export function commandManifest(sandbox: Sandbox, name: string, command: string[], overrides: SpecOverrides = {}): string {
  const spec = merge({ exec: { command, env: { NAME: name, PM_IT_PID_DIR: sandbox.pidDir } }, stop: { gracePeriodSeconds: 2 } }, overrides);
  return stringify({ apiVersion: 'pm.dev/v1alpha1', kind: 'Process', metadata: { name }, spec });
}

/**
 * A command that exits with code 1 until `file` exists, and from then on runs the fixture program
 * (so it registers its PID like any fixture): a process that crash-loops until the test fixes it.
 */
export function failsUntil(file: string, program: FixtureProgram = 'idle', args: string[] = []): string[] {
  return ['sh', '-c', `test -f '${file}' || exit 1; exec "$0" "$@"`, process.execPath, programPath(program), ...args];
}

/** Quick, deterministic restarts: a small backoff without jitter, ready as soon as it runs. */
export function quickRestarts(overrides: { initialSeconds?: number; breaker?: Record<string, unknown>; policy?: string } = {}): SpecOverrides {
  return {
    minReadySeconds: 0,
    restartPolicy: {
      ...(overrides.policy !== undefined && { policy: overrides.policy }),
      backoff: { initialSeconds: overrides.initialSeconds ?? 0.05, factor: 2, maxSeconds: Math.max(10, overrides.initialSeconds ?? 0), jitter: 0 },
      ...(overrides.breaker && { circuitBreaker: overrides.breaker }),
    },
  };
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? merge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---- metrics and processes -----------------------------------------------------------------

/** The value of one series in Prometheus text, labels matched whatever their order; undefined when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    const wanted = Object.entries(labels);
    if (wanted.length === Object.keys(found).length && wanted.every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

/** PIDs of live processes whose environment holds `entry` (NAME=value) exactly (Linux /proc). */
export async function processesWithEnv(entry: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(entry) && (await isRunningWith(Number(name)))) pids.push(Number(name));
  }
  return pids;
}

/** PIDs of live (not zombie) processes with `arg` as one of their command-line arguments (Linux /proc). */
export async function processesWithArg(arg: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      if (!argv.includes(arg)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state !== 'Z' && state !== 'X') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The index of the first event of `type` at or after `from`, -1 when none. */
export function indexOfEvent(events: DaemonEvent[], type: DaemonEvent['type'], from = 0, test: (event: DaemonEvent) => boolean = () => true): number {
  for (let i = from; i < events.length; i++) if (events[i]?.type === type && test(events[i] as DaemonEvent)) return i;
  return -1;
}
