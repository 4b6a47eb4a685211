// Looking at and cleaning up real processes started by tests.
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';

/** True while the PID exists and is not a zombie (Linux /proc; elsewhere signal 0). */
export function isAlive(pid: number): boolean {
  if (process.platform === 'linux') {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      return state !== 'Z' && state !== 'X';
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs a process group, ignoring "already gone". */
export function killGroup(pgid: number): void {
  if (!Number.isInteger(pgid) || pgid <= 1) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/** SIGKILLs the group when the test ends, whatever its outcome. Pass a getter for PIDs learned later. */
export function killGroupAfter(t: TestContext, pgid: number | (() => number | undefined)): void {
  t.after(() => {
    const id = typeof pgid === 'function' ? pgid() : pgid;
    if (id !== undefined) killGroup(id);
  });
}
