// The timed trials of bench/docker.ts. A trial's clock is the bench's process.hrtime.bigint(): t0
// just before the crash, t1 when the replacement's connection is accepted. The crash is SIGKILL of
// the container's main process from the host (the pid from the engine's inspect, checked to be the
// reporter): the process dies as in a real crash, and the engine sees an exit it did not ask for.
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { Arrival, ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import { EventLog, reporterPid, waitForExit, type EngineEvent } from './engine.js';
import type { ContainerSpec, DockerManager } from './managers.js';

/** One supervised container of one manager, and the socket its runs report to. */
export interface Slot {
  manager: DockerManager;
  index: number;
  spec: ContainerSpec;
  reports: ReportSocket;
  /** When its current run reported (monotonic ns): the rest before the next crash counts from here. */
  upAt: bigint;
}

/** One timed crash → replacement, with the engine's events in between (monotonic ns, undefined when none came). */
export interface Trial {
  /** (a) crash → running, spaced; (b) the crash loop. */
  scenario: 'crash' | 'loop';
  manager: DockerManager['key'];
  slot: number;
  index: number;
  warmup: boolean;
  /** How long the killed run had been up (from its report to t0), ms. */
  upMs: number;
  t0: bigint;
  t1: bigint;
  /** When the bench's own call to the engine's wait endpoint (pm's way of learning of an exit) was answered. */
  waited: bigint | undefined;
  die: bigint | undefined;
  destroy: bigint | undefined;
  create: bigint | undefined;
  start: bigint | undefined;
}

export interface TrialOptions {
  docker: Docker;
  /** The engine's socket, for the wait endpoint. */
  socketPath: string;
  events: EventLog;
  cleanup: Cleanup;
  progress: (line: string) => void;
  /** A trial that takes longer fails the run. */
  timeoutMs: number;
  /** The pause after a trial, drawn from [settleMs, 2 × settleMs]. */
  settleMs: number;
}

export const msBetween = (from: bigint, to: bigint): number => Number(to - from) / 1e6;
/** How long the engine's start event may lag the replacement's report before the trial is written down without it. */
const EVENT_WAIT_MS = 2_000;

/** SIGKILL of the slot's running reporter; the time until its replacement reports, and the events between. */
export async function crashTrial(slot: Slot, options: TrialOptions, scenario: Trial['scenario'], index: number, warmup: boolean): Promise<Trial> {
  const { reports, manager } = slot;
  const container = manager.containerName(slot.spec);
  const live = reports.live();
  if (live.length !== 1) throw new Error(`${manager.name} ${container}: expected one running reporter before the trial, found ${live.length}`);
  const victim = live[0] as number;
  const pid = await reporterPid(options.docker, container);
  const wait = await waitForExit(options.socketPath, container, options.timeoutMs + EVENT_WAIT_MS);
  let t0: bigint;
  let arrival: Arrival;
  let waited: bigint | undefined;
  try {
    const next = reports.count;
    t0 = process.hrtime.bigint();
    process.kill(pid, 'SIGKILL');
    arrival = await reports.arrival(next, options.timeoutMs, `${manager.name} to replace ${container}`);
    await reports.gone(victim, options.timeoutMs, `the killed run of ${container} to close its connection`);
    await options.events.waitFor(container, 'start', t0, EVENT_WAIT_MS);
    waited = await Promise.race([wait.answered, sleep(EVENT_WAIT_MS).then(() => undefined)]);
  } finally {
    wait.cancel();
  }
  const seen = options.events.since(container, t0);
  const first = (action: string): bigint | undefined => seen.find((e: EngineEvent) => e.action === action)?.at;
  const trial: Trial = {
    scenario,
    manager: manager.key,
    slot: slot.index,
    index,
    warmup,
    upMs: msBetween(slot.upAt, t0),
    t0,
    t1: arrival.at,
    waited,
    die: first('die'),
    destroy: first('destroy'),
    create: first('create'),
    start: first('start'),
  };
  slot.upAt = arrival.at;
  return trial;
}

/**
 * (a) crash → replacement running, managers alternated trial by trial (the first one rotating).
 * Each manager keeps several containers and they take turns, so that none is crashed again before
 * it has run `restMs`: the engine then always restarts after its shortest delay.
 */
export async function crashToRunning(slots: Map<DockerManager, Slot[]>, trials: number, warmup: number, restMs: number, options: TrialOptions, record: (t: Trial) => void): Promise<void> {
  const managers = [...slots.keys()];
  const total = warmup + trials;
  for (let i = 0; i < total; i++) {
    const order = [...managers.slice(i % managers.length), ...managers.slice(0, i % managers.length)];
    for (const manager of order) {
      const pool = slots.get(manager) as Slot[];
      const slot = pool[i % pool.length] as Slot;
      await restUntil(slot, restMs, options.cleanup);
      record(await withDiagnostics(manager, crashTrial(slot, options, 'crash', i, i < warmup)));
      await settle(options.settleMs, options.cleanup);
    }
    options.events.prune(process.hrtime.bigint() - 60_000_000_000n);
    if ((i + 1) % 20 === 0 || i + 1 === total) options.progress(`(a) crash → running: ${i + 1}/${total} trials per manager`);
  }
}

/**
 * (b) a crash loop: one container of each manager crashed `crashes` times in a row, each time
 * `settleMs`–2×`settleMs` after its replacement reported (after a rest of `restMs` first). The
 * engine's delay doubles after every run shorter than 10 s; pm's backoff here is 0.
 */
export async function crashLoop(slots: Map<DockerManager, Slot[]>, crashes: number, restMs: number, options: TrialOptions, record: (t: Trial) => void): Promise<void> {
  for (const [manager, pool] of slots) {
    const slot = pool[0] as Slot;
    await restUntil(slot, restMs, options.cleanup);
    for (let i = 0; i < crashes; i++) {
      record(await withDiagnostics(manager, crashTrial(slot, { ...options, timeoutMs: Math.max(options.timeoutMs, 120_000) }, 'loop', i, false)));
      await settle(options.settleMs, options.cleanup);
    }
    options.progress(`(b) crash loop: ${manager.name} done`);
  }
}

/** The result of `docker kill -s KILL` (the engine's kill endpoint), per manager. */
export interface KillResult {
  manager: DockerManager['key'];
  /** ms until a replacement reported; undefined when none did within the wait. */
  replacedMs: number | undefined;
  waitedMs: number;
  /** The container's state and RestartCount after the wait. */
  state: string;
}

/**
 * (c) the same crash asked of the engine: POST /containers/NAME/kill?signal=KILL, as `docker kill -s
 * KILL NAME` sends it. The engine takes that for a deliberate stop and does not apply its restart
 * policy; pm sees an exit like any other.
 */
export async function engineKill(slots: Map<DockerManager, Slot[]>, waitMs: number, restMs: number, options: TrialOptions): Promise<KillResult[]> {
  const results: KillResult[] = [];
  for (const [manager, pool] of slots) {
    const slot = pool[pool.length - 1] as Slot;
    await restUntil(slot, restMs, options.cleanup);
    const container = manager.containerName(slot.spec);
    const next = slot.reports.count;
    const t0 = process.hrtime.bigint();
    await options.docker.getContainer(container).kill({ signal: 'KILL' });
    const arrival = await slot.reports.arrival(next, waitMs, 'a replacement').catch(() => undefined);
    const info = await options.docker
      .getContainer(container)
      .inspect()
      .catch(() => undefined);
    results.push({
      manager: manager.key,
      replacedMs: arrival ? msBetween(t0, arrival.at) : undefined,
      waitedMs: waitMs,
      state: info ? `${info.State.Status}, RestartCount ${info.RestartCount}` : 'removed',
    });
    if (arrival) slot.upAt = arrival.at;
  }
  return results;
}

/** Adds the manager's own diagnostics to a failure: a timeout alone says little. */
async function withDiagnostics<T>(manager: DockerManager, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    const message = (error as Error).message;
    if (message === 'interrupted') throw error;
    throw new Error(`${message}\n${await manager.diagnostics()}`, { cause: error });
  }
}

/** Waits until the slot's run has been up restMs; in steps, so that Ctrl-C is not kept waiting. */
async function restUntil(slot: Slot, restMs: number, cleanup: Cleanup): Promise<void> {
  for (;;) {
    if (cleanup.started) throw new Error('interrupted');
    const left = restMs - msBetween(slot.upAt, process.hrtime.bigint());
    if (left <= 0) return;
    await sleep(Math.min(left, 250));
  }
}

async function settle(settleMs: number, cleanup: Cleanup): Promise<void> {
  if (cleanup.started) throw new Error('interrupted');
  await sleep(settleMs * (1 + Math.random()));
}
