// Recent events, kept in memory for `pm get NAME` and the API (like `kubectl describe`'s events):
// a bounded ring per process and one for the daemon, so a crash-looping process cannot push the
// others' history out, and memory stays flat however long the daemon runs. The durable history
// is the audit log.
import type { DaemonEvent } from './api.js';

const PER_PROCESS = 50;
const DAEMON_WIDE = 100;

export class EventLog {
  readonly #byProcess = new Map<string, DaemonEvent[]>();
  readonly #daemon: DaemonEvent[] = [];
  readonly #listeners = new Set<(event: DaemonEvent) => void>();
  /** The order events were added in: ties of equal time keep it across rings. */
  readonly #order = new WeakMap<DaemonEvent, number>();
  #added = 0;

  /**
   * `daemonWide` keeps an event about a process in the daemon's ring: for the last word on a
   * process that is gone (Deleted), so its own ring can be dropped.
   */
  add(event: DaemonEvent, options: { daemonWide?: boolean } = {}): void {
    const wide = event.process === undefined || options.daemonWide === true;
    const ring = wide ? this.#daemon : this.#ring(event.process as string);
    this.#order.set(event, this.#added++);
    ring.push(event);
    if (ring.length > (wide ? DAEMON_WIDE : PER_PROCESS)) ring.shift();
    for (const listener of this.#listeners) listener(event);
  }

  /** Newest last. Without a process: every event, merged by time. */
  list(process?: string, limit = 100): DaemonEvent[] {
    if (!(limit > 0)) return [];
    const events =
      process !== undefined
        ? this.#byTime([...(this.#byProcess.get(process) ?? []), ...this.#daemon.filter((e) => e.process === process)])
        : this.#byTime([...this.#daemon, ...[...this.#byProcess.values()].flat()]);
    return events.slice(-limit);
  }

  #byTime(events: DaemonEvent[]): DaemonEvent[] {
    const order = (e: DaemonEvent): number => this.#order.get(e) ?? 0;
    return events.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : order(a) - order(b)));
  }

  /** Drops a deleted process's events. */
  forget(process: string): void {
    this.#byProcess.delete(process);
  }

  /** For metrics and notifications; returns the unsubscribe function. */
  subscribe(listener: (event: DaemonEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #ring(process: string): DaemonEvent[] {
    let ring = this.#byProcess.get(process);
    if (!ring) this.#byProcess.set(process, (ring = []));
    return ring;
  }
}

