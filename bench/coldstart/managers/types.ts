// What bench/coldstart.ts asks of every manager: turn the one scenario into its own configuration,
// then, run after run, start the whole set cold and tear it down again.
import type { Scenario } from '../scenario.js';

export const MANAGER_KEYS = ['pm', 'pm-warm', 'pm-baseline', 'pm-apply', 'supervisord', 'pm2', 'pm2-order', 'systemd', 'systemd-reload', 'compose'] as const;
export type ManagerKey = (typeof MANAGER_KEYS)[number];

/** Everything a manager needs to configure the children (the same program for all). */
export interface Setup {
  scenario: Scenario;
  /** The compiled bench/coldstart/child.c. */
  child: string;
  /** The bench's unix socket, which every child reports to. */
  socket: string;
  log: (line: string) => void;
}

/** The argv of one child: CHILD SOCKET NAME READY_MS, then how it announces readiness to the manager. */
export function childArgv(setup: Setup, name: string, readiness: readonly string[]): string[] {
  return [setup.child, setup.socket, name, String(setup.scenario.readyMs), ...readiness];
}

export interface ColdManager {
  readonly key: ManagerKey;
  /** As shown in the tables. */
  readonly name: string;
  readonly version: string;
  /** Its ordering/readiness mechanism, in its own terms. */
  readonly settings: string;
  /** What t0 is: the manager started with the set, or a running manager given the set. */
  readonly timed: string;
  /** The commands, with placeholders. */
  readonly command: string;
  /** What it is given for one process (abbreviated), for the report. */
  readonly sample: { language: 'yaml' | 'ini' | 'json'; text: string };
  /** Untimed: this run's files in `dir` (a fresh folder), and a manager that is to be running already. */
  prepare(dir: string): Promise<void>;
  /** Timed from just before this call: asks for the cold start. Resolves once the manager has taken the request (its command returned). */
  start(): Promise<void>;
  /** Stops the manager if the run started it, and every child it started; safe to call twice. */
  teardown(): Promise<void>;
  /** The end of the manager's log, for a failure message. */
  diagnostics(): Promise<string>;
  /** The manager's own process, whose CPU time from t0 to t1 is reported; undefined where not measured (or not running yet). */
  cpuPid?(): number | undefined;
  /** Once, at the very end (units removed). */
  close?(): Promise<void>;
}

/** A manager that cannot run here, and why (shown in the report). */
export interface Skipped {
  key: ManagerKey;
  name: string;
  skipped: string;
}
