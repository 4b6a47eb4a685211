// The two scenarios, each a loop of timed trials. A trial's clock is the bench's
// process.hrtime.bigint(): t0 just before the bench acts, t1 when the child's connection is accepted.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReportSocket } from './child.js';
import type { Cleanup } from './cleanup.js';
import type { Manager, ProcessSpec, WatchedDirectory } from './manager.js';

/** One child a manager keeps running, and the socket its runs report to. */
export interface Slot {
  spec: ProcessSpec;
  reports: ReportSocket;
  /** When its current run reported (monotonic ns): the rest before its next crash counts from here. */
  upAt: bigint;
}

/** A manager under test and the children it supervises, crashed in turn (one child for most managers). */
export interface Subject {
  manager: Manager;
  slots: Slot[];
}

/**
 * What a manager may add to (a), when its child is not a plain child of the host: its children take
 * turns (a peer that slows down or refuses restarts that come too often: systemd's start limit,
 * the engine's doubling delay), and it says how to crash one (a pid in a namespace, a container's
 * process). Managers without it have one child, crashed by SIGKILL of the pid it reported.
 */
export interface CrashedInTurns {
  /** How many children it supervises side by side, and the least time each runs before its next crash. */
  readonly turns: { children: number; restMs: number };
  /**
   * Finds the host process of the run that reported `reported` (its pid in a namespace, a
   * container's token) in `spec`, and returns the crash itself: called at t0, it only sends SIGKILL.
   */
  prepareCrash(spec: ProcessSpec, reported: number): Promise<() => void>;
}

export function crashedInTurns(manager: Manager): manager is Manager & CrashedInTurns {
  return 'turns' in manager && 'prepareCrash' in manager;
}

export interface TrialOptions {
  trials: number;
  /** Trials run first and not counted (JIT warm-up, first-time paths). */
  warmup: number;
  /** The pause after a trial is drawn from [settleMs, 2 × settleMs]: the manager finishes its bookkeeping, and a poll-loop manager is not met at one phase of its loop. */
  settleMs: number;
  /** A trial that takes longer fails the run. */
  timeoutMs: number;
  cleanup: Cleanup;
  progress: (line: string) => void;
  /** Every timed step, warm-up included, with its raw clock readings (for --raw). */
  record?: (trial: RawTrial) => void;
}

/** One timed step; t0 and t1 are process.hrtime.bigint() readings (CLOCK_MONOTONIC, comparable across processes). */
export interface RawTrial {
  scenario: 'crash' | 'write' | 'remove';
  manager: string;
  index: number;
  /** Which of the manager's children (crash only; 0 when it has one). */
  slot?: number;
  warmup: boolean;
  /** The child that reported (crash, write) or went away (remove). */
  pid: number;
  t0: bigint;
  t1: bigint;
}

const elapsedMs = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/**
 * (a) crash → replacement running, for every subject, alternating trial by trial (the starting
 * manager rotates too), so that noise on the machine falls on all of them alike. A manager with
 * several children crashes them in turn, each after its rest.
 */
export async function crashToRunning(subjects: Subject[], options: TrialOptions): Promise<Map<Manager, number[]>> {
  const samples = new Map<Manager, number[]>(subjects.map((s) => [s.manager, []]));
  const total = options.warmup + options.trials;
  for (let i = 0; i < total; i++) {
    const order = [...subjects.slice(i % subjects.length), ...subjects.slice(0, i % subjects.length)];
    for (const subject of order) {
      const slot = i % subject.slots.length;
      await rest(subject, subject.slots[slot] as Slot, options.cleanup);
      const trial = await withDiagnostics(subject.manager, crashTrial(subject.manager, subject.slots[slot] as Slot, options.timeoutMs));
      options.record?.({ scenario: 'crash', manager: subject.manager.name, index: i, slot, warmup: i < options.warmup, ...trial });
      if (i >= options.warmup) samples.get(subject.manager)?.push(elapsedMs(trial.t0, trial.t1));
      await settle(options.settleMs);
    }
    if ((i + 1) % 20 === 0 || i + 1 === total) options.progress(`(a) crash → running: ${i + 1}/${total} trials per manager`);
  }
  return samples;
}

/** SIGKILL the slot's one running child (its own way, when the manager has one); the time until its replacement reports. */
async function crashTrial(manager: Manager, slot: Slot, timeoutMs: number): Promise<{ pid: number; t0: bigint; t1: bigint }> {
  const { reports } = slot;
  const live = reports.live();
  if (live.length !== 1) throw new Error(`${manager.name} ${slot.spec.name}: expected one running child before the trial, found ${live.length} (${live.join(', ') || 'none'})`);
  const victim = live[0] as number;
  const crash = crashedInTurns(manager) ? await manager.prepareCrash(slot.spec, victim) : () => process.kill(victim, 'SIGKILL');
  const next = reports.count;
  const t0 = process.hrtime.bigint();
  crash();
  const arrival = await reports.arrival(next, timeoutMs, `${manager.name} to replace ${victim} (${slot.spec.name})`);
  // The old connection's close, so that the next trial sees one child.
  await reports.gone(victim, timeoutMs, `${victim} (${slot.spec.name}) to be gone`);
  slot.upAt = arrival.at;
  return { pid: arrival.pid, t0, t1: arrival.at };
}

/** Waits until the slot's run has been up the manager's rest (none for most), a quarter second at a time so that Ctrl-C is not kept waiting. */
async function rest({ manager }: Subject, slot: Slot, cleanup: Cleanup): Promise<void> {
  const until = slot.upAt + BigInt(Math.round((crashedInTurns(manager) ? manager.turns.restMs : 0) * 1e6));
  if (cleanup.started) throw new Error('interrupted');
  while (process.hrtime.bigint() < until) {
    await sleep(Math.min(250, elapsedMs(process.hrtime.bigint(), until)));
    if (cleanup.started) throw new Error('interrupted');
  }
}

export interface WriteSamples {
  /** Manifest saved (t0: before the temp file is written) → the new child reports. */
  toRunning: number[];
  /** Manifest removed → the child is gone (its connection closed). */
  toGone: number[];
}

/** (b) manifest write → first action: the process declared by a new file runs; then the file is removed and the process must be gone. */
export async function writeToRunning(subject: { manager: Manager & WatchedDirectory; reports: ReportSocket }, spec: ProcessSpec, options: TrialOptions): Promise<WriteSamples> {
  const { manager, reports } = subject;
  const samples: WriteSamples = { toRunning: [], toGone: [] };
  const total = options.warmup + options.trials;
  for (let i = 0; i < total; i++) {
    if (options.cleanup.started) throw new Error('interrupted');
    const { write, remove } = await withDiagnostics(manager, writeTrial(manager, reports, spec, options.timeoutMs));
    const common = { manager: manager.name, index: i, warmup: i < options.warmup };
    options.record?.({ scenario: 'write', ...common, ...write });
    options.record?.({ scenario: 'remove', ...common, ...remove });
    if (i >= options.warmup) {
      samples.toRunning.push(elapsedMs(write.t0, write.t1));
      samples.toGone.push(elapsedMs(remove.t0, remove.t1));
    }
    await settle(options.settleMs);
    if ((i + 1) % 20 === 0 || i + 1 === total) options.progress(`(b) manifest write → running: ${i + 1}/${total} trials`);
  }
  return samples;
}

type Timed = { pid: number; t0: bigint; t1: bigint };

async function writeTrial(manager: Manager & WatchedDirectory, reports: ReportSocket, spec: ProcessSpec, timeoutMs: number): Promise<{ write: Timed; remove: Timed }> {
  if (reports.live().length !== 0) throw new Error(`${manager.name}: ${spec.name} still runs before the trial (${reports.live().join(', ')})`);
  const next = reports.count;
  const t0 = process.hrtime.bigint();
  await manager.declare(spec);
  const arrival = await reports.arrival(next, timeoutMs, `${manager.name} to start ${spec.name} after its manifest was written`);
  const removing = process.hrtime.bigint();
  await manager.undeclare(spec.name);
  const goneAt = await reports.gone(arrival.pid, timeoutMs, `${manager.name} to stop ${spec.name} after its manifest was removed`);
  return { write: { pid: arrival.pid, t0, t1: arrival.at }, remove: { pid: arrival.pid, t0: removing, t1: goneAt } };
}

/** Adds the manager's own log to a failure: a timeout alone says little. */
export async function withDiagnostics<T>(manager: Manager, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    const message = (error as Error).message;
    if (message === 'interrupted') throw error;
    throw new Error(`${message}\n${await manager.diagnostics()}`, { cause: error });
  }
}

function settle(settleMs: number): Promise<void> {
  return sleep(settleMs * (1 + Math.random()));
}
