// One pm command acts on a state directory at a time. The lock is a file created with O_EXCL that
// names its holder by PID and kernel start time, so a lock left by a crashed pm is recognised as
// stale (its holder is gone or its PID now belongs to another program) and taken over.
import { open, readFile, unlink } from 'node:fs/promises';
import { LockBusyError } from '../errors.js';
import { readProcessIdentity, isLiveState } from '../drivers/exec/proc.js';

interface LockOwner {
  pid: number;
  startTime: string | null;
  command: string;
  since: string;
}

export interface StateLock {
  release(): Promise<void>;
}

export async function acquireLock(path: string, command: string): Promise<StateLock> {
  const owner: LockOwner = {
    pid: process.pid,
    startTime: (await readProcessIdentity(process.pid))?.startTime ?? null,
    command,
    since: new Date().toISOString(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(path, 'wx', 0o600);
      try {
        await file.writeFile(JSON.stringify(owner));
        await file.sync();
      } finally {
        await file.close();
      }
      return makeLock(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readOwner(path);
    if (holder && (await isAlive(holder))) {
      throw new LockBusyError(
        `another pm command (pid ${holder.pid}, "pm ${holder.command}", since ${holder.since}) is acting on this state directory`,
        'wait for it to finish, or point this command at another --state-dir',
      );
    }
    // Stale: its holder is gone. Remove it and race for it again.
    await unlink(path).catch(() => undefined);
  }
  throw new LockBusyError(`could not take the lock ${path}`, 'another pm command keeps taking it; try again');
}

function makeLock(path: string): StateLock {
  let released: Promise<void> | undefined;
  return {
    release() {
      released ??= unlink(path).catch(() => undefined);
      return released;
    },
  };
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockOwner;
  } catch {
    // Unreadable or half-written by a holder that died mid-write: treat as stale.
    return undefined;
  }
}

async function isAlive(owner: LockOwner): Promise<boolean> {
  const identity = await readProcessIdentity(owner.pid);
  if (!identity || !isLiveState(identity.state)) return false;
  return owner.startTime === null || owner.startTime === identity.startTime;
}
