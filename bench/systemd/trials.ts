// The timed trials of bench/systemd.ts. A trial's clock is the bench's process.hrtime.bigint(): t0
// just before the crash, t1 when the replacement's connection is accepted. The crash is SIGKILL,
// from the host, of the unit's main process (MainPID, which is the namespace's pid, mapped to the
// host's and checked to be the reporter). systemd's monotonic timestamps of the unit, read after
// the replacement reported, say where the time went; they are on the same clock as t0 and t1.
import { setTimeout as sleep } from 'node:timers/promises';
import type { SystemdNamespace } from '../../test/support/systemd.js';
import type { Arrival, ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import type { UnitManager, UnitSpec } from './managers.js';
import { hostPidOf, monotonicNs, showUnit } from './namespace.js';

/** One supervised unit of one manager, and the socket its runs report to. */
export interface Slot {
  manager: UnitManager;
  index: number;
  spec: UnitSpec;
  reports: ReportSocket;
  /** When its current run reported (monotonic ns): the rest before the next crash counts from here. */
  upAt: bigint;
}

/** One timed crash → replacement, with systemd's timestamps of the unit (monotonic ns; undefined when not after t0). */
export interface Trial {
  manager: UnitManager['key'];
  slot: number;
  index: number;
  warmup: boolean;
  /** How long the killed run had been up (from its report to t0), ms. */
  upMs: number;
  t0: bigint;
  t1: bigint;
  /** ActiveExitTimestamp: systemd has handled the death (the unit left the active state). */
  exitSeen: bigint | undefined;
  /** pm only: its `Exited` event (wall-clock ms mapped onto the bench's clock): pm has taken the exit in. */
  seenByPm: bigint | undefined;
  /** InactiveExitTimestamp: the start job began (pm's `systemctl start`, or Restart='s timer ran out). */
  startBegun: bigint | undefined;
  /** ExecMainStartTimestamp: systemd forked the new main process. */
  forked: bigint | undefined;
  /** NRestarts after the trial (systemd's own restarts of the unit). */
  restarts: number;
}

export interface TrialContext {
  sd: SystemdNamespace;
  /** The reporter's path: the killed process must be running it. */
  reporter: string;
  cleanup: Cleanup;
  progress: (line: string) => void;
  /** A trial that takes longer fails the run. */
  timeoutMs: number;
  /** The pause after a trial, drawn from [settleMs, 2 × settleMs]. */
  settleMs: number;
  /** The least a unit's run has been up before it is crashed (systemd's start rate limit: 5 in 10 s). */
  restMs: number;
}

export const msBetween = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

const TIMESTAMPS = ['MainPID', 'NRestarts', 'ActiveExitTimestampMonotonic', 'InactiveExitTimestampMonotonic', 'ExecMainStartTimestampMonotonic'] as const;

/** SIGKILL of the slot's running reporter; the time until its replacement reports, and systemd's view of it. */
export async function crashTrial(slot: Slot, context: TrialContext, index: number, warmup: boolean): Promise<Trial> {
  const { reports, manager } = slot;
  const unit = manager.unitName(slot.spec);
  const live = reports.live();
  if (live.length !== 1) throw new Error(`${manager.name} ${unit}: expected one running reporter before the trial, found ${live.length}`);
  const victim = live[0] as number;
  const before = await showUnit(context.sd, unit, ['MainPID', 'ActiveState']);
  if (Number(before.get('MainPID')) !== victim) throw new Error(`${unit}: MainPID is ${before.get('MainPID')} (${before.get('ActiveState')}), but the running reporter is pid ${victim}`);
  const hostPid = hostPidOf(context.sd, victim, context.reporter);
  const next = reports.count;
  const t0 = process.hrtime.bigint();
  process.kill(hostPid, 'SIGKILL');
  const upMs = msBetween(slot.upAt, t0);
  const arrival: Arrival = await reports.arrival(next, context.timeoutMs, `${manager.name} to restart ${unit}`);
  await reports.gone(victim, context.timeoutMs, `the killed run of ${unit} to close its connection`);
  const after = await showUnit(context.sd, unit, TIMESTAMPS);
  if (Number(after.get('MainPID')) !== arrival.pid) throw new Error(`${unit}: pid ${arrival.pid} reported, but MainPID is ${after.get('MainPID')}`);
  const since = (key: (typeof TIMESTAMPS)[number]): bigint | undefined => {
    const at = monotonicNs(after.get(key));
    return at !== undefined && at >= t0 ? at : undefined;
  };
  slot.upAt = arrival.at;
  return {
    manager: manager.key,
    slot: slot.index,
    index,
    warmup,
    upMs,
    t0,
    t1: arrival.at,
    exitSeen: since('ActiveExitTimestampMonotonic'),
    seenByPm: undefined,
    startBegun: since('InactiveExitTimestampMonotonic'),
    forked: since('ExecMainStartTimestampMonotonic'),
    restarts: Number(after.get('NRestarts') ?? 0),
  };
}

/**
 * Crash → replacement running, managers alternated trial by trial (the first one rotating). Each
 * manager keeps several units that take turns, each resting `restMs` before its next crash.
 */
export async function alternate(pools: Map<UnitManager, Slot[]>, trials: number, warmup: number, context: TrialContext, record: (t: Trial) => void): Promise<void> {
  const managers = [...pools.keys()];
  const total = warmup + trials;
  for (let i = 0; i < total; i++) {
    const shift = i % managers.length;
    for (const manager of [...managers.slice(shift), ...managers.slice(0, shift)]) {
      const pool = pools.get(manager) as Slot[];
      const slot = pool[i % pool.length] as Slot;
      await pause(context, () => context.restMs - msBetween(slot.upAt, process.hrtime.bigint()));
      record(await explained(manager, crashTrial(slot, context, i, i < warmup)));
      const settle = context.settleMs * (1 + Math.random());
      const settled = process.hrtime.bigint();
      await pause(context, () => settle - msBetween(settled, process.hrtime.bigint()));
    }
    if ((i + 1) % 20 === 0 || i + 1 === total) context.progress(`crash → restarted: ${i + 1}/${total} trials per manager`);
  }
}

/** A moment read on both clocks: wall-clock ms (pm's log) map onto the bench's monotonic ns through it. */
export interface ClockAnchor {
  wallMs: number;
  hr: bigint;
}

export function clockAnchor(): ClockAnchor {
  return { wallMs: Date.now(), hr: process.hrtime.bigint() };
}

/**
 * Gives each pm trial the time of pm's `Exited` event for its unit between t0 and t1 (the log's
 * times are whole ms: 1 ms of slack before t0). `names` maps a slot to pm's process name.
 */
export function attachPmExits(trials: Trial[], events: Map<string, number[]>, anchor: ClockAnchor, names: (slot: number) => string): void {
  const toHr = (ms: number): bigint => anchor.hr + BigInt(Math.round((ms - anchor.wallMs) * 1e6));
  for (const trial of trials) {
    if (trial.manager !== 'pm') continue;
    const at = (events.get(names(trial.slot)) ?? []).map(toHr).find((hr) => hr >= trial.t0 - 1_000_000n && hr <= trial.t1);
    trial.seenByPm = at !== undefined && at < trial.t0 ? trial.t0 : at;
  }
}

/** Waits while `leftMs()` is positive, in steps of at most 250 ms so that Ctrl-C is not kept waiting. */
async function pause(context: TrialContext, leftMs: () => number): Promise<void> {
  for (;;) {
    if (context.cleanup.started) throw new Error('interrupted');
    const left = leftMs();
    if (left <= 0) return;
    await sleep(Math.min(left, 250));
  }
}

/** A failed trial carries the manager's own diagnostics: a timeout alone says little. */
async function explained<T>(manager: UnitManager, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    if ((error as Error).message === 'interrupted') throw error;
    throw new Error(`${(error as Error).message}\n${await manager.diagnostics()}`, { cause: error });
  }
}
