// Signalling and watching a whole process group: a process started by pm leads its own group,
// and stopping it must reach everything it forked as well.
import { isLiveState, isPlausiblePid, listGroupMembers, readProcStat } from './proc.js';

export type SignalOutcome = 'sent' | 'gone' | 'denied';

/** kill(-pgid, signal), with the two races (group gone: ESRCH; not ours to signal: EPERM) as values. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): SignalOutcome {
  // Guard: kill(-0) and kill(-1) would signal pm's own group or every process it may signal.
  if (!isPlausiblePid(pgid)) return 'gone';
  return sendSignal(-pgid, signal);
}

/** process.kill with its two expected failures as outcomes: no such target, or not permitted. */
export function sendSignal(target: number, signal: NodeJS.Signals | 0): SignalOutcome {
  try {
    process.kill(target, signal);
    return 'sent';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'gone';
    if (code === 'EPERM') return 'denied';
    throw err;
  }
}

/**
 * Answers "does the group still have a live member?". kill(-pgid, 0) alone is not enough: it
 * succeeds while members are zombies nobody has reaped yet (common in containers whose PID 1 does
 * not reap), so on Linux the members are confirmed through /proc. The member list is cached and
 * re-scanned only when every cached member is gone, to keep polling cheap.
 */
export class GroupWatch {
  readonly pgid: number;
  #members: number[] = [];

  constructor(pgid: number) {
    this.pgid = pgid;
  }

  async alive(): Promise<boolean> {
    if (signalGroup(this.pgid, 0) === 'gone') return false;
    if (process.platform !== 'linux') return true;
    for (const pid of this.#members) {
      const stat = await readProcStat(pid);
      if (stat && stat.pgrp === this.pgid && isLiveState(stat.state)) return true;
    }
    this.#members = await listGroupMembers(this.pgid);
    return this.#members.length > 0;
  }
}
