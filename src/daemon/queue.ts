// The daemon's work queue, after client-go's util/workqueue: a "stingy" queue of string keys.
// Keys carry no event (the reconciler re-reads state), so a burst of triggers for one key costs
// one pass, and a key is never handed to two workers at once: a dirty set and a processing set.
//
// Rules, in one place:
// - add(key): already waiting → nothing (deduplicated). Being processed → marked dirty and queued
//   again when done(key) is called. Otherwise queued. Any pending addAfter timer for the key is
//   cancelled: the key runs now, and a level-triggered pass re-declares any later requeue it needs.
// - addAfter(key, ms): at most one timer per key, and the earliest due time wins; a key already
//   waiting (or dirty while processing) ignores it, since it runs sooner anyway. ms ≤ 0 is add().
// - get() hands out keys in arrival order; it resolves `undefined` at once after shutdown().
// - shutdown() drops waiting keys and timers (nothing is lost: the next start resyncs every key),
//   wakes every get(), and resolves when the keys in progress have all been done().

/** Time as the queue sees it: milliseconds and one-shot timers, injected so tests need no sleeps. */
export interface Clock {
  /** Milliseconds from an arbitrary origin; only compared with itself. */
  now(): number;
  /** Calls `fn` once after `delayMs`; the returned function cancels it (a no-op once fired). */
  setTimer(fn: () => void, delayMs: number): () => void;
}

/** Monotonic time and real timers. Timers keep the process alive: a pending retry is pending work. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, delayMs) => {
    const timer = setTimeout(fn, delayMs);
    return () => clearTimeout(timer);
  },
};

/** A manual clock for tests: time moves only in advance(). */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 0;
  /** By id; a Map iterates in insertion order, so ties on dueAt keep scheduling order. */
  readonly #timers = new Map<number, { dueAt: number; fn: () => void }>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, delayMs: number): () => void {
    const id = this.#nextId++;
    this.#timers.set(id, { dueAt: this.#now + Math.max(0, delayMs), fn });
    return () => void this.#timers.delete(id);
  }

  /** Timers neither fired nor cancelled. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer due by then, earliest first (ties in the order
   * they were set), with now() reading each timer's own due time while it runs; timers set by a
   * firing timer also fire if they fall due within the window.
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: ms must be a finite number ≥ 0, got ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      let next: [number, { dueAt: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].dueAt <= target && (next === undefined || entry[1].dueAt < next[1].dueAt)) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].dueAt);
      next[1].fn();
    }
    this.#now = target;
  }
}

/** Retry delays for failed keys, with client-go's three-method shape. */
export interface RateLimiter {
  /** The delay before key's next retry, in ms; each call counts one more failure. */
  when(key: string): number;
  /** Ends key's retry chain: its next failure starts again from the first delay. */
  forget(key: string): void;
  /** Failures counted for key since it was last forgotten. */
  numRequeues(key: string): number;
}

export interface ExponentialRateLimiterOptions {
  /** The first delay; default 5 ms. */
  baseDelayMs?: number;
  /** The cap the doubling stops at; default 30 s. */
  maxDelayMs?: number;
}

/** Per-key exponential backoff: base, 2·base, 4·base … up to the cap (client-go's ItemExponentialFailureRateLimiter). */
export class ExponentialRateLimiter implements RateLimiter {
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly #failures = new Map<string, number>();

  constructor(options: ExponentialRateLimiterOptions = {}) {
    this.baseDelayMs = positiveMs(options.baseDelayMs ?? 5, 'baseDelayMs');
    this.maxDelayMs = positiveMs(options.maxDelayMs ?? 30_000, 'maxDelayMs');
    if (this.maxDelayMs < this.baseDelayMs) {
      throw new RangeError(`maxDelayMs (${this.maxDelayMs}) must be at least baseDelayMs (${this.baseDelayMs})`);
    }
  }

  when(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    // 2 ** n overflows to Infinity, never NaN, so the cap still holds for any count.
    return Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** failures);
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }
}

export interface WorkQueueOptions {
  /** Default: realClock. */
  clock?: Clock;
  /** Used by addRateLimited(); default: an ExponentialRateLimiter with its defaults (5 ms → 30 s). */
  rateLimiter?: RateLimiter;
}

/** Monotonic counts, for metrics. */
export interface QueueCounters {
  /** Times a key became dirty: queued now, or marked to run again after its current pass. */
  adds: number;
  /** add()/addAfter() calls absorbed because the key was already due as soon or sooner. */
  deduplicated: number;
  /** addRateLimited() calls: error retries. */
  retries: number;
}

interface Delayed {
  dueAt: number;
  cancel: () => void;
}

export class WorkQueue {
  readonly #clock: Clock;
  readonly #limiter: RateLimiter;
  /** Keys waiting to be handed out, in arrival order (an insertion-ordered Set is a FIFO without duplicates). */
  readonly #queue = new Set<string>();
  /** Keys that need a pass: the waiting ones, plus processing ones re-added during their pass. */
  readonly #dirty = new Set<string>();
  /** Keys handed out by get() and not yet done(). */
  readonly #processing = new Set<string>();
  /** Keys scheduled by addAfter(); at most one timer per key. */
  readonly #delayed = new Map<string, Delayed>();
  /** Pending get() calls, oldest first; non-empty only while the queue is empty. */
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #counters: QueueCounters = { adds: 0, deduplicated: 0, retries: 0 };
  #shuttingDown = false;
  #shutdown: Promise<void> | undefined;
  #resolveShutdown: () => void = () => {};

  constructor(options: WorkQueueOptions = {}) {
    this.#clock = options.clock ?? realClock;
    this.#limiter = options.rateLimiter ?? new ExponentialRateLimiter();
  }

  /** Queues key for a pass (see the rules at the top of this file). Ignored after shutdown(). */
  add(key: string): void {
    if (this.#shuttingDown) return;
    this.#cancelDelayed(key);
    if (this.#dirty.has(key)) {
      this.#counters.deduplicated++;
      return;
    }
    this.#dirty.add(key);
    this.#counters.adds++;
    if (this.#processing.has(key)) return; // done() queues it again
    this.#queue.add(key);
    this.#dispatch();
  }

  /** Queues key after delayMs; the earliest pending due time for a key wins. Ignored after shutdown(). */
  addAfter(key: string, delayMs: number): void {
    if (!Number.isFinite(delayMs)) throw new RangeError(`addAfter("${key}"): delayMs must be a finite number, got ${delayMs}`);
    if (this.#shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const dueAt = this.#clock.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (this.#dirty.has(key) || (pending !== undefined && pending.dueAt <= dueAt)) {
      this.#counters.deduplicated++;
      return;
    }
    pending?.cancel();
    const entry: Delayed = {
      dueAt,
      cancel: this.#clock.setTimer(() => {
        if (this.#delayed.get(key) !== entry) return; // superseded: a stale timer must not fire
        this.#delayed.delete(key);
        this.add(key);
      }, delayMs),
    };
    this.#delayed.set(key, entry);
  }

  /** addAfter(key, rateLimiter.when(key)): the retry of a failed pass, later each time until forget(key). */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#counters.retries++;
    this.addAfter(key, this.#limiter.when(key));
  }

  /** Ends key's retry chain (after a pass that succeeded or will not be retried). */
  forget(key: string): void {
    this.#limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#limiter.numRequeues(key);
  }

  /**
   * The next key, waiting if none is queued; the caller owns it until done(key). Resolves
   * `undefined` at once after shutdown(), even if keys were waiting: stopping starts no new work.
   */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Ends the pass over key; if it was added meanwhile, it is queued again. A key not in progress is ignored. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    if (this.#shuttingDown) {
      if (this.#processing.size === 0) this.#resolveShutdown();
      return;
    }
    if (this.#dirty.has(key)) {
      this.#queue.add(key);
      this.#dispatch();
    }
  }

  /**
   * Stops the queue: drops waiting keys, cancels timers, wakes every get() with `undefined`.
   * Idempotent; every call returns the same promise, which resolves once every key in progress
   * has been done().
   */
  shutdown(): Promise<void> {
    if (this.#shutdown) return this.#shutdown;
    this.#shuttingDown = true;
    for (const { cancel } of this.#delayed.values()) cancel();
    this.#delayed.clear();
    this.#queue.clear();
    this.#dirty.clear();
    for (const wake of this.#waiters.splice(0)) wake(undefined);
    this.#shutdown =
      this.#processing.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#resolveShutdown = resolve));
    return this.#shutdown;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Keys waiting to be handed out (the depth metric); not those in progress or on a timer. */
  len(): number {
    return this.#queue.size;
  }

  /** Keys handed out and not yet done. */
  inProgress(): number {
    return this.#processing.size;
  }

  /** Keys waiting on an addAfter() timer. */
  delayed(): number {
    return this.#delayed.size;
  }

  /** A snapshot of the counters. */
  get counters(): QueueCounters {
    return { ...this.#counters };
  }

  /** Moves the oldest waiting key to processing. */
  #take(): string | undefined {
    const first = this.#queue.values().next();
    if (first.done === true) return undefined;
    const key = first.value;
    this.#queue.delete(key);
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  /** Hands waiting keys to pending get() calls; a key moves to processing here, not when the caller resumes. */
  #dispatch(): void {
    while (this.#waiters.length > 0 && this.#queue.size > 0) {
      const wake = this.#waiters.shift();
      wake?.(this.#take());
    }
  }

  #cancelDelayed(key: string): void {
    const pending = this.#delayed.get(key);
    if (pending === undefined) return;
    pending.cancel();
    this.#delayed.delete(key);
  }
}

function positiveMs(value: number, field: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${field} must be a finite number of milliseconds > 0, got ${value}`);
  return value;
}
