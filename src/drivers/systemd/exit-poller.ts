// Every waitExit of the systemd driver, served by one poll loop: each round is ONE `systemctl show`
// of all the units someone waits on (systemd has no cheap per-unit push channel without a D-Bus
// client). The loop runs only while someone waits. A failed round rejects the waits of that round
// (the caller's watch retries, as for an engine that does not answer); a timeout of one call never
// stalls the loop beyond the runner's own timeout.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExitStatus, SystemdHandle } from '../driver.js';
import { exitStatusOf, isStopped, unknownExit } from './observe.js';
import type { ShownUnit } from './show.js';
import type { Systemctl } from './systemctl.js';
import { validateUnitName } from './unit-name.js';

interface Waiter {
  handle: SystemdHandle;
  resolve: (exit: ExitStatus) => void;
  reject: (error: unknown) => void;
}

export interface ExitPollerOptions {
  pollMs: number;
  now?: () => number;
}

export class ExitPoller {
  readonly #systemctl: Systemctl;
  readonly #pollMs: number;
  readonly #now: () => number;
  readonly #waiters = new Set<Waiter>();
  #running = false;
  readonly #closed = new AbortController();

  constructor(systemctl: Systemctl, options: ExitPollerOptions) {
    this.#systemctl = systemctl;
    this.#pollMs = options.pollMs;
    this.#now = options.now ?? Date.now;
  }

  /** Resolves when the handle's run is over (as SystemdDriver.waitExit); `signal` ends the wait with its reason. */
  wait(handle: SystemdHandle, signal?: AbortSignal): Promise<ExitStatus> {
    validateUnitName(handle.unit);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed.signal.aborted) return Promise.reject(new Error('the systemd driver is closed'));
    return new Promise<ExitStatus>((resolve, reject) => {
      const onAbort = (): void => {
        this.#waiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        handle,
        resolve: (exit) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(exit);
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
      if (!this.#running) void this.#loop();
    });
  }

  /** Rejects every wait and stops the loop. */
  close(): void {
    this.#closed.abort(new Error('the systemd driver is closed'));
    for (const waiter of this.#waiters) waiter.reject(this.#closed.signal.reason);
    this.#waiters.clear();
  }

  /** How many waits are open (tests). */
  get waiting(): number {
    return this.#waiters.size;
  }

  async #loop(): Promise<void> {
    this.#running = true;
    try {
      while (this.#waiters.size > 0 && !this.#closed.signal.aborted) {
        const round = [...this.#waiters];
        let states: Map<string, ShownUnit>;
        try {
          states = await this.#systemctl.showUnits(
            round.map((w) => w.handle.unit),
            { signal: this.#closed.signal },
          );
        } catch (error) {
          for (const waiter of round) {
            if (this.#waiters.delete(waiter)) waiter.reject(error);
          }
          continue;
        }
        const now = this.#now();
        for (const waiter of round) {
          const exit = exitOf(states.get(waiter.handle.unit), waiter.handle, now);
          if (exit && this.#waiters.delete(waiter)) waiter.resolve(exit);
        }
        if (this.#waiters.size > 0) await sleep(this.#pollMs, undefined, { signal: this.#closed.signal }).catch(() => undefined);
      }
    } finally {
      this.#running = false;
    }
  }
}

/** The run's end when it is over (stopped, gone, or replaced by another run), else undefined. */
function exitOf(state: ShownUnit | undefined, handle: SystemdHandle, now: number): ExitStatus | undefined {
  if (!state?.found) return unknownExit(now);
  if (handle.invocationId !== undefined && state.invocationId !== undefined && state.invocationId !== handle.invocationId) return unknownExit(now);
  return isStopped(state) ? exitStatusOf(state, now) : undefined;
}
