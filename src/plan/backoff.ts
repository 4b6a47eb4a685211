// Restart backoff per process, after CrashLoopBackOff (client-go util/flowcontrol/backoff.go):
// the delay before an automatic restart grows with each failure, is measured from when the failed
// instance ended, and resets once an instance has run long enough. Pure: the caller passes the
// times (epoch ms) and the jitter draw; the state is plain JSON, kept in the state directory so a
// restarted daemon keeps counting.
//
// Delay after the n-th counted failure (n ≥ 1):
//   base  = min(initialSeconds × factor^(n−1), maxSeconds)
//   delay = base × (1 + jitter × jitter01)            jitter01 ∈ [0, 1), drawn once per failure
// so the longest possible wait is maxSeconds × (1 + jitter). maxSeconds caps the growth, and the
// jitter still spreads processes that failed together (a shared database went down) once they
// all sit at the cap — the point where synchronised restarts hurt most. initialSeconds 0 means
// no delay at all, for every failure.
//
// Defaults (schemas/process.schema.json, Backoff): initialSeconds 1, factor 2, maxSeconds 300,
// jitter 0.2, resetAfterSeconds 600 — 1 s, 2 s, 4 s … 256 s, then 300 s (+ up to 20 %).
// - systemd: Restart= picks which exits restart (our `policy`); RestartSec=100ms is a fixed
//   delay (growing delays need RestartSteps=/RestartMaxDelaySec=, systemd 254+).
// - Docker: the restart delay doubles from 100 ms to at most 1 min, reset once a container ran
//   10 s — so a process that crashes after a 10 s warm-up never backs off at all.
// - Kubernetes: CrashLoopBackOff waits 10 s, doubling to 5 min, reset after 10 min of running.
// We keep Kubernetes' cap and reset (300 s, 600 s), but start at 1 s: a single crash of a local
// process should cost a second, not ten, while a tight loop still backs off within a few tries.
import type { Backoff } from '../manifest/types.js';

export interface BackoffState {
  /** Failures counted towards the delay since the last reset; 0: start at once. */
  failures: number;
  /** Epoch ms the last counted failure ended (exit, or the failed start): the delay runs from here. */
  lastFailureAt?: number;
  /**
   * The caller's jitter draw for the last failure, kept so the delay is the same every time it is
   * asked — on each reconcile and after a daemon restart — instead of moving with every new draw.
   */
  jitter01?: number;
}

/** What the caller knows about the instance that just failed. */
export interface FailedRun {
  /** Epoch ms the instance started; absent when it never ran (the start itself failed). */
  startedAt?: number;
  /** Epoch ms it ended: the exit, or the failed start. */
  endedAt: number;
  /** A number in [0, 1) drawn by the caller: where within the jitter range this delay lands. */
  jitter01: number;
}

/** No failures counted: the state of a process pm has not seen fail, and after `pm reset`. */
export function emptyBackoff(): BackoffState {
  return { failures: 0 };
}

/**
 * Counts a failure — any exit that the restart policy answers with a restart, or a start that
 * failed. When the failed instance ran at least resetAfterSeconds (from its start to its end,
 * as Docker measures it), the earlier failures are forgotten and this one counts as the first.
 * An instance that never started never earns a reset.
 */
export function recordFailure(state: BackoffState, backoff: Backoff, run: FailedRun): BackoffState {
  checkJitterDraw(run.jitter01);
  const ranLongEnough = run.startedAt !== undefined && run.endedAt - run.startedAt >= backoff.resetAfterSeconds * 1000;
  const failures = ranLongEnough ? 1 : state.failures + 1;
  return { failures, lastFailureAt: run.endedAt, jitter01: run.jitter01 };
}

/**
 * Forgets the counted failures once the running instance, started at `startedAt`, has been up
 * resetAfterSeconds — so status shows a clean slate without waiting for the next failure (which
 * would reset the count anyway). Returns `state` itself when nothing changes.
 */
export function recordHealthyRun(state: BackoffState, backoff: Backoff, run: { startedAt: number; now: number }): BackoffState {
  if (state.failures === 0) return state;
  return run.now - run.startedAt >= backoff.resetAfterSeconds * 1000 ? emptyBackoff() : state;
}

/** The wait, in whole ms, between the last counted failure and the next automatic start. */
export function delayMs(state: BackoffState, backoff: Backoff): number {
  if (state.failures <= 0 || backoff.initialSeconds === 0) return 0;
  // factor^n overflows to Infinity for huge counts; min() turns that into the cap.
  const base = Math.min(backoff.initialSeconds * backoff.factor ** (state.failures - 1), backoff.maxSeconds);
  return Math.round(base * (1 + backoff.jitter * (state.jitter01 ?? 0)) * 1000);
}

/** Epoch ms from which an automatic start may happen; 0 (any time) when no failure is counted. */
export function nextStartAt(state: BackoffState, backoff: Backoff): number {
  if (state.failures <= 0 || state.lastFailureAt === undefined) return 0;
  return state.lastFailureAt + delayMs(state, backoff);
}

/** How long to wait from `now` before an automatic start, 0 when it may start now: a requeue delay. */
export function remainingMs(state: BackoffState, backoff: Backoff, now: number): number {
  return Math.max(0, nextStartAt(state, backoff) - now);
}

function checkJitterDraw(jitter01: number): void {
  if (!(jitter01 >= 0 && jitter01 < 1)) {
    throw new RangeError(`backoff: jitter01 must be a number in [0, 1), got ${jitter01}`);
  }
}
