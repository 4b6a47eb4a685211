// The engine's event stream, narrowed to this pm's containers. Events only wake the caller up:
// they say "look at container X again", and the caller re-reads state (inspect), so a lost or
// repeated event costs a look, never a wrong decision.
//
// The stream is NDJSON (one JSON object per line, flushed per event). It ends when the engine
// restarts; it is then opened again after a backoff, with `since` just after the last event seen,
// so the engine replays what happened in between from its in-memory buffer (the last 256 events;
// after an engine restart that buffer is empty: re-list on 'connected').
import { setTimeout as sleep } from 'node:timers/promises';
import type { Engine } from './engine.js';
import { Label, ownerFilter } from './labels.js';

export const WATCHED_ACTIONS = ['start', 'die', 'oom', 'health_status', 'destroy'] as const;
export type DockerEventAction = (typeof WATCHED_ACTIONS)[number];

export interface DockerEvent {
  action: DockerEventAction;
  /** Full container id. */
  id: string;
  /** pm.process and pm.instance of the container, when it carries them. */
  process?: string;
  instance?: string;
  /** die: the exit code as the engine reported it (128+n after signal n). */
  exitCode?: number;
  /** health_status: the new status. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  /** Epoch ms. */
  time: number;
  /** The engine's nanosecond timestamp, for `since` on reconnect. */
  timeNano: bigint;
}

export type ConnectionState = { state: 'connected' } | { state: 'disconnected'; error?: unknown; retryInMs: number };

export interface WatchOptions {
  /** Told when the stream opens (re-read all state then: events may have been missed) and when it drops. */
  onConnection?: (change: ConnectionState) => void;
  /** Backoff between reconnects: first delay and cap, ms. */
  backoff?: { initialMs: number; maxMs: number };
}

const DEFAULT_BACKOFF = { initialMs: 100, maxMs: 5_000 };

/**
 * Streams this owner's container events to `onEvent` until `signal` aborts, reconnecting as
 * described above. Resolves once aborted; never rejects for a dropped stream. `onEvent` must not
 * throw: an exception drops the connection like an engine restart (and that event is not repeated).
 */
export async function watchEvents(engine: Engine, owner: string, onEvent: (event: DockerEvent) => void, signal: AbortSignal, options: WatchOptions = {}): Promise<void> {
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const filters = { type: ['container'], label: ownerFilter(owner), event: [...WATCHED_ACTIONS] };
  let lastNano: bigint | undefined;
  let delay = backoff.initialMs;
  while (!signal.aborted) {
    let failure: unknown;
    try {
      // The first connection wants only new events; a reconnect wants what it missed.
      const since = lastNano === undefined ? undefined : formatSince(lastNano + 1n);
      const response = await engine.openEvents({ filters, ...(since !== undefined && { since }) }, signal);
      const connectedAt = BigInt(Date.now()) * 1_000_000n;
      lastNano ??= connectedAt;
      options.onConnection?.({ state: 'connected' });
      delay = backoff.initialMs;
      const lines = new LineSplitter();
      response.setEncoding('utf8');
      const onAbort = (): void => void response.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of response as AsyncIterable<string>) {
          for (const line of lines.push(chunk)) {
            const event = parseEvent(line);
            if (!event) continue;
            if (event.timeNano > lastNano) lastNano = event.timeNano;
            onEvent(event);
          }
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (error) {
      failure = error;
    }
    if (signal.aborted) break;
    options.onConnection?.({ state: 'disconnected', ...(failure !== undefined && { error: failure }), retryInMs: delay });
    try {
      await sleep(delay, undefined, { signal });
    } catch {
      break;
    }
    delay = nextDelay(delay, backoff.maxMs);
  }
}

/** Doubling to a cap. */
export function nextDelay(previousMs: number, maxMs: number): number {
  return Math.min(maxMs, Math.max(1, previousMs * 2));
}

/** `seconds.nanoseconds`, the form the engine's `since` takes at full precision. */
export function formatSince(nano: bigint): string {
  const seconds = nano / 1_000_000_000n;
  const rest = nano % 1_000_000_000n;
  return `${seconds}.${rest.toString().padStart(9, '0')}`;
}

/** Splits a text stream into complete lines, keeping the unfinished tail for the next chunk. */
export class LineSplitter {
  #tail = '';

  push(chunk: string): string[] {
    const parts = (this.#tail + chunk).split('\n');
    this.#tail = parts.pop() ?? '';
    return parts.map((line) => line.trim()).filter((line) => line !== '');
  }
}

/**
 * One event line, or undefined when it is not JSON or not a watched container event. Reads only
 * the fields it knows: Type, Action, Actor.ID, time(Nano), and from Attributes pm's labels and the
 * die event's exitCode (a string of digits; user labels that could shadow it are refused at start,
 * and anything else in that attribute is ignored).
 */
export function parseEvent(line: string): DockerEvent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!raw || typeof raw !== 'object') return undefined;
  const { Type, Action, Actor, time, timeNano } = raw as { Type?: unknown; Action?: unknown; Actor?: unknown; time?: unknown; timeNano?: unknown };
  if (Type !== 'container' || typeof Action !== 'string') return undefined;
  const id = (Actor as { ID?: unknown } | undefined)?.ID;
  if (typeof id !== 'string' || id === '') return undefined;
  const attributes = (Actor as { Attributes?: unknown }).Attributes;
  const attr = (key: string): string | undefined => {
    const value = attributes && typeof attributes === 'object' ? (attributes as Record<string, unknown>)[key] : undefined;
    return typeof value === 'string' ? value : undefined;
  };
  // "health_status: healthy" carries its status after the colon.
  const [verb, detail] = Action.split(/:\s*/, 2) as [string, string | undefined];
  if (!(WATCHED_ACTIONS as readonly string[]).includes(verb)) return undefined;
  // timeNano exceeds 2^53: JSON.parse rounds it, so its digits are taken from the line itself (the
  // last match: the engine writes it last, and a label cannot hold an unquoted number).
  const digits = typeof timeNano === 'number' ? [...line.matchAll(/"timeNano"\s*:\s*(\d+)/g)].pop()?.[1] : undefined;
  const nano = digits !== undefined ? BigInt(digits) : typeof time === 'number' && Number.isFinite(time) ? BigInt(Math.trunc(time)) * 1_000_000_000n : 0n;
  const event: DockerEvent = { action: verb as DockerEventAction, id, time: Number(nano / 1_000_000n), timeNano: nano };
  const process = attr(Label.process);
  const instance = attr(Label.instance);
  if (process !== undefined) event.process = process;
  if (instance !== undefined) event.instance = instance;
  const exitCode = attr('exitCode');
  if (verb === 'die' && exitCode !== undefined && /^\d{1,3}$/.test(exitCode)) event.exitCode = Number(exitCode);
  if (verb === 'health_status' && (detail === 'starting' || detail === 'healthy' || detail === 'unhealthy')) event.health = detail;
  return event;
}
