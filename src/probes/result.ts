// One shape for every probe outcome, success or failure, so callers never branch on the kind.

export interface ProbeResult {
  ok: boolean;
  /** Short and human: "HTTP 200", "connect ECONNREFUSED 127.0.0.1:8080", "timed out after 1s". */
  message: string;
  durationMs: number;
}

export type Settle = (ok: boolean, message: string) => void;
/** Releases what an attempt holds (sockets, child processes); may wait for them to close. */
export type Cleanup = () => void | Promise<void>;

/**
 * Runs one probe attempt under a timeout and an abort signal. `body` starts the work and calls
 * `settle` once; the first settle wins (outcome, timeout or abort), the timer and abort listener
 * are removed, and the promise resolves only after `body`'s cleanup has run, so nothing is left
 * open on any path. Never rejects.
 */
export function attempt(timeoutSeconds: number, signal: AbortSignal | undefined, body: (settle: Settle) => Cleanup): Promise<ProbeResult> {
  const started = performance.now();
  return new Promise<ProbeResult>((resolve) => {
    if (signal?.aborted) {
      resolve({ ok: false, message: 'aborted', durationMs: 0 });
      return;
    }
    let settled = false;
    let cleanup: Cleanup | undefined;
    const settle: Settle = (ok, message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const durationMs = Math.round(performance.now() - started);
      // Deferred: when body settles synchronously, its cleanup is assigned before this runs.
      void Promise.resolve()
        .then(() => cleanup?.())
        .catch(() => undefined)
        .then(() => resolve({ ok, message, durationMs }));
    };
    const onAbort = (): void => settle(false, 'aborted');
    const timer = setTimeout(() => settle(false, `timed out after ${timeoutSeconds}s`), Math.max(1, timeoutSeconds * 1000));
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      cleanup = body(settle);
    } catch (err) {
      settle(false, errorMessage(err));
    }
  });
}

/** Node's error text, including the AggregateError of a dual-stack connect (whose message is empty). */
export function errorMessage(err: unknown): string {
  if (err instanceof AggregateError) {
    const inner = err.errors.map((e: unknown) => errorMessage(e)).filter(Boolean);
    if (inner.length > 0) return [...new Set(inner)].join('; ');
  }
  if (err instanceof Error) return err.message || (err as NodeJS.ErrnoException).code || err.name;
  return String(err);
}
