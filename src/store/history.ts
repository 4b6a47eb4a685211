// Per-process history: the facts of each process's life (starts, exits with their codes, stops,
// restarts, circuit-breaker transitions, flags handled) as structured entries, where events are
// sentences for people. The daemon appends them to STATE/history.jsonl (the spool) and, with a
// database, the Shipper forwards them to pm.history; `pm history NAME` reads either.

export const HISTORY_SPOOL_FILE = 'history.jsonl';

export type HistoryKind = 'start' | 'exit' | 'stop' | 'restart' | 'breaker' | 'flag';
export const HISTORY_KINDS: readonly HistoryKind[] = ['start', 'exit', 'stop', 'restart', 'breaker', 'flag'];

/** Flat JSON values only: a detail is one row's jsonb, and one line in a table. */
export type HistoryValue = string | number | boolean | null;

export interface HistoryEntry {
  /** ISO time. */
  time: string;
  process: string;
  kind: HistoryKind;
  /**
   * start: result ok|failed, pid, reason, trial, error · exit: code, signal, known, verdict,
   * restart (whether the policy restarts it), ranMs · stop: reason, code, signal, known ·
   * restart: strategy stop-start|script, reason, result, error · breaker: from, to, reason,
   * failures · flag: flag (row id), action, requestedBy, result, message.
   */
  detail: Record<string, HistoryValue>;
}

/** Fan-out of history entries to whoever records them (the spool); synchronous, never throws back. */
export class HistoryFeed {
  readonly #listeners = new Set<(entry: HistoryEntry) => void>();

  record(entry: HistoryEntry): void {
    for (const listener of this.#listeners) listener(entry);
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: (entry: HistoryEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export function isHistoryEntry(value: unknown): value is HistoryEntry {
  const e = value as Partial<HistoryEntry> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.time === 'string' &&
    typeof e.process === 'string' &&
    typeof e.kind === 'string' &&
    typeof e.detail === 'object' &&
    e.detail !== null &&
    !Array.isArray(e.detail)
  );
}

/** Keys shown first, in this order; jsonb keeps its own order, so the file and the table print alike. */
const KEY_ORDER = ['flag', 'action', 'requestedBy', 'result', 'strategy', 'code', 'signal', 'known', 'verdict', 'restart', 'ranMs', 'pid', 'trial', 'from', 'to', 'failures', 'retryAt', 'reason', 'message', 'error'];

/** `code=1 signal=null restart=true`: a detail on one line, the known keys first in a fixed order. */
export function formatDetail(detail: Record<string, HistoryValue>): string {
  const rank = (key: string): number => {
    const i = KEY_ORDER.indexOf(key);
    return i === -1 ? KEY_ORDER.length : i;
  };
  return Object.entries(detail)
    .sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${typeof value === 'string' && /[\s"=]/.test(value) ? JSON.stringify(value) : String(value)}`)
    .join(' ');
}
