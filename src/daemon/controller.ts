// The daemon's reconcile loop, after controller-runtime's controller: N workers take keys from the
// work queue and call reconcile(key, signal). The key carries no event, so reconcile re-reads
// state; one switch maps each outcome to its queue call and its counter label.
import { WorkQueue } from './queue.js';

/** Thrown by reconcile for a failure that retrying cannot fix: reported and counted, never retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface ReconcileResult {
  /** Run this key again after this many ms (e.g. when a backoff gate opens); 0 or absent: no requeue. */
  requeueAfterMs?: number;
}

/** Converges one key; the signal aborts when the controller stops. A throw is retried with backoff. */
export type Reconcile = (key: string, signal: AbortSignal) => Promise<ReconcileResult>;

/**
 * 'created' → start() → 'running' → stop() → 'stopping' (no new reconciles; in-flight ones
 * finish) → 'stopped'. stop() on a controller never started goes straight to 'stopped'.
 * A controller runs once: its queue is shut down when it stops.
 */
export type ControllerState = 'created' | 'running' | 'stopping' | 'stopped';

/** How a reconcile ended; each kind is one counter label. */
export type ReconcileOutcome = 'success' | 'error' | 'terminal' | 'requeue';

export interface ControllerCounters {
  reconciles: Record<ReconcileOutcome, number>;
}

export interface ControllerOptions {
  reconcile: Reconcile;
  /** Called for every failed reconcile, retried or terminal; a throw from it is ignored. */
  onError: (key: string, error: unknown) => void;
  /** The queue triggers add keys to; default a new WorkQueue. The controller shuts it down on stop(). */
  queue?: WorkQueue;
  /** Keys reconciled in parallel (never the same key twice at once); default 1. */
  workers?: number;
}

type Outcome =
  | { kind: 'success' }
  | { kind: 'requeue'; afterMs: number }
  | { kind: 'error'; error: unknown }
  | { kind: 'terminal'; error: unknown };

export class Controller {
  readonly queue: WorkQueue;
  readonly workers: number;
  readonly #reconcile: Reconcile;
  readonly #onError: (key: string, error: unknown) => void;
  readonly #abort = new AbortController();
  /** Every label starts at 0, so a metric exists before its first event. */
  readonly #counters: ControllerCounters = { reconciles: { success: 0, error: 0, terminal: 0, requeue: 0 } };
  #state: ControllerState = 'created';
  #loops: Promise<void>[] = [];
  #stopped: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be an integer of at least 1, got ${workers}`);
    this.workers = workers;
    this.queue = options.queue ?? new WorkQueue();
    this.#reconcile = options.reconcile;
    this.#onError = options.onError;
  }

  get state(): ControllerState {
    return this.#state;
  }

  /** A snapshot of the counters, for a metrics module. */
  get counters(): ControllerCounters {
    return { reconciles: { ...this.#counters.reconciles } };
  }

  /** Starts the workers. Only from 'created': a stopped controller's queue is shut down for good. */
  start(): void {
    if (this.#state !== 'created') throw new Error(`controller: start() in state '${this.#state}'; a controller starts once`);
    this.#state = 'running';
    this.#loops = Array.from({ length: this.workers }, () => this.#work());
  }

  /**
   * Aborts the reconcile signal, shuts the queue down (waiting keys are dropped: a level-triggered
   * restart resyncs them) and resolves once in-flight reconciles have finished. Idempotent: every
   * call returns the same promise.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    if (this.#state === 'created') {
      this.#state = 'stopped';
      await this.queue.shutdown();
      return;
    }
    this.#state = 'stopping';
    this.#abort.abort(new Error('controller stopping'));
    await Promise.all([this.queue.shutdown(), ...this.#loops]);
    this.#state = 'stopped';
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        // A key handed out just as stop() began: start no new work.
        if (this.#abort.signal.aborted) continue;
        this.#settle(key, await this.#run(key));
      } finally {
        this.queue.done(key);
      }
    }
  }

  async #run(key: string): Promise<Outcome> {
    try {
      const after = (await this.#reconcile(key, this.#abort.signal))?.requeueAfterMs;
      if (after === undefined || after === 0) return { kind: 'success' };
      if (typeof after === 'number' && Number.isFinite(after) && after > 0) return { kind: 'requeue', afterMs: after };
      const message = `reconcile("${key}") returned requeueAfterMs ${String(after)}; expected a finite number of ms ≥ 0`;
      return { kind: 'terminal', error: new TerminalError(message) };
    } catch (error) {
      return error instanceof TerminalError ? { kind: 'terminal', error } : { kind: 'error', error };
    }
  }

  /** The one place an outcome becomes queue calls and a counter label. Runs before done(key). */
  #settle(key: string, outcome: Outcome): void {
    switch (outcome.kind) {
      case 'error':
        this.queue.addRateLimited(key);
        this.#report(key, outcome.error);
        break;
      case 'terminal':
        // Not retried; the retry chain ends, so the next failure backs off from the start.
        this.queue.forget(key);
        this.#report(key, outcome.error);
        break;
      case 'requeue':
        this.queue.forget(key);
        this.queue.addAfter(key, outcome.afterMs);
        break;
      case 'success':
        this.queue.forget(key);
        break;
    }
    this.#counters.reconciles[outcome.kind]++;
  }

  #report(key: string, error: unknown): void {
    try {
      this.#onError(key, error);
    } catch {
      // A broken reporter must not kill a worker; the counters still record the failure.
    }
  }
}
