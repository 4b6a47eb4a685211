// The PostgreSQL side of bench/flags.ts: a throwaway cluster (test/support/postgres.ts: initdb and
// pg_ctl as the postgres user in a folder under /var/tmp, password authentication over TCP), one
// database per daemon so that their flags and counters never mix, pm's schema in each through
// `pm db migrate` (as a user would run it), the writer's connection and the server's own counters.
import { stat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createPostgresCluster, type PostgresCluster } from '../../test/support/postgres.js';
import { mustRun } from '../daemon/proc.js';

export type { PostgresCluster };

/** application_name of the daemon's pool; its LISTEN connection is this plus "-listen" (src/daemon/database.ts). */
export const DAEMON_APP = 'pm daemon';
const LISTEN_APP = `${DAEMON_APP}-listen`;
/** Every log line carries the session's application and database, so the idle count can pick the daemon's statements. */
const LOG_LINE_PREFIX = '%m [%p] <%a|%d> ';
const STATEMENT_LINE = /<([^|>]*)\|([^>]*)> LOG: {2}(?:statement|execute [^:]*): (.*)$/;

/**
 * Starts the cluster (scram over TCP: the daemon gets its password from PGPASSWORD) and settles the
 * server for measuring: autovacuum off, so that the database's transaction count is its clients'
 * alone; a log line prefix naming application and database. `onCreating` gets the creation promise
 * at once, for a cleanup step that must exist before the cluster does.
 */
export async function startCluster(onCreating: (creating: Promise<PostgresCluster>) => void): Promise<PostgresCluster> {
  const creating = createPostgresCluster({ auth: 'scram' });
  onCreating(creating);
  const cluster = await creating;
  await cluster.query('ALTER SYSTEM SET autovacuum = off');
  await cluster.query(`ALTER SYSTEM SET log_line_prefix = '${LOG_LINE_PREFIX}'`);
  await cluster.query('SELECT pg_reload_conf()');
  return cluster;
}

export async function serverVersion(cluster: PostgresCluster): Promise<string> {
  const { rows } = await cluster.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
  return `PostgreSQL ${rows[0]?.v ?? '?'}`;
}

/** One daemon's database, owned by the cluster's ordinary role; `logStatements` logs every statement of its sessions. */
export async function createDatabase(cluster: PostgresCluster, name: string, options: { logStatements?: boolean } = {}): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name} is not a plain identifier`);
  await cluster.query(`CREATE DATABASE ${name} OWNER ${cluster.user}`);
  if (options.logStatements) await cluster.query(`ALTER DATABASE ${name} SET log_statement = 'all'`);
}

/** What the daemon and `pm db migrate` are given: the URL without the password, the password in PGPASSWORD. */
export function databaseEnv(cluster: PostgresCluster, database: string): Record<string, string> {
  return {
    PM_DATABASE_URL: `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${database}`,
    PGPASSWORD: cluster.password ?? '',
  };
}

/** `pm db migrate` against the database, with no PM_* variable or config file of the user running the bench. */
export async function migrate(cli: string, cluster: PostgresCluster, database: string, configHome: string): Promise<void> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PM_') && !key.startsWith('PG')));
  await mustRun([process.execPath, cli, 'db', 'migrate'], { env: { ...env, ...databaseEnv(cluster, database), XDG_CONFIG_HOME: configHome } });
}

/** A connection as another team's code would open one: the ordinary role, over TCP, with its password. */
export async function connectAs(cluster: PostgresCluster, database: string, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: cluster.host,
    port: cluster.port,
    user: cluster.user,
    password: cluster.password,
    database,
    application_name: applicationName,
  });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * The superuser over the cluster's socket, in database `postgres`: the bench's own reads of the
 * statistics views, so that none of them is counted in a daemon's database.
 */
export async function connectObserver(cluster: PostgresCluster): Promise<pg.Client> {
  const client = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: cluster.superuser.user, database: 'postgres', application_name: 'pm-bench-observer' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Waits until the daemon's LISTEN connection to `database` has run its LISTEN: before that a notification would be missed. */
export async function waitForListener(observer: pg.Client, database: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await observer.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND query LIKE 'LISTEN%' AND state = 'idle'`,
      [database, LISTEN_APP],
    );
    if (Number(rows[0]?.n ?? 0) > 0) return;
    if (Date.now() > deadline) throw new Error(`the daemon did not LISTEN on database ${database} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** pg_stat_database's committed and rolled-back transactions of one database. */
export async function transactionCounts(observer: pg.Client, database: string): Promise<{ commits: number; rollbacks: number }> {
  const { rows } = await observer.query<{ c: string; r: string }>('SELECT xact_commit AS c, xact_rollback AS r FROM pg_stat_database WHERE datname = $1', [database]);
  if (!rows[0]) throw new Error(`pg_stat_database has no row for ${database}`);
  return { commits: Number(rows[0].c), rollbacks: Number(rows[0].r) };
}

/** The server log's size now: where a window of statements begins or ends. */
export async function logOffset(cluster: PostgresCluster): Promise<number> {
  return (await stat(join(cluster.socketDir, 'log'))).size;
}

/** One statement text (its first words) as logged, and how often. */
export interface LoggedStatements {
  /** By application_name. */
  byApp: Map<string, number>;
  /** By application_name, then by the statement's first words. */
  byText: Map<string, Map<string, number>>;
}

/** Statements logged between two offsets in `database`. */
export async function statementsLogged(cluster: PostgresCluster, from: number, to: number, database: string): Promise<LoggedStatements> {
  const file = await open(join(cluster.socketDir, 'log'), 'r');
  try {
    const buffer = Buffer.alloc(Math.max(0, to - from));
    await file.read(buffer, 0, buffer.length, from);
    const byApp = new Map<string, number>();
    const byText = new Map<string, Map<string, number>>();
    for (const line of buffer.toString('utf8').split('\n')) {
      const match = STATEMENT_LINE.exec(line);
      if (!match || match[2] !== database) continue;
      const app = match[1] ?? '';
      byApp.set(app, (byApp.get(app) ?? 0) + 1);
      const words = (match[3] ?? '').trim().split(/\s+/);
      const text = words.slice(0, 4).join(' ') + (words.length > 4 ? ' …' : '');
      const texts = byText.get(app) ?? new Map<string, number>();
      texts.set(text, (texts.get(text) ?? 0) + 1);
      byText.set(app, texts);
    }
    return { byApp, byText };
  } finally {
    await file.close();
  }
}

/** The daemon's sessions: its pool and its LISTEN connection. */
export function isDaemonApp(app: string): boolean {
  return app === DAEMON_APP || app === LISTEN_APP;
}
