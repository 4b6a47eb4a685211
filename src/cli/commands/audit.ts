// pm audit: each action pm took on a process, who asked and how it ended. From PostgreSQL when a
// database is configured (every host's records, each shipped from its host's spool), else from this
// state directory's audit.jsonl, where records also wait while the database is down. The helpers
// below the command (--since, --limit, -o, the database read) serve pm events too.
import { join } from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../config/index.js';
import { classifyDatabaseError, DatabaseError } from '../../db/errors.js';
import { poolOptions, databaseSettingsFromConfig, type DatabaseSettings } from '../../db/settings.js';
import { ExitCode, PmError, UsageError } from '../../errors.js';
import { FileStore } from '../../store/file-store.js';
import { Journal } from '../../store/journal.js';
import type { AuditEntry } from '../../store/records.js';
import { AUDIT_SPOOL_FILE } from '../../store/shipper.js';
import { stringOption, type Cli, type Command, type OptionsConfig, type Values } from '../command.js';
import { formatTable } from '../output/table.js';

// ---- what pm audit and pm events share ----

/** --since, --limit, -o, --local, --config: the options pm audit and pm events share. */
export const readOptions: OptionsConfig = {
  since: { type: 'string' },
  limit: { type: 'string' },
  output: { type: 'string', short: 'o' },
  local: { type: 'boolean' },
  config: { type: 'string' },
};

export const readOptionHelp: [string, string][] = [
  ['--since DURATION|TIME', 'only what happened since: 30m, 2h, 7d ago, or a time such as 2026-01-31 or 2026-01-31T12:00:00Z'],
  ['--limit N', 'the newest N (default 100; 0: all)'],
  ['-o, --output FORMAT', 'json (default: a table)'],
  ['--local', "read this state directory's spool even when a database is configured"],
  ['--config PATH', 'the daemon config file that names the database (default as pm daemon)'],
];

export interface ReadFilter {
  process?: string;
  since?: Date;
  /** 0: no limit. */
  limit: number;
}

const DEFAULT_LIMIT = 100;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** The client gives up a little after the server's statement_timeout should have fired. */
const CLIENT_GRACE_MS = 5_000;

export function readFilter(values: Values, process: string | undefined, now: number): ReadFilter {
  const since = stringOption(values, 'since');
  const limitText = stringOption(values, 'limit');
  if (limitText !== undefined && !/^\d+$/.test(limitText)) throw new UsageError(`--limit: "${limitText}" is not a whole number`, 'e.g. --limit 50, or --limit 0 for all');
  return {
    ...(process !== undefined && { process }),
    ...(since !== undefined && { since: parseSince(since, now) }),
    limit: limitText === undefined ? DEFAULT_LIMIT : Number(limitText),
  };
}

/** `30m`, `1h30m`, `7d` (ago; a bare number is seconds), or a time Date.parse reads (a date alone is UTC midnight). */
export function parseSince(text: string, now: number): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const ms = Date.parse(text);
    if (Number.isFinite(ms)) return new Date(ms);
  } else if (/^\d+(\.\d+)?$/.test(text)) {
    return new Date(now - Number(text) * 1000);
  } else {
    const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
    if (parts.length > 0 && parts.map((p) => p[0]).join('') === text) {
      return new Date(now - parts.reduce((total, p) => total + Number(p[1]) * (UNIT_MS[p[2] as string] ?? 0), 0));
    }
  }
  throw new UsageError(`--since: "${text}" is neither a duration nor a time`, 'write a duration such as 30m, 2h or 7d, or a time such as 2026-01-31 or 2026-01-31T12:00:00Z');
}

export function outputOption(values: Values): 'table' | 'json' {
  const format = stringOption(values, 'output') ?? 'table';
  if (format !== 'table' && format !== 'json') throw new UsageError(`-o: unknown format "${format}"`, 'use -o json, or leave -o out for a table');
  return format;
}

/** Local entries in file order (newest last), filtered, the newest `limit` of them. */
export function newestLast<T extends { time: string; process?: string }>(entries: readonly T[], filter: ReadFilter): T[] {
  const since = filter.since?.getTime();
  const chosen = entries.filter((e) => (filter.process === undefined || e.process === filter.process) && (since === undefined || Date.parse(e.time) >= since));
  return filter.limit === 0 ? chosen : chosen.slice(-filter.limit);
}

export interface ConfiguredDatabase {
  settings: DatabaseSettings;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
}

/** The daemon's database (config file < PM_* < flags), or undefined when none is configured or --local is given. */
export async function configuredDatabase(values: Values, cli: Cli): Promise<ConfiguredDatabase | undefined> {
  if (values.local === true) return undefined;
  const file = stringOption(values, 'config');
  const { config } = await loadConfig({ ...(file !== undefined && { file }), env: cli.env, flags: values, cwd: cli.cwd });
  if (config.databaseUrl === undefined || config.databaseUrl === '') return undefined;
  const settings = await databaseSettingsFromConfig(config, cli.env);
  return { settings, connectTimeoutMs: config.databaseConnectTimeoutMs, statementTimeoutMs: config.databaseStatementTimeoutMs };
}

/**
 * `select` (SELECT id, time, … FROM one table that has a process column, no WHERE) narrowed by the filter, the
 * newest `limit` rows, returned oldest first; on one connection, closed whatever happens.
 */
export async function readDatabase<R extends pg.QueryResultRow>(
  database: ConfiguredDatabase,
  application: string,
  select: string,
  filter: ReadFilter,
  localPath: string,
  /** More conditions: column (a fixed name from pm's code) = value (a parameter). */
  equals: Record<string, string> = {},
): Promise<R[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  for (const [column, value] of Object.entries(equals)) where.push(`${column} = $${params.push(value)}`);
  if (filter.process !== undefined) where.push(`process = $${params.push(filter.process)}`);
  if (filter.since !== undefined) where.push(`time >= $${params.push(filter.since.toISOString())}`);
  const limit = filter.limit === 0 ? '' : ` LIMIT $${params.push(filter.limit)}`;
  const sql = `SELECT * FROM (${select}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY time DESC, id DESC${limit}) AS newest ORDER BY time, id`;
  const { settings } = database;
  const client = new pg.Client({
    ...poolOptions(settings),
    application_name: application,
    connectionTimeoutMillis: database.connectTimeoutMs,
    statement_timeout: database.statementTimeoutMs,
    query_timeout: database.statementTimeoutMs + CLIENT_GRACE_MS,
  });
  // A connection lost while idle must not become an uncaught exception: the query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.query<R>(sql, params)).rows;
  } catch (error) {
    throw withLocalHint(classifyDatabaseError(error, settings.display), localPath);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** How much of a spool file one read takes. */
const READ_BYTES = 1 << 20;

/** Every whole entry of a local spool file (none when it does not exist), in file order; lines that are not entries are passed over. */
export async function readSpool<T>(path: string, isEntry: (value: unknown) => value is T): Promise<T[]> {
  const journal = await Journal.open(path);
  const entries: T[] = [];
  let offset = 0;
  for (;;) {
    const read = await journal.readFrom(offset, READ_BYTES);
    if (read.next === offset) return entries;
    for (const line of read.lines) if (isEntry(line.value)) entries.push(line.value);
    offset = read.next;
  }
}

/** An unreachable database: this host's own records are still in its spool. */
function withLocalHint(error: DatabaseError, localPath: string): PmError {
  if (!['refused', 'timeout', 'host-unknown'].includes(error.problem)) return error;
  return new DatabaseError(error.problem, error.message, `${error.hint ?? ''}; or pass --local to read what this host keeps in ${localPath}`, error.cause);
}

// ---- pm audit ----

/** An audit record as pm audit prints it; `host` only when it comes from the database. */
export type AuditRecord = AuditEntry & { host?: string };

export const auditCommand: Command = {
  name: 'audit',
  summary: 'Show the audit log: what pm did to each process, who asked, how it ended.',
  usage: 'pm audit [--process NAME] [--since DURATION|TIME] [--limit N] [-o json] [--local]',
  description: [
    'Prints the newest audit records, oldest first: TIME, PROCESS, ACTION, RESULT, ACTOR, COMMAND,',
    'DURATION and REASON (and HOST, from a database). With a database configured (databaseUrl, read',
    "as pm daemon reads it) the records come from pm.audit: every host's, including those each host",
    'kept in its spool during an outage and shipped since. Without one, or with --local, they come',
    "from this state directory's audit.jsonl, where this host's records wait while the database is down.",
  ].join('\n'),
  examples: ['pm audit', 'pm audit --process api --since 1h', 'pm audit --since 2026-01-31T00:00:00Z --limit 0 -o json', 'pm audit --local'],
  options: { process: { type: 'string' }, ...readOptions },
  optionHelp: [['--process NAME', 'only the records about this process'], ...readOptionHelp],
  async run(values, positionals, cli) {
    if (positionals.length > 0) throw new UsageError(`pm audit takes no NAME (got "${positionals.join(' ')}")`, 'choose a process with --process NAME');
    const filter = readFilter(values, stringOption(values, 'process'), Date.now());
    const format = outputOption(values);
    const database = await configuredDatabase(values, cli);
    const localPath = join(cli.stateDir, AUDIT_SPOOL_FILE);
    const records: AuditRecord[] = database ? await auditFromDatabase(database, filter, localPath) : newestLast((await (await FileStore.open(cli.stateDir)).readAudit()).filter(isAuditEntry), filter);
    if (format === 'json') {
      cli.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
    } else if (records.length === 0) {
      cli.stderr.write(`no audit records${filter.process === undefined ? '' : ` about ${filter.process}`}${filter.since ? ` since ${filter.since.toISOString()}` : ''} in ${database ? database.settings.display : localPath}\n`);
    } else {
      const host = database !== undefined;
      const header = ['TIME', ...(host ? ['HOST'] : []), 'PROCESS', 'ACTION', 'RESULT', 'ACTOR', 'COMMAND', 'DURATION', 'REASON'];
      const rows = records.map((r) => [r.time, ...(host ? [r.host ?? '-'] : []), r.process, r.action, r.result, r.actor, r.command, `${r.durationMs}ms`, r.error ? `${r.reason}: ${r.error}` : r.reason]);
      cli.stdout.write(formatTable(header, rows));
    }
    return ExitCode.ok;
  },
};

async function auditFromDatabase(database: ConfiguredDatabase, filter: ReadFilter, localPath: string): Promise<AuditRecord[]> {
  const rows = await readDatabase<{ time: Date; host: string; actor: string; command: string; action: string; process: string; reason: string; result: string; duration_ms: number; error: string | null }>(
    database,
    'pm audit',
    'SELECT id, time, host, actor, command, action, process, reason, result, duration_ms, error FROM pm.audit',
    filter,
    localPath,
  );
  return rows.map((r) => ({
    time: r.time.toISOString(),
    host: r.host,
    actor: r.actor,
    command: r.command,
    action: r.action,
    process: r.process,
    reason: r.reason,
    result: r.result as AuditEntry['result'],
    durationMs: r.duration_ms,
    ...(r.error !== null && { error: r.error }),
  }));
}

function isAuditEntry(value: unknown): value is AuditEntry {
  const e = value as Partial<AuditEntry> | null;
  return typeof e === 'object' && e !== null && typeof e.time === 'string' && typeof e.process === 'string' && typeof e.action === 'string';
}
