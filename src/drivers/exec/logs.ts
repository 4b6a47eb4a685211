// Log files are opened by pm and handed to the child as file descriptors, so the child's output
// goes straight to disk and never flows through pm's event loop.
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export const LOG_FILE_MODE = 0o640;

export interface LogFds {
  stdout: number;
  stderr: number;
  /** Closes pm's copies; the child keeps its own. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens stdout and stderr for appending (creating parent folders). When both paths are equal the
 * same descriptor serves both, so lines written to either keep their order in the file.
 */
export async function openLogFiles(logs: { stdout: string; stderr: string }): Promise<LogFds> {
  const handles: FileHandle[] = [];
  const closeAll = async (): Promise<void> => {
    const open = handles.splice(0);
    await Promise.all(open.map((h) => h.close().catch(() => undefined)));
  };
  try {
    const stdout = await openForAppend(logs.stdout);
    handles.push(stdout);
    const stderr = logs.stderr === logs.stdout ? stdout : await openForAppend(logs.stderr);
    if (stderr !== stdout) handles.push(stderr);
    return { stdout: stdout.fd, stderr: stderr.fd, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

async function openForAppend(path: string): Promise<FileHandle> {
  await mkdir(dirname(path), { recursive: true });
  return open(path, 'a', LOG_FILE_MODE);
}
