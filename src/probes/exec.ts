// Exec probe: runs a command without a shell, as the probed process's user, in its own process
// group; exit code 0 is success. Nothing it started outlives it: the group is killed when the
// command exits (a background child holding its stdout would otherwise keep the probe open until
// the timeout, and then survive it), and on timeout or abort.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { attempt, errorMessage, type ProbeResult } from './result.js';

/** Output kept per stream; the rest is read and dropped so the command never blocks on a full pipe. */
const MAX_OUTPUT_BYTES = 4096;

export interface ExecTarget {
  command: readonly [string, ...string[]];
  cwd?: string;
  env?: Record<string, string>;
  /** The user and group to run as (those of the probed process); pm's own when absent. */
  uid?: number;
  gid?: number;
}

export function runExecProbe(target: ExecTarget, timeoutSeconds: number, signal?: AbortSignal): Promise<ProbeResult> {
  return attempt(timeoutSeconds, signal, (settle) => {
    const [file, ...args] = target.command;
    const child = spawn(file, args, {
      shell: false,
      detached: true,
      cwd: target.cwd,
      env: target.env,
      uid: target.uid,
      gid: target.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const stdout = capture(child.stdout);
    const stderr = capture(child.stderr);
    // The 'exit' event comes right after Node reaped the command, before anything else runs: the
    // last moment its PID is sure to still name its own group. Whatever it left running goes now.
    child.once('exit', () => killGroup(child.pid));
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

/**
 * Kills the probe's whole group and waits for the command's exit, so no process or handle remains.
 * Once the command has exited its group was killed then (see the 'exit' listener), and its PID may
 * since name another program's group, so it is not signalled again.
 */
async function killAndReap(child: ChildProcess): Promise<void> {
  child.stdout?.destroy();
  child.stderr?.destroy();
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  killGroup(child.pid);
  await exited;
}

function killGroup(pid: number | undefined): void {
  // kill(-0) and kill(-1) would reach pm's own group or every process it may signal.
  if (pid === undefined || pid <= 1) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: nothing is left in the group.
  }
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
