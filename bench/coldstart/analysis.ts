// What one cold start measured, from the children's own clock readings (CLOCK_MONOTONIC, the
// bench's process.hrtime.bigint() clock): the time until the last process was ready, when the first
// one started, order violations, and the hand-off on each dependency edge.
import type { RunReports } from './reports.js';
import type { Scenario } from './scenario.js';

export interface RunResult {
  manager: string;
  index: number;
  /** t0 → the last process ready. */
  totalMs: number;
  /** t0 → the first process started (the manager's own start-up and first spawn). */
  firstStartMs: number;
  /** t0 → the last process of each level ready. */
  levelReadyMs: number[];
  /** Each level's first start → its last start: how long the manager took to start a level's processes. */
  levelSpreadMs: number[];
  /** Processes started before all their dependencies were ready. */
  violations: number;
  /** Per process above level 0: its start − its last dependency's ready, ms (negative: a violation). */
  handoffMs: number[];
  /** Processes started more than once in the run. */
  restarted: number;
  /** pm daemon only: its log's Ready event of the last dependency − that dependency's own ready report, ms. */
  pmSeenMs?: number[];
  /** pm daemon only: the dependent's start − the Ready event that opened its gate, ms. */
  pmSpawnMs?: number[];
  /** CPU the manager's own process had from t0 to t1 (all threads, and its main thread), where measured. */
  managerCpuMs?: { processMs: number; mainThreadMs: number };
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

export function analyseRun(manager: string, index: number, scenario: Scenario, t0: bigint, reports: RunReports): RunResult {
  const firstStart = (name: string): bigint => {
    const start = reports.starts.get(name)?.[0];
    if (start === undefined) throw new Error(`${name} never reported its start`);
    return start.at;
  };
  const readyAt = (name: string): bigint => {
    const at = reports.ready.get(name);
    if (at === undefined) throw new Error(`${name} never reported ready`);
    return at;
  };
  const levelReadyMs: number[] = Array.from({ length: scenario.levels }, () => 0);
  const levelStarts: bigint[][] = Array.from({ length: scenario.levels }, () => []);
  let last = t0;
  let first: bigint | undefined;
  let violations = 0;
  const handoffMs: number[] = [];
  for (const p of scenario.processes) {
    const start = firstStart(p.name);
    const ready = readyAt(p.name);
    if (ready > last) last = ready;
    if (first === undefined || start < first) first = start;
    levelReadyMs[p.level] = Math.max(levelReadyMs[p.level] as number, ms(t0, ready));
    levelStarts[p.level]?.push(start);
    if (p.dependsOn.length === 0) continue;
    const depsReady = p.dependsOn.map(readyAt).reduce((a, b) => (a > b ? a : b));
    if (start < depsReady) violations++;
    handoffMs.push(ms(depsReady, start));
  }
  const restarted = [...reports.starts.values()].filter((s) => s.length > 1).length;
  const levelSpreadMs = levelStarts.map((starts) => (starts.length === 0 ? 0 : ms(starts.reduce((a, b) => (a < b ? a : b)), starts.reduce((a, b) => (a > b ? a : b)))));
  return { manager, index, totalMs: ms(t0, last), firstStartMs: ms(t0, first ?? t0), levelReadyMs, levelSpreadMs, violations, handoffMs, restarted };
}

/** Wall-clock ms (pm's log) ↔ the monotonic clock, read together once per run. */
export interface ClockAnchor {
  wallMs: number;
  hr: bigint;
}

export function clockAnchor(): ClockAnchor {
  return { wallMs: Date.now(), hr: process.hrtime.bigint() };
}

/**
 * Splits each hand-off of a pm daemon run at pm's own Ready events (whole ms on the wall clock,
 * mapped once: ±1 ms): the child ready → pm's Ready event of that dependency (the probe's period
 * and the probe itself), then that event → the dependent's start (queue, reconcile, spawn).
 */
export function splitPmHandoffs(result: RunResult, scenario: Scenario, reports: RunReports, pmReady: ReadonlyMap<string, number>, anchor: ClockAnchor): void {
  const toHr = (wall: number): bigint => anchor.hr + BigInt(Math.round((wall - anchor.wallMs) * 1e6));
  const seen: number[] = [];
  const spawn: number[] = [];
  for (const p of scenario.processes) {
    if (p.dependsOn.length === 0) continue;
    const events = p.dependsOn.map((d) => pmReady.get(d));
    const start = reports.starts.get(p.name)?.[0]?.at;
    if (events.some((e) => e === undefined) || start === undefined) continue;
    // The gate opened with the last of its dependencies' Ready events.
    const gateIndex = events.reduce<number>((best, e, i) => ((e as number) > (events[best] as number) ? i : best), 0);
    const gate = toHr(events[gateIndex] as number);
    const depReady = reports.ready.get(p.dependsOn[gateIndex] as string);
    if (depReady !== undefined) seen.push(ms(depReady, gate));
    spawn.push(ms(gate, start));
  }
  result.pmSeenMs = seen;
  result.pmSpawnMs = spawn;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1] as number;
}
