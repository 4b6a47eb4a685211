// Every waitExit of the docker driver, served by ONE event stream from the engine instead of one
// wait connection per running container. An event only says "look at container X again"
// (events.ts): the exit itself is read with inspect, so a lost or repeated event costs a look,
// never a wrong exit. Events missed while the stream was away are covered by looking at every
// waited-on container each time it (re)connects.
//
// While the stream is down, the waits are rejected with the reason: the caller's exit watch retries
// and holds the process not ready meanwhile (an engine restarting must not leave a container
// unwatched, nor reported ready on faith). The stream runs only while someone waits.
import type { DockerHandle, ExitStatus } from '../driver.js';
import { DockerError, DockerErrorCode } from './errors.js';
import type { ConnectionState, DockerEvent, WatchOptions } from './events.js';

/** What the exit watch needs of the driver. */
export interface ExitSource {
  /** The handle's run's exit when it is over (or replaced, or gone), else undefined. */
  exitIfOver(handle: DockerHandle, signal?: AbortSignal): Promise<ExitStatus | undefined>;
  watchEvents(onEvent: (event: DockerEvent) => void, signal: AbortSignal, options?: WatchOptions): Promise<void>;
}

interface Waiter {
  handle: DockerHandle;
  resolve: (exit: ExitStatus) => void;
  reject: (error: unknown) => void;
}

/** Events after which a container's run may be over: it died, was removed, or was started again by someone. */
const RELEVANT = new Set(['die', 'destroy', 'start']);

export class ContainerExitWatch {
  readonly #source: ExitSource;
  readonly #options: WatchOptions;
  readonly #waiters = new Map<string, Set<Waiter>>();
  #stream: AbortController | undefined;
  #closed = false;

  constructor(source: ExitSource, options: WatchOptions = {}) {
    this.#source = source;
    this.#options = options;
  }

  /** Resolves with the exit of the handle's run; `signal` ends the wait with its reason. */
  wait(handle: DockerHandle, signal?: AbortSignal): Promise<ExitStatus> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(closedError());
    return new Promise<ExitStatus>((resolve, reject) => {
      const onAbort = (): void => {
        this.#remove(waiter);
        reject(signal?.reason);
      };
      const settle = (): void => {
        signal?.removeEventListener('abort', onAbort);
        this.#remove(waiter);
      };
      const waiter: Waiter = {
        handle,
        resolve: (exit) => {
          settle();
          resolve(exit);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let set = this.#waiters.get(handle.id);
      if (!set) this.#waiters.set(handle.id, (set = new Set()));
      set.add(waiter);
      this.#ensureStream();
      // Registered first, looked at second: an exit in between is either seen here or by an event.
      this.#check(waiter);
    });
  }

  /** Open waits (tests). */
  get waiting(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  /** Rejects every wait and ends the stream. */
  close(): void {
    this.#closed = true;
    this.#stream?.abort();
    this.#stream = undefined;
    for (const waiter of this.#all()) waiter.reject(closedError());
  }

  #ensureStream(): void {
    if (this.#stream) return;
    const stream = new AbortController();
    this.#stream = stream;
    const current = (): boolean => this.#stream === stream;
    void this.#source
      .watchEvents(
        (event) => {
          if (!current() || !RELEVANT.has(event.action)) return;
          for (const waiter of this.#waiters.get(event.id) ?? []) this.#check(waiter);
        },
        stream.signal,
        {
          ...this.#options,
          onConnection: (change: ConnectionState) => {
            if (!current()) return;
            if (change.state === 'connected') {
              for (const waiter of this.#all()) this.#check(waiter);
              return;
            }
            const reason = change.error instanceof Error ? change.error : new DockerError(DockerErrorCode.unreachable, 'the Docker Engine\'s event stream ended', { hint: 'is dockerd restarting? pm looks again when it answers' });
            for (const waiter of this.#all()) waiter.reject(reason);
          },
        },
      )
      .catch(() => undefined);
  }

  #check(waiter: Waiter): void {
    this.#source.exitIfOver(waiter.handle).then(
      (exit) => {
        if (exit) waiter.resolve(exit);
      },
      (error: unknown) => waiter.reject(error),
    );
  }

  #remove(waiter: Waiter): void {
    const set = this.#waiters.get(waiter.handle.id);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.#waiters.delete(waiter.handle.id);
    if (this.#waiters.size === 0 && this.#stream) {
      // Nobody waits: the stream ends until the next wait.
      this.#stream.abort();
      this.#stream = undefined;
    }
  }

  #all(): Waiter[] {
    return [...this.#waiters.values()].flatMap((set) => [...set]);
  }
}

function closedError(): Error {
  return new Error('the docker driver is closed');
}
