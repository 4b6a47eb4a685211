// A circuit breaker per process: it stops automatic restarts of a process that keeps failing.
// Pure: the caller passes `now` (epoch ms) and stores the state (plain JSON, in the state
// directory, so a restarted daemon keeps it); changes of phase come back as values, for the
// caller to log, audit, count and notify.
//
//   closed ──maxFailures failures within windowSeconds──► open
//   open ──cooldown elapsed (seen by mayStart)──► half-open: one trial start allowed
//   half-open ──recordSuccess──► closed (window cleared)
//   half-open ──recordFailure──► open, cooldown doubled (at most 8× cooldownSeconds)
//   open ──recordSuccess (an instance started by hand proved healthy)──► closed
//   any ──resetBreaker (pm reset NAME)──► closed (window cleared)
//   any ──enabled: false──► closed; a disabled breaker never opens
//
// Rules:
// - A failure at t counts while now − t < windowSeconds. The window is pruned on every call and
//   never holds more than maxFailures timestamps, so its size is bounded whatever happens.
// - Successes do not forgive failures while closed: the breaker counts failures in a window (like
//   systemd's start limit), not consecutive failures, so a process that comes up, serves a while
//   and crashes again still trips it.
// - "Success" and "failure" are the caller's words: a failure is an exit the restart policy
//   would answer with a restart (or a failed start); a success is what the caller decides proves
//   health (ready, or up for a while). Every trial must end in one of the two reports.
// - A failure while open (an instance started by hand crashed) keeps it open and restarts the
//   cooldown from that failure.
// - An automatic start needs both gates: mayStart() allowed, and the backoff's nextStartAt()
//   reached. With backoff delays d1, d2, …, a tight crash loop trips the breaker only if
//   d1 + … + d(maxFailures−1) fits in the window: by default 1 + 2 + 4 + 8 = 15 s ≪ 300 s.
//
// Defaults (schemas/process.schema.json, CircuitBreaker): enabled, maxFailures 5, windowSeconds
// 300, cooldownSeconds 300; trial cooldowns 300 s, 600 s, 1200 s, then 2400 s.
// - systemd: StartLimitBurst=5 starts within StartLimitIntervalSec=10s leave the unit failed, with
//   no more automatic restarts, until an operator starts it or runs `systemctl reset-failed`. We
//   keep the burst of 5 but widen the window to fit a growing backoff (our starts at 0, 1, 3, 7,
//   15 s never put five in 10 s), and retry by trial instead of staying failed, so a process
//   whose database comes back recovers without an operator.
// - Docker: no breaker; `always` retries forever (at most 1 min apart), `on-failure:N` gives up
//   for good after N restarts.
// - Kubernetes: no breaker; CrashLoopBackOff retries forever, every 5 min at worst.
import type { CircuitBreaker } from '../manifest/types.js';

export const BreakerPhase = { closed: 'closed', open: 'open', halfOpen: 'half-open' } as const;
export type BreakerPhase = (typeof BreakerPhase)[keyof typeof BreakerPhase];

export type BreakerState =
  /** Automatic restarts allowed. */
  | { phase: 'closed'; failures: number[] }
  /** No automatic restarts until openedAt + cooldownMs. */
  | { phase: 'open'; failures: number[]; openedAt: number; cooldownMs: number }
  /** One trial start allowed; trialStartedAt is set once it is taken. */
  | { phase: 'half-open'; failures: number[]; openedAt: number; cooldownMs: number; trialStartedAt?: number };

/** Why the phase changed. Explains a transition; nothing decides on it. */
export type BreakerReason =
  /** closed → open: maxFailures failures within the window. */
  | 'TooManyFailures'
  /** open → half-open. */
  | 'CooldownElapsed'
  /** half-open → closed. */
  | 'TrialSucceeded'
  /** half-open → open, with a longer cooldown. */
  | 'TrialFailed'
  /** open → closed: an instance started by hand while open proved healthy. */
  | 'Recovered'
  /** open or half-open → closed by hand (pm reset). */
  | 'Reset'
  /** open or half-open → closed: the manifest now says enabled: false. */
  | 'Disabled';

export interface BreakerTransition {
  from: BreakerPhase;
  to: BreakerPhase;
  reason: BreakerReason;
  /** Epoch ms. */
  at: number;
  /** Failures inside the window at that moment. */
  failures: number;
  /** When `to` is open: epoch ms from which a trial start is allowed. */
  retryAt?: number;
}

/** Every operation returns the new state, and the transition when the phase changed. */
export interface BreakerUpdate {
  state: BreakerState;
  transition?: BreakerTransition;
}

export type StartVerdict = BreakerUpdate &
  (
    | { allowed: true; /** This start is the half-open trial: report its outcome. */ trial: boolean }
    | { allowed: false; blockedBy: 'open'; /** Epoch ms from which a trial is allowed. */ retryAt: number }
    | { allowed: false; blockedBy: 'trial-running' }
  );

/** How far the cooldown may grow after failed trials, as a multiple of cooldownSeconds. */
export const MAX_COOLDOWN_MULTIPLIER = 8;

/** A closed breaker with no failures: a new process, and the state after pm reset. */
export function closedBreaker(): BreakerState {
  return { phase: 'closed', failures: [] };
}

/** Counts a failure at `now`; it may open the breaker, or re-open it after a failed trial. */
export function recordFailure(state: BreakerState, cfg: CircuitBreaker, now: number): BreakerUpdate {
  const settled = settle(state, cfg, now);
  const s = settled.state;
  const failures = window([...s.failures, now], cfg, now);
  if (!cfg.enabled) return { state: { ...s, failures }, ...only(settled.transition) };

  switch (s.phase) {
    case 'closed': {
      if (failures.length < cfg.maxFailures) return { state: { phase: 'closed', failures } };
      const cooldownMs = cfg.cooldownSeconds * 1000;
      return openAt(s.phase, 'TooManyFailures', failures, now, cooldownMs);
    }
    case 'half-open': {
      const base = cfg.cooldownSeconds * 1000;
      const cooldownMs = Math.max(base, Math.min(s.cooldownMs * 2, base * MAX_COOLDOWN_MULTIPLIER));
      return openAt(s.phase, 'TrialFailed', failures, now, cooldownMs);
    }
    case 'open':
      return { state: { ...s, failures, openedAt: now } };
  }
}

/** The caller's word that the current instance is healthy: closes a half-open (or open) breaker. */
export function recordSuccess(state: BreakerState, cfg: CircuitBreaker, now: number): BreakerUpdate {
  const settled = settle(state, cfg, now);
  const s = settled.state;
  if (s.phase === 'closed') return settled;
  const reason: BreakerReason = s.phase === 'half-open' ? 'TrialSucceeded' : 'Recovered';
  return { state: closedBreaker(), transition: { from: s.phase, to: 'closed', reason, at: now, failures: s.failures.length } };
}

/**
 * May the process be started automatically now? Moves open → half-open once the cooldown has
 * passed: keep the returned state (and emit the transition) even if nothing starts now. Asking
 * takes nothing: call recordStart when the start is actually made.
 */
export function mayStart(state: BreakerState, cfg: CircuitBreaker, now: number): StartVerdict {
  const settled = settle(state, cfg, now);
  const s = settled.state;
  switch (s.phase) {
    case 'closed':
      return { ...settled, allowed: true, trial: false };
    case 'half-open':
      return s.trialStartedAt === undefined ? { ...settled, allowed: true, trial: true } : { ...settled, allowed: false, blockedBy: 'trial-running' };
    case 'open': {
      const retryAt = s.openedAt + s.cooldownMs;
      if (now < retryAt) return { ...settled, allowed: false, blockedBy: 'open', retryAt };
      const halfOpen: BreakerState = { phase: 'half-open', failures: s.failures, openedAt: s.openedAt, cooldownMs: s.cooldownMs };
      const transition: BreakerTransition = { from: 'open', to: 'half-open', reason: 'CooldownElapsed', at: now, failures: s.failures.length };
      return { state: halfOpen, transition, allowed: true, trial: true };
    }
  }
}

/** Records that a start was made at `now`; in half-open this takes the one trial. */
export function recordStart(state: BreakerState, cfg: CircuitBreaker, now: number): BreakerUpdate {
  const settled = settle(state, cfg, now);
  const s = settled.state;
  if (s.phase !== 'half-open' || s.trialStartedAt !== undefined) return settled;
  return { state: { ...s, trialStartedAt: now }, ...only(settled.transition) };
}

/** Closes the breaker by hand (pm reset NAME) and forgets the failures. */
export function resetBreaker(state: BreakerState, now: number): BreakerUpdate {
  if (state.phase === 'closed') return { state: closedBreaker() };
  return { state: closedBreaker(), transition: { from: state.phase, to: 'closed', reason: 'Reset', at: now, failures: state.failures.length } };
}

/** Prunes the window, and closes the breaker when the configuration disabled it. */
function settle(state: BreakerState, cfg: CircuitBreaker, now: number): BreakerUpdate {
  const failures = window(state.failures, cfg, now);
  if (cfg.enabled || state.phase === 'closed') return { state: { ...state, failures } };
  return {
    state: { phase: 'closed', failures },
    transition: { from: state.phase, to: 'closed', reason: 'Disabled', at: now, failures: failures.length },
  };
}

function openAt(from: BreakerPhase, reason: BreakerReason, failures: number[], now: number, cooldownMs: number): BreakerUpdate {
  const retryAt = now + cooldownMs;
  return {
    state: { phase: 'open', failures, openedAt: now, cooldownMs },
    transition: { from, to: 'open', reason, at: now, failures: failures.length, retryAt },
  };
}

/** The failures still inside the window at `now`, oldest first, at most maxFailures of them. */
function window(failures: readonly number[], cfg: CircuitBreaker, now: number): number[] {
  const since = now - cfg.windowSeconds * 1000;
  return failures
    .filter((t) => t > since)
    .sort((a, b) => a - b)
    .slice(-cfg.maxFailures);
}

function only(transition: BreakerTransition | undefined): { transition?: BreakerTransition } {
  return transition ? { transition } : {};
}
