// A worker per probe, after the kubelet prober: it turns a stream of single results into a status
// with thresholds. It owns no timer — tick() is called by runProbeLoop (or directly by tests).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Probe } from '../manifest/types.js';
import { errorMessage, type ProbeResult } from './result.js';

export const ProbeKind = { startup: 'startup', readiness: 'readiness', liveness: 'liveness' } as const;
export type ProbeKind = (typeof ProbeKind)[keyof typeof ProbeKind];

/** 'unknown' only before a startup probe has reached either threshold. */
export type ProbeStatus = 'unknown' | 'success' | 'failure';

/** What one tick produced, as handed to runProbeLoop's onResult. */
export interface ProbeUpdate {
  kind: ProbeKind;
  status: ProbeStatus;
  /** True when this tick flipped the status. */
  changed: boolean;
  result: ProbeResult;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
}

/** Readiness starts failed (not ready until proven), liveness healthy, startup undecided. */
export function initialStatus(kind: ProbeKind): ProbeStatus {
  switch (kind) {
    case 'readiness':
      return 'failure';
    case 'liveness':
      return 'success';
    case 'startup':
      return 'unknown';
  }
}

export class ProbeWorker {
  readonly kind: ProbeKind;
  readonly #successThreshold: number;
  readonly #failureThreshold: number;
  readonly #run: () => Promise<ProbeResult>;
  #status: ProbeStatus;
  #lastResult: ProbeResult | undefined;
  #consecutiveSuccesses = 0;
  #consecutiveFailures = 0;
  #changed = false;

  constructor(kind: ProbeKind, probe: Pick<Probe, 'successThreshold' | 'failureThreshold'>, run: () => Promise<ProbeResult>) {
    this.kind = kind;
    this.#successThreshold = positiveInteger(probe.successThreshold, 'successThreshold');
    this.#failureThreshold = positiveInteger(probe.failureThreshold, 'failureThreshold');
    this.#run = run;
    this.#status = initialStatus(kind);
  }

  get status(): ProbeStatus {
    return this.#status;
  }
  get lastResult(): ProbeResult | undefined {
    return this.#lastResult;
  }
  get consecutiveSuccesses(): number {
    return this.#consecutiveSuccesses;
  }
  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }
  /** True when the last tick flipped the status. */
  get changed(): boolean {
    return this.#changed;
  }

  /** Runs the probe once and applies the thresholds; `changed` then tells whether the status flipped. */
  async tick(): Promise<ProbeStatus> {
    let result: ProbeResult;
    try {
      result = await this.#run();
    } catch (err) {
      // A runner that throws is a failed probe, not a broken worker.
      result = { ok: false, message: errorMessage(err), durationMs: 0 };
    }
    return this.record(result).status;
  }

  /**
   * Applies one result: the status becomes success after successThreshold consecutive successes
   * and failure after failureThreshold consecutive failures; in between it holds.
   */
  record(result: ProbeResult): ProbeUpdate {
    this.#lastResult = result;
    if (result.ok) {
      this.#consecutiveSuccesses += 1;
      this.#consecutiveFailures = 0;
    } else {
      this.#consecutiveFailures += 1;
      this.#consecutiveSuccesses = 0;
    }
    const before = this.#status;
    if (result.ok && this.#consecutiveSuccesses >= this.#successThreshold) this.#status = 'success';
    if (!result.ok && this.#consecutiveFailures >= this.#failureThreshold) this.#status = 'failure';
    this.#changed = this.#status !== before;
    return this.snapshot();
  }

  /** The state after the last tick (before any tick, `result` says "not probed yet"). */
  snapshot(): ProbeUpdate {
    return {
      kind: this.kind,
      status: this.#status,
      changed: this.#changed,
      result: this.#lastResult ?? { ok: false, message: 'not probed yet', durationMs: 0 },
      consecutiveSuccesses: this.#consecutiveSuccesses,
      consecutiveFailures: this.#consecutiveFailures,
    };
  }

  /** Back to the initial state: for a new instance of the process (e.g. after a liveness restart). */
  reset(): void {
    this.#status = initialStatus(this.kind);
    this.#lastResult = undefined;
    this.#consecutiveSuccesses = 0;
    this.#consecutiveFailures = 0;
    this.#changed = false;
  }
}

export interface ProbeLoopOptions {
  signal: AbortSignal;
  /** Called after every tick; a throw ends the loop with that error. */
  onResult: (update: ProbeUpdate) => void;
}

/**
 * Schedules a worker: waits initialDelaySeconds, then ticks every periodSeconds (measured from the
 * start of each tick; a tick that overruns is followed at once) until the signal aborts. A startup
 * probe stops once it has succeeded, as in Kubernetes. Resolves on abort; no timer outlives it.
 */
export async function runProbeLoop(
  worker: ProbeWorker,
  probe: Pick<Probe, 'initialDelaySeconds' | 'periodSeconds'>,
  { signal, onResult }: ProbeLoopOptions,
): Promise<void> {
  if (!(await pause(probe.initialDelaySeconds * 1000, signal))) return;
  while (!signal.aborted) {
    const started = Date.now();
    await worker.tick();
    if (signal.aborted) return;
    onResult(worker.snapshot());
    if (worker.kind === 'startup' && worker.status === 'success') return;
    const wait = probe.periodSeconds * 1000 - (Date.now() - started);
    if (!(await pause(wait, signal))) return;
  }
}

/** Sleeps; false when the signal aborted instead. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (ms <= 0) return true;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch (err) {
    if (signal.aborted) return false;
    throw err;
  }
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${field} must be an integer of at least 1, got ${value}`);
  return value;
}
