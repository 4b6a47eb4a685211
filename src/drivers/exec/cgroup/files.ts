// Small reads and writes of cgroup files, with the failures a caller decides on as values.
import { constants } from 'node:fs';
import { access, readFile, rmdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isEnding, readProcStat } from '../proc.js';

export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export async function isWritable(dir: string): Promise<boolean> {
  return access(dir, constants.W_OK).then(
    () => true,
    () => false,
  );
}

/** The space-separated words of a file (cgroup.controllers, cgroup.subtree_control); [] when unreadable. */
export async function readWords(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split(/\s+/).filter((w) => w !== '');
}

/** The PIDs of a cgroup.procs file; [] when unreadable. */
export async function readPids(path: string): Promise<number[]> {
  return (await readWords(path)).map(Number).filter((pid) => Number.isInteger(pid) && pid > 0);
}

/** One write of `value` to a cgroup file (the kernel takes each write whole). */
export function writeValue(path: string, value: string): Promise<void> {
  return writeFile(path, value);
}

/** How long remove() retries a cgroup that is empty but not yet released (a member still exiting): 1 s. */
const RELEASE_RETRIES = 40;
const RELEASE_RETRY_MS = 25;

/**
 * Removes an empty cgroup: true when it is gone. A cgroup with processes still in it (what the run
 * forked outlives its leader) is left, false: whoever finds it empty later removes it.
 */
export async function removeCgroup(dir: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' || attempt >= RELEASE_RETRIES) return false;
      // Busy with a live member: left for later. Busy while empty, or with members that are
      // exiting (still listed until the kernel has released them; seen under load when pm delete
      // had just stopped the process): wait for the release.
      if (await hasLiveMember(`${dir}/cgroup.procs`)) return false;
      await sleep(RELEASE_RETRY_MS);
    }
  }
}

/** Whether a cgroup.procs file lists a process that is neither gone nor exiting. */
async function hasLiveMember(procs: string): Promise<boolean> {
  for (const pid of await readPids(procs)) {
    const stat = await readProcStat(pid);
    if (stat !== undefined && !isEnding(stat)) return true;
  }
  return false;
}
