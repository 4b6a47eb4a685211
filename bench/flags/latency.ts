// (a) flag write → restart begun. The bench INSERTs a restart flag for the one process a daemon
// supervises (the C reporter of bench/daemon) and times it until the replacement connects. Two
// daemons run side by side, each with a database of its own: one woken by NOTIFY, one that only
// polls (its trigger disabled). They take turns in blocks of trials.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import type { Manager } from '../daemon/manager.js';
import { withDiagnostics } from '../daemon/scenarios.js';
import { summarize } from '../daemon/stats.js';

export type FlagMode = 'notify' | 'poll';

/** The process every flag names, as other teams' code would write it (one simple-protocol statement). */
export const FLAG_PROCESS = 'x';
const INSERT_FLAG = `INSERT INTO pm.flags (process, action) VALUES ('${FLAG_PROCESS}', 'restart') RETURNING id::text AS id`;

/** One daemon under test, the socket its child reports to and the writer's connection to its database. */
export interface FlagSubject {
  mode: FlagMode;
  manager: Manager;
  reports: ReportSocket;
  writer: pg.Client;
  /** The daemon's flagPollSeconds, in ms. */
  pollMs: number;
}

export interface FlagTrialOptions {
  trials: number;
  warmup: number;
  /** Trials of one mode before the other takes its turn. */
  block: number;
  /** NOTIFY: a pause drawn from [settleMs, 2 × settleMs] after each trial. Polling: from [settleMs, settleMs + the poll period], so that flags meet the poll loop at every phase. */
  settleMs: number;
  timeoutMs: number;
  cleanup: Cleanup;
  progress: (line: string) => void;
}

/**
 * One trial's clock readings: process.hrtime.bigint() in the bench, and two times the server took
 * itself (now() of the INSERT's transaction and of the daemon's claiming transaction, which
 * writes it into handled_at), whose difference is on the server's clock.
 */
export interface FlagTrial {
  mode: FlagMode;
  index: number;
  warmup: boolean;
  /** pm.flags.id of the row. */
  id: string;
  /** The replacement child. */
  pid: number;
  /** Right before the INSERT is sent. */
  t0: bigint;
  /** The INSERT has returned (committed). */
  inserted: bigint;
  /** The old child's connection closed: pm stopped it. */
  stopped: bigint;
  /** The replacement connected: the restart has begun. */
  t1: bigint;
  /** handled_at − requested_at: the INSERT's start → the daemon's BEGIN of the transaction that claimed the row (server clock). */
  claimAfterMs: number;
}

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

/** Warm-up trials of each mode, then `block` trials of one mode, `block` of the other, and so on. */
export async function flagToRestart(subjects: FlagSubject[], options: FlagTrialOptions): Promise<FlagTrial[]> {
  const all: FlagTrial[] = [];
  const run = async (subject: FlagSubject, index: number, warmup: boolean): Promise<void> => {
    if (options.cleanup.started) throw new Error('interrupted');
    all.push({ mode: subject.mode, index, warmup, ...(await withDiagnostics(subject.manager, flagTrial(subject, options.timeoutMs))) });
    const spread = subject.mode === 'poll' ? subject.pollMs : options.settleMs;
    await sleep(options.settleMs + Math.random() * spread);
  };
  for (const subject of subjects) for (let i = 0; i < options.warmup; i++) await run(subject, i, true);
  const done = new Map<FlagMode, number>(subjects.map((s) => [s.mode, 0]));
  while (subjects.some((s) => (done.get(s.mode) ?? 0) < options.trials)) {
    for (const subject of subjects) {
      const first = done.get(subject.mode) ?? 0;
      const last = Math.min(options.trials, first + options.block);
      for (let i = first; i < last; i++) await run(subject, options.warmup + i, false);
      done.set(subject.mode, last);
    }
    options.progress(`(a) flag → restart: ${subjects.map((s) => `${s.mode} ${done.get(s.mode)}/${options.trials}`).join(', ')}`);
  }
  return all;
}

async function flagTrial(subject: FlagSubject, timeoutMs: number): Promise<Omit<FlagTrial, 'mode' | 'index' | 'warmup'>> {
  const { manager, reports, writer } = subject;
  const live = reports.live();
  if (live.length !== 1) throw new Error(`${manager.name} (${subject.mode}): expected one running child before the trial, found ${live.length} (${live.join(', ') || 'none'})`);
  const old = live[0] as number;
  const next = reports.count;
  const t0 = process.hrtime.bigint();
  const { rows } = await writer.query<{ id: string }>(INSERT_FLAG);
  const inserted = process.hrtime.bigint();
  const id = rows[0]?.id as string;
  const arrival = await reports.arrival(next, timeoutMs, `${subject.mode} daemon to restart ${FLAG_PROCESS} after flag ${id}`);
  const stopped = await reports.gone(old, timeoutMs, `pid ${old} to be gone after flag ${id}`);
  const row = await handled(writer, id, timeoutMs);
  if (row.result !== 'ok') throw new Error(`flag ${id} was handled with result ${row.result}: ${row.message}`);
  return { id, pid: arrival.pid, t0, inserted, stopped, t1: arrival.at, claimAfterMs: row.claimAfterMs };
}

/** The row once the daemon has committed its outcome. */
async function handled(writer: pg.Client, id: string, timeoutMs: number): Promise<{ result: string; message: string; claimAfterMs: number }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await writer.query<{ result: string | null; message: string | null; claim_after_ms: number | null }>(
      `SELECT result, message, (extract(epoch FROM handled_at - requested_at) * 1000)::float8 AS claim_after_ms FROM pm.flags WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    if (row?.result != null && row.claim_after_ms != null) return { result: row.result, message: row.message ?? '', claimAfterMs: row.claim_after_ms };
    if (Date.now() > deadline) throw new Error(`flag ${id} not marked handled within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** Per trial, in ms from t0: the whole path and where it went. */
export interface FlagSamples {
  total: number[];
  /** t0 → the INSERT returned (the writer's own round trip, commit included). */
  insert: number[];
  /** The INSERT's start → the daemon's claiming BEGIN (server clock): notification or poll, wake-up, a pooled connection. */
  claim: number[];
  /** That BEGIN → the old child gone: claim query, control (record, audit), reconcile, SIGTERM, exit. */
  stop: number[];
  /** The old child gone → the replacement connected: spawn, exec, connect. */
  start: number[];
}

export function samplesOf(trials: readonly FlagTrial[], mode: FlagMode): FlagSamples {
  const counted = trials.filter((t) => t.mode === mode && !t.warmup);
  return {
    total: counted.map((t) => ms(t.t0, t.t1)),
    insert: counted.map((t) => ms(t.t0, t.inserted)),
    claim: counted.map((t) => t.claimAfterMs),
    stop: counted.map((t) => ms(t.t0, t.stopped) - t.claimAfterMs),
    start: counted.map((t) => ms(t.stopped, t.t1)),
  };
}

export function median(samples: readonly number[]): number {
  return summarize(samples).median;
}

/** For --raw: one JSON object a line, clock readings as strings, durations in ms. */
export function rawLine(t: FlagTrial): string {
  return `${JSON.stringify({ ...t, t0: String(t.t0), inserted: String(t.inserted), stopped: String(t.stopped), t1: String(t.t1), ms: ms(t.t0, t.t1) })}\n`;
}
