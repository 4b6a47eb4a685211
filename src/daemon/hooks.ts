// Lifecycle hooks (preStart, postStart, preStop) and restart scripts: a program run to its end,
// without a shell, in its own process group, under a timeout. Nothing it starts in that group
// outlives it, and a hook that fails is a result to report, never an exception.
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { signalGroup } from '../drivers/exec/group.js';
import type { Hook } from '../manifest/types.js';

export type HookKind = 'preStart' | 'postStart' | 'preStop' | 'restartScript';

export interface HookOptions {
  /** The process the hook belongs to; given to the hook as PM_PROCESS. */
  name: string;
  kind: HookKind;
  /** The process's full resolved environment: a hook sees what its process sees. */
  env: Record<string, string>;
  /** Added last, over everything else, e.g. PM_PID, PM_REASON. */
  extraEnv?: Record<string, string>;
  cwd?: string;
  /** The process's user and group; pm's own when absent. */
  uid?: number;
  gid?: number;
  /** Ends the hook as a timeout does (SIGTERM to its group, SIGKILL later) and reports it aborted. */
  signal?: AbortSignal;
}

/** One shape for success and every kind of failure. */
export interface HookResult {
  /** Exited with code 0, neither timed out nor aborted. */
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** The hook's timeout, so a failure can be described from the result alone. */
  timeoutSeconds: number;
  durationMs: number;
  /**
   * Combined stdout and stderr: the last 4 KiB, after a '…' when more was written. Lines of the two
   * streams appear in the order pm read them, which is only roughly the order they were written.
   */
  output: string;
  /** Why the program could not be run at all (not found, not executable, no such cwd). */
  error?: string;
}

/** Kept of the output: enough for the last lines of an error, bounded however much a hook writes. */
export const MAX_OUTPUT_BYTES = 4096;
/**
 * Between SIGTERM and SIGKILL when a hook is stopped, and the longest wait for its output to close
 * after it exited: a hook is short work, not a service.
 */
export const KILL_GRACE_MS = 2000;

const labels: Record<HookKind, string> = {
  preStart: 'preStart hook',
  postStart: 'postStart hook',
  preStop: 'preStop hook',
  restartScript: 'restart script',
};

/** Runs `hook` to its end. Rejects only for a programming error (a bad timeout, an unknown kind). */
export async function runHook(hook: Hook, options: HookOptions): Promise<HookResult> {
  checkHook(hook, options);
  const started = performance.now();
  const base = { code: null, signal: null, timedOut: false, aborted: false, timeoutSeconds: hook.timeoutSeconds, output: '' };
  if (options.signal?.aborted) return { ...base, ok: false, aborted: true, durationMs: 0 };

  const [file, ...args] = hook.command;
  const env = { ...options.env, ...hook.env, PM_PROCESS: options.name, PM_HOOK: options.kind, ...options.extraEnv };
  let child: ChildProcess;
  try {
    child = spawn(file, args, {
      shell: false,
      // Own session and process group: a timeout or an abort reaches everything the hook started.
      detached: true,
      cwd: options.cwd,
      env,
      uid: options.uid,
      gid: options.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
  } catch (err) {
    // Thrown synchronously: a NUL byte in an argument, a uid pm may not switch to (EPERM).
    return { ...base, ok: false, durationMs: elapsed(started), error: errorText(err) };
  }

  const run = await supervise(child, hook.timeoutSeconds, options.signal);
  const durationMs = elapsed(started);
  if (run.spawnError !== undefined) {
    return { ...base, ok: false, durationMs, error: await describeSpawnError(run.spawnError, options.cwd) };
  }
  const ok = run.code === 0 && run.stoppedBy === undefined;
  return {
    ...base,
    ok,
    code: run.code,
    signal: run.signal,
    timedOut: run.stoppedBy === 'timeout',
    aborted: run.stoppedBy === 'abort',
    durationMs,
    output: run.output,
  };
}

/** One line for events and errors: what failed, how, after how long, and the hook's last words. */
export function describeHookFailure(kind: HookKind, result: HookResult): string {
  const label = labels[kind];
  if (result.error !== undefined) return `${label} could not run: ${result.error}`;
  const last = lastLine(result.output);
  const detail = last === '' ? '' : `: ${last}`;
  const after = formatDuration(result.durationMs);
  if (result.timedOut) return `${label} timed out after ${result.timeoutSeconds}s${detail}`;
  if (result.aborted) return `${label} was cancelled after ${after}${detail}`;
  if (result.code !== null && result.code !== 0) return `${label} exited with code ${result.code} after ${after}${detail}`;
  if (result.signal !== null) return `${label} was killed by ${result.signal} after ${after}${detail}`;
  return `${label} succeeded after ${after}`;
}

interface Run {
  spawnError?: Error;
  code: number | null;
  signal: NodeJS.Signals | null;
  stoppedBy: 'timeout' | 'abort' | undefined;
  output: string;
}

/**
 * Waits for the hook to end and for its output to close, stopping it on timeout or abort. Resolves
 * once every timer and listener it set is gone. The group is killed when the hook exits: whatever
 * it left running is not ours to keep (systemd does the same after ExecStartPre=), and a stray
 * holding the output pipe would otherwise keep the hook from ever ending.
 */
function supervise(child: ChildProcess, timeoutSeconds: number, signal: AbortSignal | undefined): Promise<Run> {
  return new Promise<Run>((resolve) => {
    const output = new OutputTail(MAX_OUTPUT_BYTES);
    child.stdout?.on('data', (chunk: Buffer) => output.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk));
    // A read error ends the stream like a close does; the exit code still decides.
    child.stdout?.on('error', () => undefined);
    child.stderr?.on('error', () => undefined);

    let spawned = false;
    let settled = false;
    let stoppedBy: Run['stoppedBy'];
    let killTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;

    const finish = (run: Omit<Run, 'stoppedBy' | 'output'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      clearTimeout(killTimer);
      clearTimeout(drainTimer);
      signal?.removeEventListener('abort', onAbort);
      resolve({ ...run, stoppedBy, output: output.text() });
    };

    const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
    const stop = (reason: 'timeout' | 'abort'): void => {
      clearTimeout(timeout);
      signal?.removeEventListener('abort', onAbort);
      // Once the hook has exited, its status stands; the drain timer bounds the rest.
      if (settled || stoppedBy !== undefined || exited()) return;
      stoppedBy = reason;
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        // While the hook has not been reaped its PID still names its group: safe to signal.
        if (!exited() && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      }, KILL_GRACE_MS);
    };
    const onAbort = (): void => stop('abort');
    const timeout = setTimeout(() => stop('timeout'), timeoutSeconds * 1000);
    signal?.addEventListener('abort', onAbort, { once: true });

    child.once('spawn', () => {
      spawned = true;
    });
    child.on('error', (err) => {
      // After 'spawn', an error is a failed kill: the exit and close events still come.
      if (spawned) return;
      child.stdout?.destroy();
      child.stderr?.destroy();
      finish({ spawnError: err, code: null, signal: null });
    });
    // 'exit' comes right after Node reaped the hook: the last moment its PID surely names its group.
    child.once('exit', () => {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      // Output still in the pipes is read until they close, which is at once unless a process
      // that left the group (setsid) holds them open: that one is not waited for long.
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, KILL_GRACE_MS);
    });
    child.once('close', (code: number | null, sig: NodeJS.Signals | null) => finish({ code, signal: sig }));
  });
}

/** The last `limit` bytes written, however many were; memory stays bounded by the limit. */
class OutputTail {
  readonly #limit: number;
  #tail = Buffer.alloc(0);
  #truncated = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  push(chunk: Buffer): void {
    const joined = this.#tail.length === 0 ? chunk : Buffer.concat([this.#tail, chunk]);
    if (joined.length > this.#limit) this.#truncated = true;
    // A copy, so a large chunk is not kept alive by the slice of it we keep.
    this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - this.#limit)));
  }

  text(): string {
    let start = 0;
    // The cut may fall inside a UTF-8 sequence: skip its continuation bytes instead of showing '�'.
    while (this.#truncated && start < 3 && start < this.#tail.length && (this.#tail[start]! & 0xc0) === 0x80) start++;
    const text = this.#tail.subarray(start).toString('utf8');
    return this.#truncated ? `…${text}` : text;
  }
}

/** libuv reports a missing cwd as if the program were missing: look at the cwd before saying so. */
async function describeSpawnError(err: Error, cwd: string | undefined): Promise<string> {
  const code = (err as NodeJS.ErrnoException).code;
  if (cwd !== undefined && (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES')) {
    try {
      if (!(await stat(cwd)).isDirectory()) return `cwd ${cwd} is not a directory`;
    } catch (statErr) {
      const statCode = (statErr as NodeJS.ErrnoException).code;
      if (statCode === 'ENOENT' || statCode === 'ENOTDIR') return `cwd ${cwd} does not exist`;
    }
  }
  return errorText(err);
}

function checkHook(hook: Hook, options: HookOptions): void {
  if (!(options.kind in labels)) throw new TypeError(`unknown hook kind ${JSON.stringify(options.kind)}`);
  if (!Array.isArray(hook.command) || hook.command.length === 0) {
    throw new TypeError(`${labels[options.kind]} of ${options.name} has no command`);
  }
  if (!(Number.isFinite(hook.timeoutSeconds) && hook.timeoutSeconds > 0)) {
    throw new RangeError(`${labels[options.kind]} of ${options.name}: timeoutSeconds must be a positive number, got ${String(hook.timeoutSeconds)}`);
  }
}

function lastLine(output: string): string {
  const lines = output.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    // Cut by code points, never inside a surrogate pair.
    if (line !== '') return line.length > 200 ? `${Array.from(line).slice(0, 200).join('')}…` : line;
  }
  return '';
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)}s`;
}

function elapsed(since: number): number {
  return Math.round(performance.now() - since);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
