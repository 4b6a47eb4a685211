// One pm command acts on a state directory at a time. The lock is a file that names its holder by
// PID and kernel start time, so a lock left by a crashed pm is recognised as stale (its holder is
// gone, or its PID now belongs to another program) and taken over.
//
// Files, for a lock at `lock`:
//   lock.<token>     each contender's owner record, written and fsynced before anything else
//   lock             a hard link to the holder's record: link(2) creates it atomically and only if
//                    it does not exist, so the lock is never seen empty or half-written
//   lock.takeover    a hard link to the record of the one contender removing a stale lock
//   lock.stale.*     a dead takeover's record, claimed (renamed) by whoever clears it
//
// Removing a stale lock is the delicate part: two contenders that both read the same stale lock
// must not both remove "the lock", since by the time the second acts, the first may have taken a
// new one. So a stale lock is removed only by the holder of lock.takeover, and only if it is still
// the very file (inode) that was read as stale; its holder is dead, so it cannot change meanwhile.
// A takeover whose pm died is cleared by renaming that pm's own record, a name nobody recreates,
// so exactly one contender wins the right to remove it.
import { randomBytes } from 'node:crypto';
import { link, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { LockBusyError } from '../errors.js';
import { readProcessIdentity, isLiveState } from '../drivers/exec/proc.js';

interface LockOwner {
  pid: number;
  startTime: string | null;
  command: string;
  since: string;
  /** Names the owner's record `lock.<token>`. Absent in locks written by older versions of pm. */
  token?: string;
}

export interface StateLock {
  release(): Promise<void>;
}

/** Each round takes the lock, finds it held, or removes one stale file; a few rounds always do. */
const MAX_ROUNDS = 10;

export async function acquireLock(path: string, command: string): Promise<StateLock> {
  const token = randomBytes(16).toString('hex');
  const owner: LockOwner = {
    pid: process.pid,
    startTime: (await readProcessIdentity(process.pid))?.startTime ?? null,
    command,
    since: new Date().toISOString(),
    token,
  };
  const mine = recordPath(path, token);
  await writeRecord(mine, JSON.stringify(owner));
  try {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      if (await linkIfAbsent(mine, path)) return makeLock(path);
      const current = await readLockFile(path);
      if (!current) continue;
      try {
        if (current.owner && (await isAlive(current.owner))) throw busy(current.owner, 'is acting on this state directory');
        await removeStale(path, token, current);
      } finally {
        await current.file.close();
      }
    }
  } finally {
    // Once linked, the lock has its own name; the record's is no longer needed either way.
    await unlink(mine).catch(() => undefined);
  }
  throw new LockBusyError(`could not take the lock ${path}`, `other pm commands keep taking it; try again. If no pm command is running, remove ${path} and ${takeoverPath(path)}`);
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

/** A lock file as read: its owner (undefined when unreadable: written by an older pm that died mid-write) and its inode, kept open so the inode number cannot be reused. */
interface ReadLock {
  file: FileHandle;
  ino: number;
  dev: number;
  owner: LockOwner | undefined;
}

/** Removes the stale lock `stale` through lock.takeover; returns for the caller to race for the lock again. */
async function removeStale(path: string, token: string, stale: ReadLock): Promise<void> {
  const takeover = takeoverPath(path);
  if (!(await linkIfAbsent(recordPath(path, token), takeover))) {
    await clearTakeover(path, takeover, token);
    return;
  }
  try {
    // Only the takeover holder removes a lock that is not its own, and this one's holder is dead:
    // if `path` is still the file read as stale, it stays so until it is unlinked here.
    const now = await stat(path).catch(ignoreMissing);
    if (now && now.ino === stale.ino && now.dev === stale.dev) await unlink(path);
    // A holder that died between taking the lock and tidying up left its record too.
    if (stale.owner?.token) await unlink(recordPath(path, stale.owner.token)).catch(() => undefined);
  } finally {
    await unlink(takeover).catch(() => undefined);
  }
}

/** lock.takeover is held: wait for a live holder (that is, give up: it will take the lock), or clear a dead one's. */
async function clearTakeover(path: string, takeover: string, token: string): Promise<void> {
  const current = await readLockFile(takeover);
  if (!current) return;
  try {
    const holder = current.owner;
    if (holder && (await isAlive(holder))) throw busy(holder, 'is taking over a stale lock on this state directory');
    if (!holder?.token) {
      throw new LockBusyError(`the takeover file ${takeover} cannot be read`, `if no pm command is running, remove ${takeover}`);
    }
    // Its pm died while taking over. Renaming the dead pm's record is the claim: the name is unique
    // and nobody recreates it, so one contender wins.
    const claimed = `${path}.stale.${holder.token}.${token}`;
    try {
      await rename(recordPath(path, holder.token), claimed);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    try {
      const [now, record] = await Promise.all([stat(takeover).catch(ignoreMissing), stat(claimed)]);
      if (now && now.ino === record.ino && now.dev === record.dev) await unlink(takeover);
    } finally {
      await unlink(claimed).catch(() => undefined);
    }
  } finally {
    await current.file.close();
  }
}

async function readLockFile(path: string): Promise<ReadLock | undefined> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  try {
    const { ino, dev } = await file.stat();
    return { file, ino, dev, owner: parseOwner(await file.readFile('utf8')) };
  } catch (error) {
    await file.close();
    throw error;
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockOwner> | null;
    if (typeof value?.pid !== 'number' || typeof value.command !== 'string') return undefined;
    return {
      pid: value.pid,
      startTime: typeof value.startTime === 'string' ? value.startTime : null,
      command: value.command,
      since: String(value.since),
      ...(typeof value.token === 'string' && /^[0-9a-f]{32}$/.test(value.token) && { token: value.token }),
    };
  } catch {
    return undefined;
  }
}

async function isAlive(owner: LockOwner): Promise<boolean> {
  const identity = await readProcessIdentity(owner.pid);
  if (!identity || !isLiveState(identity.state)) return false;
  return owner.startTime === null || owner.startTime === identity.startTime;
}

function busy(holder: LockOwner, doing: string): LockBusyError {
  return new LockBusyError(
    `another pm command (pid ${holder.pid}, "pm ${holder.command}", since ${holder.since}) ${doing}`,
    'wait for it to finish, or point this command at another --state-dir',
  );
}

/** link(2): creates `to` as another name of `from`, atomically, only if `to` does not exist. */
async function linkIfAbsent(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

async function writeRecord(path: string, text: string): Promise<void> {
  const file = await open(path, 'wx', 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } catch (error) {
    await file.close();
    await unlink(path).catch(() => undefined);
    throw error;
  }
  await file.close();
}

function recordPath(path: string, token: string): string {
  return `${path}.${token}`;
}

function takeoverPath(path: string): string {
  return `${path}.takeover`;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

function ignoreMissing(error: unknown): undefined {
  if (isMissing(error)) return undefined;
  throw error;
}
