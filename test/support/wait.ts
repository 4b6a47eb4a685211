// Poll-until with a deadline: the only way tests wait for real processes. No fixed sleeps.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Shown when the deadline passes, to say what was awaited. */
  message?: string;
}

/** Resolves once `predicate` returns true; rejects when timeoutMs (default 10 s) passes first. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const { timeoutMs = 10_000, intervalMs = 10, message = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() >= deadline) throw new Error(`waitFor: ${message} not met within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/** Like waitFor, for a value: resolves with the first result that is not undefined. */
export async function waitForValue<T>(read: () => T | undefined | Promise<T | undefined>, options: WaitOptions = {}): Promise<T> {
  let value: T | undefined;
  await waitFor(async () => (value = await read()) !== undefined, options);
  return value as T;
}
