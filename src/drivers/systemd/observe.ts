// From a unit's state (systemctl show) to the driver contract's Observation and ExitStatus. Pure:
// the daemon can map one observeMany() answer for all its units without another call.
import { signalName } from '../../util/signals.js';
import type { ExitStatus, Observation, SystemdHandle } from '../driver.js';
import { ExecMainCode, type ShownUnit, type UnitState } from './show.js';

/** States in which the unit's processes may still run. */
const LIVE_STATES = new Set(['active', 'reloading', 'activating', 'deactivating', 'refreshing']);

/**
 * True once the run is over: the unit is inactive or failed (Restart=no leaves it there) and no job
 * is queued for it. A `systemctl restart` by hand passes through inactive with its start job
 * queued: that unit is still running as far as pm is concerned (see systemd-process.ts).
 */
export function isStopped(state: ShownUnit): boolean {
  return !state.found || (!LIVE_STATES.has(state.activeState) && !state.jobQueued);
}

/**
 * What the handle's run is doing now. A unit systemd does not know is `missing`. A unit started
 * again since the handle was taken (another InvocationID) is that run's `exited`, unknown: its
 * end was not seen. `now` is when pm looked (for exits systemd has no timestamp for).
 */
export function observationOf(state: ShownUnit, handle: Pick<SystemdHandle, 'invocationId'>, now: number): Observation {
  if (!state.found) return { state: 'missing' };
  if (handle.invocationId !== undefined && state.invocationId !== undefined && state.invocationId !== handle.invocationId) {
    return { state: 'exited', exit: unknownExit(now) };
  }
  if (!isStopped(state)) {
    // activating with no main process yet (an ExecStartPre running): running, PID 0 = none yet.
    return { state: 'running', pid: state.mainPid ?? 0 };
  }
  return { state: 'exited', exit: exitStatusOf(state, now) };
}

/**
 * The last main process's end: ExecMainCode 1 (CLD_EXITED) → ExecMainStatus is the exit code;
 * 2 (CLD_KILLED) or 3 (CLD_DUMPED) → it is the signal number. 0: no main process has ended (or
 * the unit never started), so nothing is known.
 */
export function exitStatusOf(state: UnitState, now: number): ExitStatus {
  const at = state.execMain.exitAt ?? state.inactiveEnterAt ?? now;
  const { code, status } = state.execMain;
  if (code === ExecMainCode.exited) return { code: status, signal: null, at, known: true };
  if (code === ExecMainCode.killed || code === ExecMainCode.dumped) {
    const signal = signalName(status);
    return signal ? { code: null, signal, at, known: true } : { code: null, signal: null, at, known: false };
  }
  return unknownExit(at);
}

export function unknownExit(at: number): ExitStatus {
  return { code: null, signal: null, at, known: false };
}
