// Reading the engine's State into the driver contract's ExitStatus and Observation.
//
// Exit signal: the engine reports only ExitCode, which is 128+n when the main process was killed by
// signal n (the shell's convention). So an ExitCode from 129 to 128+31 naming a known signal is read
// as "killed by that signal" (code null, signal set), as the exec driver reports a death by signal;
// anything else is an exit code. The cost: a program that itself calls exit(137) reads as SIGKILL.
// An OOM kill (State.OOMKilled) is SIGKILL whatever the code says.
import { signalName } from '../../util/signals.js';
import type Docker from 'dockerode';
import type { DockerHandle, ExitStatus, Observation } from '../driver.js';

/** The engine's zero time, for a container that never started or never finished. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

type State = Docker.ContainerInspectInfo['State'];

/** ExitStatus from an exit code the engine witnessed, 128+n read as signal n (see above). */
export function exitFromCode(code: number, at: number, oomKilled = false): ExitStatus {
  if (oomKilled) return { code: null, signal: 'SIGKILL', at, known: true };
  // Standard signals only (1–31): a larger code is the program's own.
  const signal = code > 128 && code - 128 <= 31 ? signalName(code - 128) : undefined;
  return signal ? { code: null, signal, at, known: true } : { code, signal: null, at, known: true };
}

/** An end nobody witnessed: the container is gone, never ran, or ran again since. */
export function unknownExit(at: number): ExitStatus {
  return { code: null, signal: null, at, known: false };
}

/** Epoch ms of an engine timestamp, or undefined for the zero time / garbage. */
export function engineTime(value: string | undefined): number | undefined {
  if (value === undefined || value === '' || value.startsWith('0001-')) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

/** True while the main process exists (paused counts: it holds its memory and its name). */
export function isRunningState(state: State): boolean {
  return state.Running || state.Restarting || state.Paused;
}

/**
 * What the handle's run is doing. `now` is used only when the engine gives no time of its own.
 * - running, same StartedAt: running with the host pid;
 * - not running, same StartedAt: exited with the engine's code (known);
 * - StartedAt differs (someone restarted it) or the container never started: exited, unknown —
 *   the handle's run is over and the engine no longer knows how it ended.
 */
export function observe(handle: DockerHandle, state: State, now: number): Observation {
  if (state.StartedAt !== handle.startedAt || state.StartedAt === ZERO_TIME) {
    return { state: 'exited', exit: unknownExit(engineTime(state.StartedAt) ?? now) };
  }
  if (isRunningState(state)) return state.Pid > 0 ? { state: 'running', pid: state.Pid } : { state: 'exited', exit: unknownExit(now) };
  return { state: 'exited', exit: exitOf(state, now) };
}

/** The exit of a stopped container's last run. */
export function exitOf(state: State, now: number): ExitStatus {
  if (engineTime(state.StartedAt) === undefined) return unknownExit(now);
  return exitFromCode(state.ExitCode, engineTime(state.FinishedAt) ?? now, state.OOMKilled);
}

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy' | 'none';

/** The HEALTHCHECK status; 'none' when the image defines none (or it is disabled). */
export function healthOf(state: State): HealthStatus {
  const status = state.Health?.Status;
  return status === 'starting' || status === 'healthy' || status === 'unhealthy' ? status : 'none';
}
