// What the planner decides. The action says what to do; the reason explains it and never drives
// it (Terraform's Action / ActionReason split).
import type { ExitStatus } from '../drivers/driver.js';
import type { FieldChange } from './diff.js';

export type ActionKind =
  /** Run a process that is not running. */
  | 'start'
  /** Stop the running instance, then start it again. */
  | 'restart'
  /** Record a changed manifest whose changes need no restart (labels, probes, policies). */
  | 'update'
  /** Stop the process and forget it. */
  | 'delete';

export type Reason =
  | { code: 'NotStarted'; lastError?: string }
  | { code: 'Exited'; exit: ExitStatus; policy: 'always' | 'on-failure' }
  | { code: 'SpecChanged' }
  | { code: 'RestartRequested'; requestedAt: string }
  | { code: 'DependencyRestarted'; dependency: string }
  | { code: 'CompletionUnknown'; dependent: string }
  | { code: 'ConfigChanged' }
  | { code: 'Pruned'; source: string }
  | { code: 'DeleteRequested' };

export interface Action {
  kind: ActionKind;
  name: string;
  reason: Reason;
  /** Every field that differs from the last-applied manifest (also for restarts caused otherwise). */
  changes: FieldChange[];
  /** Position in the stop phase (restart, delete): dependents stop before their dependencies. */
  stopWave?: number;
  /** Position in the start phase (start, restart): dependencies start before their dependents. */
  startWave?: number;
}

export interface Plan {
  /** Sorted by name. */
  actions: Action[];
  /** Names in each stop wave, in order. */
  stopWaves: string[][];
  /** Names in each start wave, in order. */
  startWaves: string[][];
  /** Declared processes that need nothing. */
  unchanged: string[];
  /** Processes pm manages that no manifest in scope declares, left alone (no --prune, or out of scope). */
  orphans: { name: string; source: string; whyKept: 'no-prune' | 'out-of-scope' | 'selector' }[];
}
