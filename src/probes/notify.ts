// Notify probe: the process says it is ready by writing a newline to a descriptor pm gave it (s6's
// notification-fd, dinit's pipefd). The descriptor is a file of the state directory (see
// FileStore.readyPath), watched with inotify while a tick waits: no polling, and the line is taken
// the moment it is written.
import { closeSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { attempt, errorMessage, type ProbeResult } from './result.js';

/** A process may write anything before its newline ("READY=1\n"); only this much is read. */
const READ_LIMIT = 4096;

/** Waits up to `waitMs` for a newline in `file`; ok at once if it is already there. Never rejects. */
export function waitForNotification(file: string, fd: number, waitMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  // attempt's own timeout is only a backstop: the wait below settles first, with a clearer message.
  return attempt(waitMs / 1000 + 5, signal, (settle) => {
    let watcher: FSWatcher | undefined;
    let closed = false;
    const look = (): void => {
      try {
        if (hasLine(file)) settle(true, `notified ready on descriptor ${fd}`);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        settle(false, code === 'ENOENT' ? `no notification file ${file}: the process was not started with this probe` : `cannot read ${file}: ${errorMessage(error)}`);
      }
    };
    const timer = setTimeout(() => settle(false, `not notified ready yet (descriptor ${fd})`), Math.max(1, waitMs));
    try {
      // Watch first, then read: a line written in between is seen by one or the other.
      watcher = watch(file, { persistent: false }, () => {
        if (!closed) look();
      });
      watcher.on('error', (error) => settle(false, `cannot watch ${file}: ${errorMessage(error)}`));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      settle(false, code === 'ENOENT' ? `no notification file ${file}: the process was not started with this probe` : `cannot watch ${file}: ${errorMessage(error)}`);
    }
    look();
    return () => {
      closed = true;
      clearTimeout(timer);
      watcher?.close();
    };
  });
}

/**
 * Synchronous on purpose, as the intent log is: the file lies in pm's state directory and at most
 * 4 KiB of it is read. Three thread-pool round trips per look cost the event loop more than the
 * read itself (--cpu-prof of a cold start of 100: 0.5 ms per process, the daemon's thread then the
 * bottleneck; docs/benchmarks.md, scenario (b)).
 */
function hasLine(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(READ_LIMIT);
    const bytesRead = readSync(fd, buffer, 0, READ_LIMIT, 0);
    return buffer.subarray(0, bytesRead).includes(0x0a);
  } finally {
    closeSync(fd);
  }
}
