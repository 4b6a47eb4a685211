// Instance markers. Every process the exec driver starts gets PM_INSTANCE=<128 random bits> in its
// environment, and what it forks inherits it. While a group's leader lives, the group id is surely
// its group; once the leader is gone the number may have been taken by another program's group (a
// double-forking daemon leaves such leaderless groups), and the marker is how pm tells its own
// leftovers from strangers.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { sendSignal, type SignalOutcome } from './group.js';
import { isLiveState, isPlausiblePid, listGroupMembers, readProcStat, readProcStatSync, scanProcesses } from './proc.js';

export const INSTANCE_ENV = 'PM_INSTANCE';

export function newInstanceMarker(): string {
  return randomBytes(16).toString('hex');
}

/** A process identified beyond its PID: the same PID with another start time is another process. */
export interface Member {
  pid: number;
  startTime: string;
}

/**
 * True when the process's initial environment (/proc/PID/environ) holds exactly
 * PM_INSTANCE=<instance>. False when it does not, or cannot be read (gone, not permitted, not Linux).
 */
export async function carriesMarker(pid: number, instance: string): Promise<boolean> {
  let environ: Buffer;
  try {
    environ = await readFile(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  return environHas(environ, `${INSTANCE_ENV}=${instance}`);
}

/** Whether the NUL-separated environment block holds `entry` as one whole entry. */
export function environHas(environ: Buffer, entry: string): boolean {
  const wanted = Buffer.from(entry);
  let start = 0;
  while (start < environ.length) {
    const nul = environ.indexOf(0, start);
    const end = nul < 0 ? environ.length : nul;
    if (end - start === wanted.length && environ.subarray(start, end).equals(wanted)) return true;
    start = end + 1;
  }
  return false;
}

/** Live members of group `pgid` that carry the instance marker. Linux only; [] elsewhere. */
export async function listMarkedMembers(pgid: number, instance: string): Promise<Member[]> {
  const pids = await listGroupMembers(pgid);
  const members = await Promise.all(
    pids.map(async (pid): Promise<Member | undefined> => {
      const stat = await readProcStat(pid);
      if (!stat || stat.pgrp !== pgid || !isLiveState(stat.state)) return undefined;
      return (await carriesMarker(pid, instance)) ? { pid, startTime: stat.startTime } : undefined;
    }),
  );
  return members.filter((m) => m !== undefined);
}

/** The live process that leads its own group and carries the instance marker, if any. Linux only. */
export async function findMarkedLeader(instance: string): Promise<Member | undefined> {
  if (process.platform !== 'linux') return undefined;
  for (const stat of await scanProcesses()) {
    if (stat.pgrp !== stat.pid || !isLiveState(stat.state)) continue;
    if (await carriesMarker(stat.pid, instance)) return { pid: stat.pid, startTime: stat.startTime };
  }
  return undefined;
}

/** True while `member` is still that same process, alive, in group `pgid`. */
export function isStillMember(member: Member, pgid: number): boolean {
  const stat = readProcStatSync(member.pid);
  return stat !== undefined && stat.startTime === member.startTime && stat.pgrp === pgid && isLiveState(stat.state);
}

/** Signals one member, after checking (synchronously, just before) that its PID still names it. */
export function signalMember(member: Member, pgid: number, signal: NodeJS.Signals): SignalOutcome {
  if (!isPlausiblePid(member.pid) || !isStillMember(member, pgid)) return 'gone';
  return sendSignal(member.pid, signal);
}
