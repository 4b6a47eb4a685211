/**
 * Runs at most `concurrency` of the returned wrapper's calls at once; the rest wait and start in
 * call order. A finishing task hands its slot straight to the oldest waiter, so a call that
 * arrives in between can never take it (which would both exceed the bound and jump the queue).
 */
export function limitConcurrency(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  if (!(concurrency >= 1)) throw new RangeError(`limitConcurrency: concurrency must be at least 1, got ${concurrency}`);
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    // The slot passes to `next` as it is: `active` stays the same.
    if (next) next();
    else active--;
  };
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active < concurrency) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      release();
    }
  };
}
