// Flags from PostgreSQL: any system asks for a restart, pause, resume or reset of a process by
// inserting a row into pm.flags; a trigger NOTIFYs pm_flags and the daemon handles the row at once,
// marking it handled with its result. A poll every flagPollSeconds, and a drain after every
// (re)connect of the listener, catch whatever a notification missed. Rows are claimed with
// FOR UPDATE SKIP LOCKED, so several daemons never handle one row twice; a bad row (unknown process,
// unknown action) is marked `ignored` with the reason and never blocks the others.
//
// Several daemons may share the database (a fleet). Each registers in pm.daemons, in the same
// transaction as every drain, with the processes its manifests declare. A daemon claims a row
// addressed to its host (pm.flags.host); a row addressed to no host when it declares the process,
// or when no other registered daemon does (then, if it does not either, the row is ignored: unknown
// everywhere). So a flag is never ignored by one host while another declares its process, and a
// row for a host that is down or restarting waits for it.
import type pg from 'pg';
import type { ControlVerb } from '../daemon/api.js';
import { NotFoundError } from '../errors.js';

export interface FlagRow {
  id: string;
  process: string;
  action: string;
  requested_by: string;
  requested_at: Date;
  host: string | null;
}

export type FlagOutcome = { result: 'ok' | 'ignored' | 'failed'; message: string };

/** What the flag source needs of the database (src/db/connection.ts's Database). */
export interface FlagDatabase {
  transaction<T>(fn: (client: pg.ClientBase) => Promise<T>): Promise<T>;
  listen(channel: string, onNotify: (payload: string) => void, onConnected: () => void): void;
}

/** This daemon, as pm.daemons records it. */
export interface FlagRegistration {
  host: string;
  /** Random id of this run: a second daemon under the same host name is told apart by it. */
  instance: string;
  pid: number;
  version: string;
  startedAt: Date;
}

export interface FlagSourceOptions {
  registration: FlagRegistration;
  /** The names the manifests declare now (any order). */
  declared: () => Iterable<string>;
  /** Carries out one valid flag; throws NotFoundError for a process pm does not manage. */
  handle: (verb: ControlVerb, process: string, actor: string) => Promise<{ message: string }>;
  pollSeconds: number;
  /** Told about every row handled, for events and logs. */
  report: (row: FlagRow, outcome: FlagOutcome) => void;
  /** A drain that failed (the database went away): reported once per failure, retried by the next trigger. */
  onError: (error: unknown) => void;
  /** Another live daemon registered under this host name: told once per other instance. */
  onHostConflict?: (other: { instance: string; pid: number; seenAt: Date }) => void;
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
  /** The declared names last written to pm.daemons, sorted and joined; undefined: write them. */
  #registered: string | undefined;
  readonly #conflictsTold = new Set<string>();

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

  /** One transaction: register, claim up to BATCH pending rows, handle each, mark each handled. Returns how many. */
  async #drainBatch(): Promise<number> {
    let written: string | undefined;
    const count = await this.db.transaction(async (client) => {
      written = await this.#register(client);
      const { rows } = await client.query<FlagRow>(
        `SELECT f.id::text AS id, f.process, f.action, f.requested_by, f.requested_at, f.host
           FROM pm.flags f
          WHERE f.handled_at IS NULL
            AND (f.host = $1
                 OR (f.host IS NULL
                     AND (EXISTS (SELECT 1 FROM pm.daemons d WHERE d.host = $1 AND d.processes @> ARRAY[f.process])
                          OR NOT EXISTS (SELECT 1 FROM pm.daemons d WHERE d.host <> $1 AND d.processes @> ARRAY[f.process]))))
          ORDER BY f.id LIMIT $2 FOR UPDATE OF f SKIP LOCKED`,
        [this.options.registration.host, BATCH],
      );
      for (const row of rows) {
        const outcome = await this.#handle(row);
        await client.query('UPDATE pm.flags SET handled_at = now(), handled_by = $4, result = $2, message = $3 WHERE id = $1', [row.id, outcome.result, outcome.message, this.options.registration.host]);
        this.options.report(row, outcome);
      }
      return rows.length;
    });
    // Known to be in the table only once the transaction committed: after a rollback the next drain writes them again.
    if (written !== undefined) this.#registered = written;
    return count;
  }

  /**
   * Marks this daemon seen; writes its declared names when they changed (or the row is missing or
   * another instance's). Runs in the drain's transaction, so the claim sees the names just written.
   */
  async #register(client: pg.ClientBase): Promise<string | undefined> {
    const r = this.options.registration;
    const names = [...new Set(this.options.declared())].sort();
    const joined = names.join('\n');
    if (this.#registered === joined) {
      const touched = await client.query('UPDATE pm.daemons SET seen_at = now() WHERE host = $1 AND instance = $2', [r.host, r.instance]);
      if (touched.rowCount === 1) return undefined;
    }
    const { rows } = await client.query<{ instance: string; pid: number; seen_at: Date; live: boolean }>(
      `SELECT instance, pid, seen_at, seen_at > now() - make_interval(secs => 3 * poll_seconds + 5) AS live FROM pm.daemons WHERE host = $1 FOR UPDATE`,
      [r.host],
    );
    const previous = rows[0];
    if (previous && previous.instance !== r.instance && previous.live && !this.#conflictsTold.has(previous.instance)) {
      this.#conflictsTold.add(previous.instance);
      this.options.onHostConflict?.({ instance: previous.instance, pid: previous.pid, seenAt: previous.seen_at });
    }
    await client.query(
      `INSERT INTO pm.daemons (host, instance, pid, version, started_at, seen_at, poll_seconds, processes)
       VALUES ($1, $2, $3, $4, $5, now(), $6, $7)
       ON CONFLICT (host) DO UPDATE SET instance = EXCLUDED.instance, pid = EXCLUDED.pid, version = EXCLUDED.version,
         started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at, poll_seconds = EXCLUDED.poll_seconds, processes = EXCLUDED.processes`,
      [r.host, r.instance, r.pid, r.version, r.startedAt, this.options.pollSeconds, names],
    );
    return joined;
  }

  async #handle(row: FlagRow): Promise<FlagOutcome> {
    const verb = row.action.trim().toLowerCase() as ControlVerb;
    if (!VERBS.includes(verb)) return { result: 'ignored', message: `unknown action "${clip(row.action)}": pm knows ${VERBS.join(', ')}` };
    try {
      const done = await this.options.handle(verb, row.process, `${clip(row.requested_by)} (database flag ${row.id})`);
      return { result: 'ok', message: done.message };
    } catch (error) {
      if (error instanceof NotFoundError) {
        const where = row.host === null ? `by this pm (${this.options.registration.host}) nor by any other in pm.daemons` : `on ${this.options.registration.host}`;
        return { result: 'ignored', message: `no process named "${clip(row.process)}" is declared ${where}` };
      }
      return { result: 'failed', message: (error as Error).message };
    }
  }
}

/** Values from another team's rows are shown, bounded and on one line. */
function clip(text: string): string {
  const line = text.replace(/[\r\n\t]+/g, ' ');
  return line.length > 100 ? `${line.slice(0, 100)}…` : line;
}
