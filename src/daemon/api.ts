// What the running daemon offers its HTTP server, its metrics and (through the server) the CLI.
// The server depends on this interface only, never on the supervisor's internals.
import type { ExitStatus } from '../drivers/driver.js';
import type { BreakerPhase } from '../plan/breaker.js';
import type { ActionKind } from '../plan/types.js';

export type ProcessPhase =
  /** Declared, nothing done yet. */
  | 'Pending'
  /** Held back until its dependencies reach their conditions. */
  | 'Waiting'
  /** Spawned; startup / readiness probes or minReadySeconds not passed yet. */
  | 'Starting'
  /** Running; for a service with a readiness probe, currently not ready. */
  | 'Running'
  /** Running and ready (readiness passed and up minReadySeconds). */
  | 'Ready'
  /** A oneshot that exited 0. */
  | 'Completed'
  /** Exited (or failed to start) and the restart policy says leave it. */
  | 'Failed'
  /** Waiting out the restart backoff delay. */
  | 'BackOff'
  /** The circuit breaker is open: no automatic restarts until its cooldown ends. */
  | 'CircuitOpen'
  /** Held stopped by pm pause. */
  | 'Paused'
  /** Being stopped. */
  | 'Stopping';

export interface ProcessStatus {
  name: string;
  phase: ProcessPhase;
  /** One line saying why the phase is what it is (last probe result, exit, what it waits for). */
  detail: string;
  pid?: number;
  /** Running now (an instance exists). */
  up: boolean;
  /** Ready now: readiness passed and up minReadySeconds (services), or completed (oneshots). */
  ready: boolean;
  /** ISO time the current or last instance started. */
  startedAt?: string;
  /** ISO time of the last deliberate restart (request, spec change, cascade; also by restart script). */
  restartedAt?: string;
  /** ISO time the newest restart request was handled (also when its restart script failed). */
  restartHandledAt?: string;
  /** Why the last restart script failed. */
  restartError?: string;
  /** Why the last start failed, while it has not started since. */
  lastError?: string;
  /** ISO time of that failed start. */
  lastErrorAt?: string;
  driver: string;
  /** The command line (argv). */
  command: string[];
  /** Starts after the first one: automatic restarts, requested restarts and spec changes. */
  restarts: number;
  lastExit?: ExitStatus;
  backoff: { failures: number; /** The current delay before the next automatic start, ms. */ delayMs: number; /** ISO time. */ nextStartAt?: string };
  breaker: { phase: BreakerPhase; failures: number; /** ISO time a trial start is allowed (open). */ retryAt?: string };
  paused: boolean;
  labels: Record<string, string>;
  /** The manifest file it was declared in (`-` for stdin). */
  source: string;
}

export type EventType =
  | 'Started'
  | 'StartFailed'
  | 'Ready'
  | 'NotReady'
  | 'Exited'
  | 'Completed'
  | 'Stopped'
  | 'Restarting'
  | 'BackOff'
  | 'StartupFailed'
  | 'LivenessFailed'
  | 'HookFailed'
  | 'ScriptRan'
  | 'ScriptFailed'
  | 'BreakerOpened'
  | 'BreakerHalfOpen'
  | 'BreakerClosed'
  | 'Paused'
  | 'Resumed'
  | 'Updated'
  | 'Deleted'
  | 'ManifestsAccepted'
  | 'ManifestsRejected'
  | 'ConfigReloaded'
  | 'ConfigRejected'
  | 'FlagHandled'
  | 'FlagIgnored'
  | 'HostNameConflict'
  | 'FlagsNotRead'
  | 'DatabaseDown'
  | 'DatabaseUp'
  | 'DriverDegraded'
  | 'DriverRecovered';

export interface DaemonEvent {
  /** ISO time. */
  time: string;
  type: EventType;
  /** Absent for daemon-wide events (manifests, config). */
  process?: string;
  /** Warning events are the ones an operator should look at. */
  severity: 'normal' | 'warning';
  message: string;
}

export interface ReadinessReport {
  /** The last reconcile pass succeeded, the manifests in force are the newest valid set, and the store is writable. */
  ready: boolean;
  /** Why not ready, one line each; empty when ready. */
  reasons: string[];
  /** The last time the manifest directory was read: accepted, or rejected with the first errors. */
  manifests: { source: string; accepted: boolean; at?: string; errors?: string[] };
  /** Reconciles that failed with an error since the last success, by process. */
  failing: { process: string; error: string }[];
  /** When a database is configured: whether it is reachable (down: degraded, supervision goes on from the manifests). */
  database?: { up: boolean; since: string; lastError?: string; display: string };
  /**
   * The back end of every driver in use (exec, docker, systemd): one that cannot be reached (engine
   * down, systemd refusing) degrades only its own processes, which wait and retry with backoff.
   */
  drivers?: { driver: string; up: boolean; since: string; lastError?: string }[];
}

export interface ApplyRequest {
  /** Manifest files' contents, by absolute path (`-` for stdin): the path is the source shown in errors. */
  files: { path: string; text: string }[];
  /** The -f roots, absolute: pruning is scoped to them, as without a daemon. */
  roots: string[];
  /** The client's working directory: relative paths in a manifest read from stdin resolve against it. */
  cwd?: string;
  prune: boolean;
  /** Only with prune: a label selector narrowing what is pruned. */
  pruneSelector?: Record<string, string>;
  dryRun: boolean;
}

export interface PlannedAction {
  kind: ActionKind;
  name: string;
  /** Human readable, as pm diff prints it. */
  reason: string;
}

export type ApplyResponse =
  | { ok: true; actions: PlannedAction[]; unchanged: string[] }
  | { ok: false; errors: string[] };

export type ControlVerb = 'restart' | 'pause' | 'resume' | 'reset';

/** What happened to a control request. */
export interface ControlResult {
  name: string;
  /** False when nothing needed doing (resume of a process that is not paused, reset of a closed breaker). */
  changed: boolean;
  message: string;
}

/** The daemon as the HTTP server sees it. Every method is cheap or bounded; none throws for an unknown name (they return undefined / reject with NotFoundError). */
export interface DaemonApi {
  /** pm version and start time, for /healthz. */
  info(): { version: string; pid: number; startedAt: string };
  list(): ProcessStatus[];
  get(name: string): ProcessStatus | undefined;
  /** Newest last, at most `limit` (default 100). */
  events(process?: string, limit?: number): DaemonEvent[];
  readiness(): ReadinessReport;
  apply(request: ApplyRequest, actor: string): Promise<ApplyResponse>;
  /** Rejects with NotFoundError for a name no manifest declares. */
  control(verb: ControlVerb, name: string, actor: string): Promise<ControlResult>;
  /** Stops and forgets managed processes (pm delete). */
  delete(names: string[], actor: string): Promise<ControlResult[]>;
  /** Work queue depth now (keys waiting, not counting delayed ones). */
  queueDepth(): number;
}
