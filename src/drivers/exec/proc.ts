// Process identity: a PID alone is not enough to know a process is ours, because the kernel
// reuses PIDs. The pair (PID, start time) within one boot (boot id) is unique.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { coalesced } from '../../util/coalesce.js';

/** What pm needs to tell a process apart from a later one that reused its PID. */
export interface ProcessIdentity {
  /** Linux: start time in clock ticks since boot (field 22 of /proc/PID/stat). Elsewhere: `ps -o lstart`. */
  startTime: string;
  /** One-letter state: R, S, D, T, Z (zombie: it has ended), ... */
  state: string;
}

/** The fields of /proc/PID/stat that pm uses. */
export interface ProcStat extends ProcessIdentity {
  pid: number;
  comm: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** The kernel's task flags (field 9): PF_EXITING (0x4) is set once the task has begun to exit. */
  flags: number;
}

const isLinux = process.platform === 'linux';

/**
 * Parses /proc/PID/stat. `comm` (field 2) is the program name in parentheses and may itself hold
 * spaces and parentheses, so the fixed fields are read after the LAST ')'.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // Fields 3.. follow ") ": rest[0] is field 3 (state), so field N is rest[N - 3].
  const rest = text.slice(close + 2).trim().split(' ');
  const field = (n: number): string | undefined => rest[n - 3];
  const state = field(3);
  const startTime = field(22);
  const pid = Number(text.slice(0, open).trim());
  if (state === undefined || startTime === undefined || !/^\d+$/.test(startTime) || !Number.isInteger(pid)) {
    return undefined;
  }
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    ppid: Number(field(4)),
    pgrp: Number(field(5)),
    session: Number(field(6)),
    flags: Number(field(9)),
    startTime,
  };
}

/** The kernel's PF_EXITING task flag: the process is in exit(2) (or a zombie), whatever its state letter says. */
const PF_EXITING = 0x4;

/** Whether the process has ended or is ending: a zombie, or a task whose exit has begun. */
export function isEnding(stat: ProcStat): boolean {
  return !isLiveState(stat.state) || (stat.flags & PF_EXITING) !== 0;
}

/** A PID pm may ask about: a positive integer above 1 (0, -1 and 1 mean "everyone" to kill(2)). */
export function isPlausiblePid(pid: unknown): pid is number {
  return typeof pid === 'number' && Number.isSafeInteger(pid) && pid > 1;
}

/** Reads /proc/PID/stat; undefined when the process does not exist (or /proc is not there). */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  if (!isPlausiblePid(pid)) return undefined;
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    if (isGoneError(err)) return undefined;
    throw err;
  }
}

/**
 * Synchronous read, for the one moment it matters: right after spawn() returns, before the event
 * loop can reap a child that exits at once. Linux only; undefined elsewhere.
 */
export function readProcStatSync(pid: number): ProcStat | undefined {
  if (!isLinux || !isPlausiblePid(pid)) return undefined;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch (err) {
    if (isGoneError(err)) return undefined;
    throw err;
  }
}

/** Start time and state of a process, or undefined when no process has this PID. */
export async function readProcessIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  if (!isPlausiblePid(pid)) return undefined;
  if (isLinux) {
    const stat = await readProcStat(pid);
    return stat && { startTime: stat.startTime, state: stat.state };
  }
  return readIdentityWithPs(pid);
}

/** Non-Linux fallback: `ps -o stat= -o lstart= -p PID` (no shell; C locale so the date is stable). */
async function readIdentityWithPs(pid: number): Promise<ProcessIdentity | undefined> {
  const output = await new Promise<string | undefined>((resolve, reject) => {
    execFile(
      'ps',
      ['-o', 'stat=', '-o', 'lstart=', '-p', String(pid)],
      { env: { ...process.env, LC_ALL: 'C' }, timeout: 5000 },
      (err, stdout) => {
        // ps exits 1 when no process matched.
        if (err && typeof err.code === 'number') resolve(undefined);
        else if (err) reject(err);
        else resolve(stdout);
      },
    );
  });
  const line = output?.trim();
  if (!line) return undefined;
  const match = /^(\S+)\s+(.+)$/.exec(line);
  if (!match?.[1] || !match[2]) return undefined;
  return { state: match[1].charAt(0), startTime: match[2].replace(/\s+/g, ' ') };
}

/** PIDs of the live (not zombie) members of a process group. Linux only; [] elsewhere. */
export async function listGroupMembers(pgid: number): Promise<number[]> {
  if (!isLinux) return [];
  return (await scanProcesses()).filter((s) => s.pgrp === pgid && isLiveState(s.state)).map((s) => s.pid);
}

/** /proc/PID/stat files read at once by one scan: bounds the descriptors a scan holds open. */
const SCAN_CONCURRENCY = 16;

/**
 * Every process's stat, Linux only. Concurrent callers share scans (see coalesced): a daemon
 * stopping 500 processes at once made 500 scans of 1,000 files each, ran out of descriptors
 * (EMFILE), and read every group as empty. A failure other than a process gone fails the scan:
 * an unreadable /proc must never look like a group that has ended.
 */
export const scanProcesses: () => Promise<ProcStat[]> = coalesced(async () => {
  const pids = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  const stats: ProcStat[] = [];
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < pids.length) {
      const stat = await readProcStat(pids[next++] as number);
      if (stat) stats.push(stat);
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCAN_CONCURRENCY, pids.length) }, reader));
  return stats;
});

/** Z (zombie) and X (dead) processes have ended; only their exit status is left to collect. */
export function isLiveState(state: string): boolean {
  return state !== 'Z' && state !== 'X' && state !== 'x';
}

let bootIdPromise: Promise<string> | undefined;

/** The kernel's boot id: after a reboot every stored PID refers to some other process. Cached. */
export function readBootId(): Promise<string> {
  bootIdPromise ??= readBootIdUncached();
  return bootIdPromise;
}

async function readBootIdUncached(): Promise<string> {
  if (isLinux) return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  // BSD and macOS: the boot time stands in for a boot id.
  return new Promise((resolve) => {
    execFile('sysctl', ['-n', 'kern.boottime'], { timeout: 5000 }, (err, stdout) => {
      resolve(err ? '' : stdout.trim());
    });
  });
}

function isGoneError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ESRCH';
}
