// Brings a database's pm schema up to date (pm db migrate) and tells the daemon whether the schema
// fits this pm (checkSchema). Migrations run one per transaction, under a session advisory lock
// so two pm instances never migrate at once: the second waits, then finds nothing to do.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ExitCode, PmError } from '../errors.js';
import { classifyDatabaseError } from './errors.js';
import { BOOTSTRAP_SQL, MIGRATIONS, type Migration } from './migrations.js';

/**
 * The advisory lock key: the first 8 bytes of SHA-256("pm.migrate") as a signed 64-bit number
 * (decimal text, since a JavaScript number cannot hold it). Fixed forever: every pm version must
 * take the same lock.
 */
export const MIGRATE_LOCK_KEY: string = createHash('sha256').update('pm.migrate').digest().readBigInt64BE(0).toString();

export interface MigrateOptions {
  /** Stop after this version (default: the latest known). Never below the database's version. */
  target?: number;
  /** Progress, one line per step (waiting for the lock, each migration applied). */
  log?: (line: string) => void;
  /** The migrations to apply instead of MIGRATIONS (tests). */
  migrations?: readonly Migration[];
  /** The connection as shown in messages (settings.display); default: user@host:port/database from the client. */
  where?: string;
}

export interface MigrateResult {
  /** The schema version before. */
  from: number;
  /** The schema version after. */
  to: number;
  /** Versions applied by this call, in order; empty when there was nothing to do. */
  applied: number[];
}

export type SchemaProblem = 'missing' | 'older' | 'newer';

/** The database's schema version does not fit this pm. */
export class SchemaVersionError extends PmError {
  readonly problem: SchemaProblem;
  readonly current: number;
  readonly latest: number;
  constructor(problem: SchemaProblem, current: number, latest: number, where: string) {
    const [message, hint] = schemaMessage(problem, current, latest, where);
    super(`E_DB_SCHEMA_${problem.toUpperCase()}`, message, { hint });
    this.problem = problem;
    this.current = current;
    this.latest = latest;
  }
}

/** A migration failed; its transaction was rolled back, the ones before it stay applied. */
export class MigrationError extends PmError {
  readonly migration: { readonly version: number; readonly name: string };
  constructor(migration: Migration, reason: string, hint: string, cause: unknown) {
    super('E_DB_MIGRATION', `migration ${migration.version} (${migration.name}) failed and was rolled back: ${reason}`, { hint, cause });
    this.migration = { version: migration.version, name: migration.name };
  }
}

/**
 * Applies the pending migrations up to `target`, each in its own transaction. `client` is one
 * connection, not inside a transaction; it holds the migration lock until this returns or throws.
 */
export async function migrate(client: pg.ClientBase, options: MigrateOptions = {}): Promise<MigrateResult> {
  const migrations = checkedMigrations(options.migrations ?? MIGRATIONS);
  const latest = latestVersion(migrations);
  const target = options.target ?? latest;
  if (!Number.isInteger(target) || target < 0 || target > latest) {
    throw new PmError('E_DB_MIGRATE_TARGET', `cannot migrate to version ${target}: this pm knows versions 1 to ${latest}`, { hint: `pass a version from 1 to ${latest}, or none for the latest`, exitCode: ExitCode.invalid });
  }
  const where = options.where ?? describeClient(client);
  const log = options.log ?? (() => undefined);

  await lockMigrations(client, where, log);
  let failed = false;
  try {
    if (!(await hasVersionTable(client))) {
      log('creating schema pm and pm.schema_migrations');
      await inTransaction(client, BOOTSTRAP_SQL);
    }
    const from = await readVersion(client);
    const pending = planMigrations(from, target, where, migrations);
    if (pending.length === 0) log(`schema at version ${from}: nothing to apply`);
    const applied: number[] = [];
    for (const migration of pending) {
      await applyMigration(client, migration, where, log);
      applied.push(migration.version);
    }
    return { from, to: applied.at(-1) ?? from, applied };
  } catch (error) {
    failed = true;
    throw error instanceof PmError ? error : classifyDatabaseError(error, where);
  } finally {
    await unlockMigrations(client, where, failed);
  }
}

/** The highest migration applied to the database; 0 when pm's schema is not there. */
export async function schemaVersion(client: pg.ClientBase): Promise<number> {
  return (await hasVersionTable(client)) ? readVersion(client) : 0;
}

/** The migrations recorded in the database, oldest first; empty when pm's schema is not there. */
export async function appliedMigrations(client: pg.ClientBase): Promise<{ version: number; name: string; appliedAt: Date; appliedBy: string }[]> {
  if (!(await hasVersionTable(client))) return [];
  const result = await client.query<{ version: number; name: string; applied_at: Date; applied_by: string }>('SELECT version, name, applied_at, applied_by FROM pm.schema_migrations ORDER BY version');
  return result.rows.map((row) => ({ version: row.version, name: row.name, appliedAt: row.applied_at, appliedBy: row.applied_by }));
}

/**
 * For the daemon at start: may this pm use the database? A schema newer than this pm knows is
 * refused (upgrade pm); an older or missing one needs pm db migrate. Connection failures come back
 * classified (see classifyDatabaseError).
 */
export async function checkSchema(client: pg.ClientBase, options: { migrations?: readonly Migration[]; where?: string } = {}): Promise<{ ok: true } | { ok: false; error: PmError }> {
  const where = options.where ?? describeClient(client);
  const latest = latestVersion(checkedMigrations(options.migrations ?? MIGRATIONS));
  let current: number;
  try {
    current = await schemaVersion(client);
  } catch (error) {
    return { ok: false, error: classifyDatabaseError(error, where) };
  }
  if (current === latest) return { ok: true };
  const problem: SchemaProblem = current > latest ? 'newer' : current === 0 ? 'missing' : 'older';
  return { ok: false, error: new SchemaVersionError(problem, current, latest, where) };
}

/**
 * What takes a database at version `from` to `target`, in order; throws when it cannot get there
 * (a schema newer than `migrations` knows, or a target below `from`: pm never migrates down).
 */
export function planMigrations(from: number, target: number, where: string, migrations: readonly Migration[] = MIGRATIONS): Migration[] {
  const latest = latestVersion(migrations);
  if (from > latest) throw new SchemaVersionError('newer', from, latest, where);
  if (target < from) {
    throw new PmError('E_DB_MIGRATE_DOWN', `the database schema at ${where} is at version ${from}; pm does not migrate down to ${target}`, { hint: `pass --to ${from} or higher, or none for the latest`, exitCode: ExitCode.invalid });
  }
  return pendingMigrations(from, target, migrations);
}

/** The migrations above `from`, up to and including `to`, in order. */
export function pendingMigrations(from: number, to: number, migrations: readonly Migration[] = MIGRATIONS): Migration[] {
  return migrations.filter((m) => m.version > from && m.version <= to);
}

function latestVersion(migrations: readonly Migration[]): number {
  return migrations.at(-1)?.version ?? 0;
}

/** Versions must rise, so "the highest applied" is the schema version: a broken list is a bug in pm. */
function checkedMigrations(migrations: readonly Migration[]): readonly Migration[] {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new PmError('E_DB_MIGRATIONS', `migration versions must be whole numbers rising from 1: ${m.version} (${m.name}) follows ${previous}`, { hint: 'this is a bug in pm: please report it' });
    }
    if (m.name.trim() === '' || m.sql.trim() === '') throw new PmError('E_DB_MIGRATIONS', `migration ${m.version} has no name or no SQL`, { hint: 'this is a bug in pm: please report it' });
    previous = m.version;
  }
  return migrations;
}

async function hasVersionTable(client: pg.ClientBase): Promise<boolean> {
  const result = await client.query<{ present: boolean }>("SELECT to_regclass('pm.schema_migrations') IS NOT NULL AS present");
  return result.rows[0]?.present === true;
}

async function readVersion(client: pg.ClientBase): Promise<number> {
  const result = await client.query<{ version: number }>('SELECT coalesce(max(version), 0)::integer AS version FROM pm.schema_migrations');
  return result.rows[0]?.version ?? 0;
}

async function applyMigration(client: pg.ClientBase, migration: Migration, where: string, log: (line: string) => void): Promise<void> {
  const started = performance.now();
  log(`applying ${migration.version} ${migration.name}`);
  try {
    await inTransaction(client, migration.sql, [['INSERT INTO pm.schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]]]);
  } catch (error) {
    const [reason, hint] = failureOf(error, where);
    throw new MigrationError(migration, reason, hint, error);
  }
  log(`applied ${migration.version} ${migration.name} (${Math.round(performance.now() - started)} ms)`);
}

/** BEGIN; the script; the parameterised statements; COMMIT — or ROLLBACK and rethrow. */
async function inTransaction(client: pg.ClientBase, script: string, statements: [string, unknown[]][] = []): Promise<void> {
  await client.query('BEGIN');
  try {
    // No parameters: the simple protocol, which runs a multi-statement script.
    await client.query(script);
    for (const [sql, params] of statements) await client.query(sql, params);
    await client.query('COMMIT');
  } catch (error) {
    // A lost connection cannot roll back, and needs not: the server ends the transaction itself.
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The session lock; says so when another session holds it (the wait is then the statement timeout's). */
async function lockMigrations(client: pg.ClientBase, where: string, log: (line: string) => void): Promise<void> {
  try {
    const tried = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [MIGRATE_LOCK_KEY]);
    if (tried.rows[0]?.locked === true) return;
    log(`another session is migrating ${where}: waiting for it to finish`);
    await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATE_LOCK_KEY]);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === '57014' || code === '55P03') {
      throw new PmError('E_DB_MIGRATE_LOCKED', `another session held pm's migration lock on ${where} for longer than the statement timeout`, {
        hint: "see who holds it: SELECT pid, application_name, state FROM pg_stat_activity JOIN pg_locks USING (pid) WHERE locktype = 'advisory'; then run pm db migrate again",
        cause: error,
      });
    }
    throw classifyDatabaseError(error, where);
  }
}

/** Releases the lock. After a failure, a lost connection has released it already: nothing to add. */
async function unlockMigrations(client: pg.ClientBase, where: string, failed: boolean): Promise<void> {
  try {
    await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATE_LOCK_KEY]);
  } catch (error) {
    if (!failed) throw classifyDatabaseError(error, where);
  }
}

/** Why a migration failed and what to do: the server's own words for SQL errors, pm's for connection ones. */
function failureOf(error: unknown, where: string): [string, string] {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const retry = 'the migrations before it stay applied; fix the cause, then run pm db migrate again';
  const classified = classifyDatabaseError(error, where);
  // A five-character SQLSTATE is the server speaking about the SQL (its messages carry no
  // credentials); its words beat a guess from the text, except for the problems pm has a fix for.
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
  if (sqlState && !['auth-failed', 'no-database', 'permission-denied'].includes(classified.problem)) return [`${String(message)} (SQLSTATE ${code})`, retry];
  return [classified.message, `${classified.hint ?? 'see the PostgreSQL server log'}; ${retry}`];
}

function schemaMessage(problem: SchemaProblem, current: number, latest: number, where: string): [string, string] {
  const migrateHint = `run pm db migrate against the same database (--database-url or PM_DATABASE_URL) to apply ${latest - current === 1 ? `version ${latest}` : `versions ${current + 1} to ${latest}`}, then start pm again`;
  switch (problem) {
    case 'newer':
      return [`the database schema at ${where} is at version ${current}; this pm knows up to ${latest}: upgrade pm`, `install a pm release that knows schema version ${current}; never migrate a database down by hand`];
    case 'older':
      return [`the database schema at ${where} is at version ${current}; this pm needs version ${latest}`, migrateHint];
    case 'missing':
      return [`pm's schema is not in the database ${where} (schema version 0; this pm needs version ${latest})`, migrateHint];
  }
}

/** user@host:port/database from a node-postgres client; the password is never among these fields. */
function describeClient(client: pg.ClientBase): string {
  const { user, host, port, database } = client as Partial<Record<'user' | 'host' | 'database', unknown>> & { port?: unknown };
  return user !== undefined && host !== undefined && database !== undefined ? `${String(user)}@${String(host)}:${String(port)}/${String(database)}` : 'the database';
}
