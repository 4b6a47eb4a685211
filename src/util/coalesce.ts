// Sharing one run of an expensive read among the calls that want it at about the same time.

/**
 * Wraps `run` so that concurrent calls share runs. A call made while nothing runs starts a run. A
 * call made while a run is in flight waits for the next one (the running one may have begun too
 * early to see what the caller has just done), and every call made meanwhile shares that next run:
 * at most one run in flight and one queued, whatever the number of callers.
 */
export function coalesced<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  let queued: Promise<T> | undefined;
  const start = (): Promise<T> => {
    const current: Promise<T> = run().finally(() => {
      if (running === current) running = undefined;
    });
    running = current;
    return current;
  };
  return () => {
    if (queued) return queued;
    if (!running) return start();
    queued = running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}
