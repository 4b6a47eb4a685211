// Running one external command for the systemd driver: argv only (never a shell), its own process
// group so a timeout or an abort kills what the prefix started too (nsenter forks its target), a
// hard timeout, and output collected up to a cap. Never rejects for a non-zero exit: the caller
// classifies it.
import { spawn } from 'node:child_process';

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Extra environment on top of the caller's (LC_ALL=C and SYSTEMD_COLORS=0 are always set). */
  env?: Record<string, string>;
}

export type RunOutcome =
  | { kind: 'exited'; exitCode: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
  | { kind: 'timeout'; stdout: string; stderr: string }
  | { kind: 'spawn-error'; error: NodeJS.ErrnoException };

/** Past this, further output is dropped: `show` for thousands of units stays far below it. */
const MAX_OUTPUT = 32 * 1024 * 1024;

/** Runs argv[0] with argv[1..]; rejects only with the abort reason when `signal` aborts. */
export function runCommand(argv: readonly string[], options: RunOptions): Promise<RunOutcome> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new TypeError('runCommand: empty argv'));
  options.signal?.throwIfAborted();
  return new Promise<RunOutcome>((resolve, reject) => {
    const child = spawn(file, args, {
      shell: false,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env, LC_ALL: 'C', SYSTEMD_COLORS: '0', SYSTEMD_PAGER: 'cat' },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let size = 0;
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      if (size >= MAX_OUTPUT) return;
      size += chunk.length;
      into.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));

    let ending: 'timeout' | 'abort' | undefined;
    const killGroup = (): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      ending ??= 'timeout';
      killGroup();
    }, options.timeoutMs);
    const onAbort = (): void => {
      ending ??= 'abort';
      killGroup();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    };

    child.once('error', (error: NodeJS.ErrnoException) => {
      finish();
      resolve({ kind: 'spawn-error', error });
    });
    // 'close' (not 'exit'): both pipes are drained by then.
    child.once('close', (exitCode, signal) => {
      finish();
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (ending === 'abort') reject(options.signal?.reason ?? new DOMException('aborted', 'AbortError'));
      else if (ending === 'timeout') resolve({ kind: 'timeout', stdout: out, stderr: err });
      else resolve({ kind: 'exited', exitCode, signal, stdout: out, stderr: err });
    });
  });
}

/**
 * Runs argv with its stdout copied to `out` as it comes (journalctl -f): no timeout, since it may
 * follow for ever; an abort of `signal` ends it (its whole group) and resolves. Resolves with the
 * exit and the first 64 KiB of stderr.
 */
export function streamCommand(argv: readonly string[], out: NodeJS.WritableStream, signal?: AbortSignal): Promise<{ exitCode: number | null; stderr: string; aborted: boolean } | { spawnError: NodeJS.ErrnoException }> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new TypeError('streamCommand: empty argv'));
  return new Promise((resolve) => {
    const child = spawn(file, args, { shell: false, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', SYSTEMD_COLORS: '0', SYSTEMD_PAGER: 'cat' } });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 65_536) stderr += chunk;
    });
    child.stdout.pipe(out as NodeJS.WritableStream, { end: false });
    let aborted = false;
    const onAbort = (): void => {
      aborted = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
    };
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
    // A reader that went away (`pm logs -f X | head -1`: EPIPE) ends it too, or it would block on a full pipe for ever.
    out.once('close', onAbort);
    out.once('error', onAbort);
    const done = (): void => {
      signal?.removeEventListener('abort', onAbort);
      out.off('close', onAbort);
      out.off('error', onAbort);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      done();
      resolve({ spawnError: error });
    });
    child.once('close', (exitCode) => {
      done();
      child.stdout.unpipe(out as NodeJS.WritableStream);
      resolve({ exitCode, stderr, aborted });
    });
  });
}
