// What the benchmark asks of every process manager. A scenario describes its processes once
// (ProcessSpec); each manager turns that into its own configuration, so all do the same work.

/** One supervised process: the same program for every manager, restarted at once whenever it exits. */
export interface ProcessSpec {
  /** A short name, valid for every manager ([a-z][a-z0-9-]*). */
  name: string;
  /** Absolute program path and its arguments. */
  argv: string[];
}

export interface Manager {
  /** As shown in the tables. */
  readonly name: string;
  readonly version: string;
  /** How it is configured for the scenarios, in its own terms (shown in the report). */
  readonly settings: string;
  /** A reference implementation (not a peer): shown, never the "best peer". */
  readonly reference?: boolean;
  /** Starts the manager supervising `processes`; resolves once it has accepted them (they may not run yet). */
  start(processes: ProcessSpec[]): Promise<void>;
  /** The manager's long-lived process, whose memory is reported; undefined before start. */
  daemonPid(): number | undefined;
  /** The end of the manager's own log, for a failure message. */
  diagnostics(): Promise<string>;
  /** Stops the manager and everything it supervises, and waits for them to be gone. Idempotent. */
  shutdown(): Promise<void>;
}

/** A manager that takes a new process from a file dropped into a folder it watches (pm daemon -f DIR). */
export interface WatchedDirectory {
  /** Declares the process by saving a file as editors do (a dot-named temp file, then a rename). */
  declare(process: ProcessSpec): Promise<void>;
  /** Removes the file that declared it. */
  undeclare(name: string): Promise<void>;
}

export function watchesDirectory(manager: Manager): manager is Manager & WatchedDirectory {
  return 'declare' in manager && 'undeclare' in manager;
}

/** A peer that could not be set up here, and why (shown in the output). */
export interface Skipped {
  name: string;
  skipped: string;
}

/** Where a manager keeps its files during one run: a folder of its own in the run's temp folder. */
export interface ManagerContext {
  dir: string;
  log: (line: string) => void;
}
