// Exec probe: runs a command without a shell, in its own process group; exit code 0 is success.
// On timeout or abort the whole group is killed, so a hung check never lingers.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { attempt, errorMessage, type ProbeResult } from './result.js';

/** Output kept per stream; the rest is read and dropped so the command never blocks on a full pipe. */
const MAX_OUTPUT_BYTES = 4096;

export interface ExecTarget {
  command: readonly [string, ...string[]];
  cwd?: string;
  env?: Record<string, string>;
}

export function runExecProbe(target: ExecTarget, timeoutSeconds: number, signal?: AbortSignal): Promise<ProbeResult> {
  return attempt(timeoutSeconds, signal, (settle) => {
    const [file, ...args] = target.command;
    const child = spawn(file, args, {
      shell: false,
      detached: true,
      cwd: target.cwd,
      env: target.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const stdout = capture(child.stdout);
    const stderr = capture(child.stderr);
    child.on('error', (err: NodeJS.ErrnoException) => {
      settle(false, err.code === 'ENOENT' ? `command "${file}" not found` : errorMessage(err));
    });
    child.once('close', (code, sig) => {
      if (code === 0) settle(true, 'exit code 0');
      else {
        const detail = firstLine(stderr()) || firstLine(stdout());
        const what = code === null ? `killed by ${sig ?? 'a signal'}` : `exit code ${code}`;
        settle(false, detail ? `${what}: ${detail}` : what);
      }
    });
    return () => killAndReap(child);
  });
}

/** Kills the probe's group if it is still running and waits for the exit, so no handle remains. */
async function killAndReap(child: ChildProcess): Promise<void> {
  child.stdout?.destroy();
  child.stderr?.destroy();
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // ESRCH: it ended on its own in the meantime.
  }
  await exited;
}

function capture(stream: NodeJS.ReadableStream | null): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size >= MAX_OUTPUT_BYTES) return;
    const part = chunk.subarray(0, MAX_OUTPUT_BYTES - size);
    chunks.push(part);
    size += part.length;
  });
  stream?.on('error', () => undefined);
  return () => Buffer.concat(chunks).toString('utf8');
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.trim().slice(0, 200);
}
