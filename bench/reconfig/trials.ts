// The timed trials of bench/reconfig.ts. A trial changes one process's CONFIG through its
// manager's configuration path and times t0 (just before the config file is written) → the first
// child of that process that runs with the new value has connected to its socket (t1, the bench's
// process.hrtime.bigint()). Every process has a socket of its own, so the bench sees every start
// and every death of every process: the other processes' children must be the same before and
// after each trial, and between one trial of a manager and its next.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Arrival, ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import { withDiagnostics } from '../daemon/scenarios.js';
import { configOf, type ReconfigKey, type ReconfigManager } from './manager.js';

/** One process of one manager and the socket its children report to. */
export interface Slot {
  name: string;
  reports: ReportSocket;
}

export interface Subject {
  manager: ReconfigManager;
  slots: Slot[];
}

/** Per process: how many children have reported so far, and the one running now. */
type Snapshot = Map<string, { count: number; pid: number }>;

export interface Trial {
  manager: ReconfigKey;
  index: number;
  warmup: boolean;
  process: string;
  value: string;
  oldPid: number;
  newPid: number;
  t0: bigint;
  /** The first child running with the new value has connected. */
  t1: bigint;
  /** The manager's command returned (pm: the rename is done). */
  commandDone: bigint;
  /** The old child's connection closed: it is gone. */
  oldGone: bigint;
  /** Children of the changed process that started after t0 but with another value, before the right one. */
  staleStarts: number;
  /** Starts of the changed process after the right one, until the check after the pause. */
  extraStarts: number;
  /** Other processes whose child changed during the trial (t0 until after the pause). */
  othersDuring: string[];
  /** Other processes whose child changed between this manager's previous trial and this one. */
  othersBetween: string[];
  /** Every process's running child before and after (pids as the children reported them). */
  before: Record<string, number>;
  after: Record<string, number>;
}

export interface TrialOptions {
  trials: number;
  warmup: number;
  /** The pause after a trial is drawn from [settleMs, 2 × settleMs]. */
  settleMs: number;
  timeoutMs: number;
  cleanup: Cleanup;
  progress: (line: string) => void;
}

export const msBetween = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/**
 * Waits until every process has one child running with `value` (the first reports of a manager
 * may run another: PM2's are restarted once to take CONFIG in).
 */
export async function awaitConfigured({ manager, slots }: Subject, value: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const slot of slots) await withDiagnostics(manager, firstWithConfig(manager, slot, value, 0, deadline));
  await withDiagnostics(manager, steady(slots, deadline));
}

/**
 * Every subject in turn, trial by trial (the first one rotating), so that load from elsewhere
 * falls on all alike. Trial i changes process i mod N of every manager to CONFIG=v<i+1>.
 */
export async function alternate(subjects: Subject[], options: TrialOptions, record: (trial: Trial) => void): Promise<void> {
  const lastSeen = new Map<ReconfigManager, Snapshot>();
  const total = options.warmup + options.trials;
  for (let i = 0; i < total; i++) {
    const order = [...subjects.slice(i % subjects.length), ...subjects.slice(0, i % subjects.length)];
    for (const subject of order) {
      if (options.cleanup.started) throw new Error('interrupted');
      const { trial, after } = await withDiagnostics(subject.manager, reconfigureOne(subject, i, lastSeen.get(subject.manager), options));
      lastSeen.set(subject.manager, after);
      record({ ...trial, warmup: i < options.warmup });
    }
    if ((i + 1) % 20 === 0 || i + 1 === total) options.progress(`config changed → running: ${i + 1}/${total} trials per manager`);
  }
}

async function reconfigureOne(subject: Subject, index: number, previous: Snapshot | undefined, options: TrialOptions): Promise<{ trial: Trial; after: Snapshot }> {
  const { manager, slots } = subject;
  const deadline = Date.now() + options.timeoutMs;
  const target = slots[index % slots.length] as Slot;
  const value = `v${index + 1}`;
  const before = await steady(slots, deadline);
  const old = before.get(target.name) as { count: number; pid: number };
  const t0 = process.hrtime.bigint();
  const [commandDone, found] = await Promise.all([
    manager.reconfigure(target.name, value).then(() => process.hrtime.bigint()),
    firstWithConfig(manager, target, value, old.count, deadline),
  ]);
  const oldGone = await target.reports.gone(old.pid, Math.max(1, deadline - Date.now()), `${manager.name}: the old child of ${target.name} (pid ${old.pid}) to be gone`);
  await sleep(options.settleMs * (1 + Math.random()));
  const after = await steady(slots, Date.now() + options.timeoutMs);
  const others = (from: Snapshot): string[] => changedProcesses(from, after).filter((name) => name !== target.name);
  const trial: Trial = {
    manager: manager.key,
    index,
    warmup: false,
    process: target.name,
    value,
    oldPid: old.pid,
    newPid: found.arrival.pid,
    t0,
    t1: found.arrival.at,
    commandDone,
    oldGone,
    staleStarts: found.stale,
    extraStarts: (after.get(target.name)?.count ?? 0) - old.count - found.stale - 1,
    othersDuring: others(before),
    othersBetween: previous ? changedProcesses(previous, before) : [],
    before: pidsOf(before),
    after: pidsOf(after),
  };
  return { trial, after };
}

/** The first report from arrival number `from` on whose child runs with CONFIG=value; how many before it did not. */
async function firstWithConfig(manager: ReconfigManager, slot: Slot, value: string, from: number, deadline: number): Promise<{ arrival: Arrival; stale: number }> {
  for (let i = from; ; i++) {
    const arrival = await slot.reports.arrival(i, Math.max(1, deadline - Date.now()), `${manager.name} to run ${slot.name} with CONFIG=${value}`);
    let config: string | undefined;
    try {
      config = configOf(manager.hostPid(arrival.pid));
    } catch {
      config = undefined; // gone already: not the one
    }
    if (config === value) return { arrival, stale: i - from };
  }
}

/** Waits until every process has exactly one child connected, and says which. */
async function steady(slots: Slot[], deadline: number): Promise<Snapshot> {
  for (;;) {
    const unsettled = slots.filter((s) => s.reports.live().length !== 1);
    if (unsettled.length === 0) return new Map(slots.map((s) => [s.name, { count: s.reports.count, pid: s.reports.live()[0] as number }]));
    if (Date.now() > deadline) throw new Error(`timed out waiting for one child per process; ${unsettled.map((s) => `${s.name}: ${s.reports.live().join(', ') || 'none'}`).join('; ')}`);
    await sleep(10);
  }
}

function changedProcesses(from: Snapshot, to: Snapshot): string[] {
  return [...from].filter(([name, seen]) => to.get(name)?.count !== seen.count || to.get(name)?.pid !== seen.pid).map(([name]) => name);
}

function pidsOf(snapshot: Snapshot): Record<string, number> {
  return Object.fromEntries([...snapshot].map(([name, { pid }]) => [name, pid]));
}
