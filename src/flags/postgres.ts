// Flags from PostgreSQL: any system asks for a restart, pause, resume or reset of a process by
// inserting a row into pm.flags; a trigger NOTIFYs pm_flags and the daemon handles the row at once,
// marking it handled with its result. A poll every flagPollSeconds, and a drain after every
// (re)connect of the listener, catch whatever a notification missed. Rows are claimed with
// FOR UPDATE SKIP LOCKED, so several daemons never handle one row twice; a bad row (unknown process,
// unknown action) is marked `ignored` with the reason and never blocks the others.
import type pg from 'pg';
import type { ControlVerb } from '../daemon/api.js';
import { NotFoundError } from '../errors.js';

export interface FlagRow {
  id: string;
  process: string;
  action: string;
  requested_by: string;
  requested_at: Date;
}

export type FlagOutcome = { result: 'ok' | 'ignored' | 'failed'; message: string };

/** What the flag source needs of the database (src/db/connection.ts's Database). */
export interface FlagDatabase {
  transaction<T>(fn: (client: pg.ClientBase) => Promise<T>): Promise<T>;
  listen(channel: string, onNotify: (payload: string) => void, onConnected: () => void): void;
}

export interface FlagSourceOptions {
  /** Carries out one valid flag; throws NotFoundError for a process pm does not manage. */
  handle: (verb: ControlVerb, process: string, actor: string) => Promise<{ message: string }>;
  pollSeconds: number;
  /** Told about every row handled, for events and logs. */
  report: (row: FlagRow, outcome: FlagOutcome) => void;
  /** A drain that failed (the database went away): reported once per failure, retried by the next trigger. */
  onError: (error: unknown) => void;
}

export const FLAG_CHANNEL = 'pm_flags';
const VERBS: readonly ControlVerb[] = ['restart', 'pause', 'resume', 'reset'];
/** Rows claimed per transaction: a flood of flags is worked through in bounded steps. */
const BATCH = 100;

export class PostgresFlags {
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(
    private readonly db: FlagDatabase,
    private readonly options: FlagSourceOptions,
  ) {}

  start(): void {
    this.db.listen(FLAG_CHANNEL, () => this.kick(), () => this.kick());
    this.#timer = setInterval(() => this.kick(), this.options.pollSeconds * 1000);
    this.#timer.unref();
    this.kick();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    return this.#draining ?? Promise.resolve();
  }

  /** Drains pending rows; triggers during a drain coalesce into one more drain after it. */
  kick(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (this.#draining) {
      this.#again = true;
      return this.#draining;
    }
    this.#draining = (async () => {
      try {
        do {
          this.#again = false;
          while (!this.#stopped && (await this.#drainBatch()) === BATCH);
        } while (this.#again && !this.#stopped);
      } catch (error) {
        this.options.onError(error);
      } finally {
        this.#draining = undefined;
      }
    })();
    return this.#draining;
  }

  /** One transaction: claim up to BATCH pending rows, handle each, mark each handled. Returns how many. */
  async #drainBatch(): Promise<number> {
    return this.db.transaction(async (client) => {
      const { rows } = await client.query<FlagRow>(
        `SELECT id::text AS id, process, action, requested_by, requested_at
           FROM pm.flags WHERE handled_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [BATCH],
      );
      for (const row of rows) {
        const outcome = await this.#handle(row);
        await client.query('UPDATE pm.flags SET handled_at = now(), result = $2, message = $3 WHERE id = $1', [row.id, outcome.result, outcome.message]);
        this.options.report(row, outcome);
      }
      return rows.length;
    });
  }

  async #handle(row: FlagRow): Promise<FlagOutcome> {
    const verb = row.action.trim().toLowerCase() as ControlVerb;
    if (!VERBS.includes(verb)) return { result: 'ignored', message: `unknown action "${clip(row.action)}": pm knows ${VERBS.join(', ')}` };
    try {
      const done = await this.options.handle(verb, row.process, `${clip(row.requested_by)} (database flag ${row.id})`);
      return { result: 'ok', message: done.message };
    } catch (error) {
      if (error instanceof NotFoundError) return { result: 'ignored', message: `no process named "${clip(row.process)}" is declared` };
      return { result: 'failed', message: (error as Error).message };
    }
  }
}

/** Values from another team's rows are shown, bounded and on one line. */
function clip(text: string): string {
  const line = text.replace(/[\r\n\t]+/g, ' ');
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}
