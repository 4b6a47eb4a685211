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
import { SchemaVersionError } from '../db/migrate.js';
import { LATEST_VERSION } from '../db/migrations.js';
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
  /** The database as errors name it (user@host:port/db). */
  where: string;
  /** The names the manifests declare now (any order). */
  declared: () => Iterable<string>;
  /** Carries out one valid flag; throws NotFoundError for a process pm does not manage. */
  handle: (verb: ControlVerb, process: string, actor: string) => Promise<{ message: string }>;
  pollSeconds: number;
  /** Told about every row handled, for events and logs. */
  report: (row: FlagRow, outcome: FlagOutcome) => void;
  /** A drain that failed (the database went away, a schema changed under it): told once until a drain succeeds; retried by the next trigger. */
  onError: (error: unknown) => void;
  /** Another live daemon registered under this host name: told once per other instance. */
  onHostConflict?: (other: { instance: string; pid: number; seenAt: Date }) => void;
}

export const FLAG_CHANNEL = 'pm_flags';
const VERBS: readonly ControlVerb[] = ['restart', 'pause', 'resume', 'reset'];
/** Rows claimed per transaction: a flood of flags is worked through in bounded steps. */
const BATCH = 100;
/**
 * In a fleet, how old a row addressed to no host, whose process no daemon declares, must be before
 * it is ignored: a daemon that has just been given the process (an apply) registers it within this.
 */
const UNKNOWN_GRACE_SECONDS = 10;

export class PostgresFlags {
  #timer: NodeJS.Timeout | undefined;
  #draining: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** The declared names last written to pm.daemons (committed), sorted and joined; undefined: write them. */
  #registered: string | undefined;
  readonly #conflictsTold = new Set<string>();
  /** The failure last told: the same one again (every poll while the database is down) is not. */
  #lastError: string | undefined;

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
        this.#lastError = undefined;
      } catch (error) {
        const message = (error as Error).message;
        if (message !== this.#lastError) this.options.onError(error);
        this.#lastError = message;
      } finally {
        this.#draining = undefined;
      }
    })();
    return this.#draining;
  }

  /**
   * Registers when the declared names changed (its own transaction, committed before the claim, so
   * other daemons see them at once), then one transaction: check the schema, mark this daemon seen,
   * claim up to BATCH pending rows, handle each, mark each handled. Returns how many were claimed.
   */
  async #drainBatch(): Promise<number> {
    const names = [...new Set(this.options.declared())].sort();
    const joined = names.join('\n');
    if (this.#registered !== joined) {
      await this.db.transaction((client) => this.#register(client, names));
      this.#registered = joined;
    }
    const host = this.options.registration.host;
    return this.db.transaction(async (client) => {
      // A schema migrated while the daemon runs (pm db migrate of a newer pm) is refused as at start.
      const { rows: version } = await client.query<{ v: number }>('SELECT coalesce(max(version), 0)::int AS v FROM pm.schema_migrations');
      const current = version[0]?.v ?? 0;
      if (current !== LATEST_VERSION) throw new SchemaVersionError(current > LATEST_VERSION ? 'newer' : 'older', current, LATEST_VERSION, this.options.where);
      const seen = await client.query('UPDATE pm.daemons SET seen_at = now() WHERE host = $1 AND instance = $2', [host, this.options.registration.instance]);
      if (seen.rowCount !== 1) await this.#register(client, names, { lost: true });
      const { rows } = await client.query<FlagRow>(
        `SELECT f.id::text AS id, f.process, f.action, f.requested_by, f.requested_at, f.host
           FROM pm.flags f
          WHERE f.handled_at IS NULL
            AND (f.host = $1
                 OR (f.host IS NULL
                     AND (EXISTS (SELECT 1 FROM pm.daemons d WHERE d.host = $1 AND d.processes @> ARRAY[f.process])
                          OR (NOT EXISTS (SELECT 1 FROM pm.daemons d WHERE d.host <> $1 AND d.processes @> ARRAY[f.process])
                              AND (f.requested_at < now() - make_interval(secs => $3)
                                   OR NOT EXISTS (SELECT 1 FROM pm.daemons d WHERE d.host <> $1))))))
          ORDER BY f.id LIMIT $2 FOR UPDATE OF f SKIP LOCKED`,
        [host, BATCH, UNKNOWN_GRACE_SECONDS],
      );
      for (const row of rows) {
        const outcome = await this.#handle(row);
        // Told as soon as it is done: the history entry comes before what the action causes.
        this.options.report(row, outcome);
        await client.query('UPDATE pm.flags SET handled_at = now(), handled_by = $4, result = $2, message = $3 WHERE id = $1', [row.id, outcome.result, outcome.message, host]);
      }
      return rows.length;
    });
  }

  /**
   * Writes this daemon's row. `lost`: the row it wrote is gone or another instance's, found by the
   * heartbeat: a second daemon under this host name took it over (told once per instance), or
   * someone deleted it. A first registration takes over silently: the row is most likely its own
   * previous run's.
   */
  async #register(client: pg.ClientBase, names: readonly string[], options: { lost?: boolean } = {}): Promise<void> {
    const r = this.options.registration;
    if (options.lost) {
      const { rows } = await client.query<{ instance: string; pid: number; seen_at: Date }>('SELECT instance, pid, seen_at FROM pm.daemons WHERE host = $1', [r.host]);
      const other = rows[0];
      if (other && other.instance !== r.instance && !this.#conflictsTold.has(other.instance)) {
        this.#conflictsTold.add(other.instance);
        this.options.onHostConflict?.({ instance: other.instance, pid: other.pid, seenAt: other.seen_at });
      }
    }
    await client.query(
      `INSERT INTO pm.daemons (host, instance, pid, version, started_at, seen_at, poll_seconds, processes)
       VALUES ($1, $2, $3, $4, $5, now(), $6, $7)
       ON CONFLICT (host) DO UPDATE SET instance = EXCLUDED.instance, pid = EXCLUDED.pid, version = EXCLUDED.version,
         started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at, poll_seconds = EXCLUDED.poll_seconds, processes = EXCLUDED.processes`,
      [r.host, r.instance, r.pid, r.version, r.startedAt, this.options.pollSeconds, names],
    );
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

/** Values from another team's rows are shown bounded (100 code points) and on one line. */
export function clip(text: string): string {
  const line = text.replace(/[\r\n\t]+/g, ' ');
  return line.length > 100 ? `${Array.from(line).slice(0, 100).join('')}…` : line;
}
