// The driver contract: how a process runs. The planner never knows which driver it talks to.
// Shaped after Nomad's driver plugin: a small core (start, inspect, stop) plus an opaque handle
// that is stored so a process can be found again by a later pm command.
import type { HealthStatus } from '../probes/runners.js';
import type { ProcessManifest } from '../manifest/types.js';

/** Enough to find a process again, and to be sure it is still ours. Stored as JSON. */
export interface ExecHandle {
  driver: 'exec';
  pid: number;
  /** Process group id (the process leads its own group and session). */
  pgid: number;
  /**
   * The kernel's start time of the process (clock ticks since boot, from /proc/PID/stat), as a
   * string. A PID whose start time differs is another program that reused the number.
   */
  startTime: string;
  /** /proc/sys/kernel/random/boot_id at start: after a reboot no old PID is ours. */
  bootId: string;
  /**
   * The instance marker: 128 random bits in hex, given to the process (and inherited by all it
   * forks) as PM_INSTANCE in its environment. Once the leader is gone, only group members whose
   * /proc/PID/environ holds this exact marker are signalled. Absent in handles recorded before
   * markers existed: for those nothing is signalled once the leader is gone.
   */
  instance?: string;
}
/**
 * A container pm created (src/drivers/docker). Found again by its id; provably pm's by the labels
 * the engine keeps (pm.owner, pm.process, pm.spec, pm.instance).
 */
export interface DockerHandle {
  driver: 'docker';
  /** Full container id. */
  id: string;
  /** Container name (pm-<process>). */
  name: string;
  /** The instance marker, also the container's pm.instance label. */
  instance: string;
  /** State.StartedAt of the run this handle describes (ISO): a restart by someone else is another run. */
  startedAt: string;
  /** The container's main process on the host when it was started (State.Pid). */
  pid: number;
}

/** A systemd unit pm starts and observes (src/drivers/systemd). */
export interface SystemdHandle {
  driver: 'systemd';
  /** Full unit name, e.g. pm-api.service. */
  unit: string;
  /** True for a unit pm wrote (pm-<name>.service, removed with the process); false for an existing unit pm only manages. */
  owned: boolean;
  /** InvocationID of the run this handle describes: each start of a unit gets a new one. */
  invocationId?: string;
  /** MainPID when it was started, as systemd sees it (in systemd's PID namespace); absent when none ran yet. */
  pid?: number;
}

export type ProcessHandle = ExecHandle | DockerHandle | SystemdHandle;

/** How messages name a process's run: `pid 123`, or the unit for systemd (`pm-api.service, pid 123`). */
export function describeHandle(handle: ProcessHandle): string {
  if (handle.driver !== 'systemd') return `pid ${handle.pid}`;
  return handle.pid === undefined ? handle.unit : `${handle.unit}, pid ${handle.pid}`;
}

export interface ExitStatus {
  /** Exit code, or null when killed by a signal or when pm was not there to learn it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Epoch ms; when pm was not the parent, the moment pm noticed. */
  at: number;
  /** False when the process ended while no pm process was its parent: code and signal are unknown. */
  known: boolean;
}

export type Observation =
  | { state: 'running'; pid: number }
  | { state: 'exited'; exit: ExitStatus }
  /** Nothing to look at: pm holds no handle (the process was never started). */
  | { state: 'missing' }
  /** Its driver could not be asked (the Docker Engine unreachable): neither running nor gone as far as pm knows. */
  | { state: 'unknown'; reason: string };

export interface StartRequest {
  name: string;
  manifest: ProcessManifest;
  /** The complete environment for the child, already resolved (secrets included). */
  env: Record<string, string>;
  /** Only what the manifest declares (env files, env), resolved: a container's environment. */
  declaredEnv?: Record<string, string>;
  /** Absolute paths; equal when stdout and stderr share one file. */
  logs: { stdout: string; stderr: string };
  uid?: number;
  gid?: number;
  /**
   * The instance marker to give it, chosen (and recorded) by the caller before the start, so a
   * caller killed between the spawn and its record can still find the process (ExecDriver.recover).
   */
  instance?: string;
  /**
   * For a notify startup probe: the file to hand the process as descriptor
   * spec.probes.startup.notify.fd, emptied first (exec driver only).
   */
  readyFile?: string;
}

export interface StopOptions {
  signal: NodeJS.Signals;
  gracePeriodMs: number;
}

export interface StopResult {
  /** True when the grace period ran out and the group was sent SIGKILL. */
  forced: boolean;
  /** False when the process was already gone. */
  wasRunning: boolean;
  exit?: ExitStatus;
}

export interface Driver {
  /**
   * Rejects with StartError when `request` cannot start (missing program or folder). Called before
   * apply changes anything, so a bad command never costs the version that is running.
   */
  check(request: StartRequest): Promise<void>;
  /** Spawns the process; resolves once it is running (the spawn succeeded), rejects with StartError otherwise. */
  start(request: StartRequest): Promise<ProcessHandle>;
  /** What the process is doing now. A process that is gone is `exited` (with `known: false` when this pm did not see it end); never throws for it. */
  inspect(handle: ProcessHandle): Promise<Observation>;
  /**
   * Signals the whole group while its leader lives (once the leader is gone, only members that carry
   * the instance marker), then SIGKILL after the grace period. Safe to call on a process that is gone.
   */
  stop(handle: ProcessHandle, options: StopOptions): Promise<StopResult>;
  /**
   * Resolves when the process exits. Exit code and signal are known when this pm process started
   * it; otherwise the driver polls and reports `known: false`. `signal` stops the wait.
   */
  waitExit(handle: ProcessHandle, signal?: AbortSignal): Promise<ExitStatus>;
  /**
   * Calls `exited` once when the process exits, for a process this pm spawned (its parent hears of
   * the exit as an event), and returns the function that stops listening; undefined when the driver
   * cannot (then waitExit). A listener costs a field where a pending waitExit holds a chain of
   * promises, per process, for as long as it runs.
   */
  onExit?(handle: ProcessHandle, exited: (exit: ExitStatus) => void): (() => void) | undefined;
  /** Runs a command inside the process's container (exec probes); its exit code. Drivers without containers: absent. */
  execIn?(handle: ProcessHandle, command: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<number>;
  /** Output kept by the process's engine (a container's log driver), to `out`; drivers that write log files themselves: absent. */
  logs?(handle: ProcessHandle, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void>;
  /** A container's HEALTHCHECK status (drivers without one: absent). */
  health?(handle: ProcessHandle): Promise<HealthStatus>;
  /** After a stop, for good (pm delete, a manifest removed): what the process leaves on its engine (a container). Safe when it is gone. */
  remove?(handle: ProcessHandle): Promise<void>;
}

/** PM_PID for hooks and scripts: the run's main process, when it has one. */
export function pidEnv(handle: ProcessHandle): Record<string, string> {
  return handle.pid === undefined ? {} : { PM_PID: String(handle.pid) };
}

/** True when the run's output is kept by its engine (a container's log, an existing unit's journal), not in pm's log files. */
export function engineKeepsLogs(handle: ProcessHandle | undefined): boolean {
  return handle?.driver === 'docker' || (handle?.driver === 'systemd' && !handle.owned);
}

export function isExecHandle(handle: ProcessHandle): handle is ExecHandle {
  return handle.driver === 'exec';
}
