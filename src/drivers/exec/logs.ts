// Log files are opened by pm and handed to the child as file descriptors, so the child's output
// goes straight to disk and never flows through pm's event loop. The native spawner opens them in
// its own thread, with the spawn (spawn.ts); these are for Node's spawn, and for saying what went
// wrong when the native spawner could not open one.
//
// Opened through the thread pool (a log path may be on a slow filesystem, which must not stall the
// daemon) but as bare descriptors, closed synchronously once the child has its copies: close(2)
// of a file pm never wrote to does not wait on the disk, and a FileHandle's close is one more
// thread-pool round trip on every start (3–5 ms of a start's latency in a daemon starting 100
// processes, measured with bench:coldstart).
import { closeSync, open } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

export const LOG_FILE_MODE = 0o640;

export interface LogFds {
  stdout: number;
  stderr: number;
  /** Closes pm's copies; the child keeps its own. Idempotent. */
  close(): void;
}

/**
 * Opens stdout and stderr for appending (creating parent folders). When both paths are equal the
 * same descriptor serves both, so lines written to either keep their order in the file.
 */
export async function openLogFiles(logs: { stdout: string; stderr: string }): Promise<LogFds> {
  const opened = await Promise.allSettled(logs.stderr === logs.stdout ? [openForAppend(logs.stdout)] : [openForAppend(logs.stdout), openForAppend(logs.stderr)]);
  const fds = opened.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failed = opened.find((result) => result.status === 'rejected');
  if (failed) {
    closeFds(fds);
    throw failed.reason;
  }
  const [stdout, stderr = stdout] = fds as [number, number?];
  return { stdout, stderr, close: () => closeFds(fds) };
}

/** A file opened for writing, as a bare descriptor. */
export function openFd(path: string, flags: string, mode: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, mode, (error, fd) => (error ? reject(error) : resolve(fd))));
}

/** Closes each descriptor once (the list is emptied), ignoring errors: pm only ever read or handed them on. */
export function closeFds(fds: number[]): void {
  for (const fd of fds.splice(0)) {
    try {
      closeSync(fd);
    } catch {
      // Nothing pm wrote can be lost.
    }
  }
}

/** Opens for appending; the folder is made only when the open says it is missing (once, not at every start). */
async function openForAppend(path: string): Promise<number> {
  try {
    return await openFd(path, 'a', LOG_FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true });
  return openFd(path, 'a', LOG_FILE_MODE);
}
