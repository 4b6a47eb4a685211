// pm db migrate / status: pm's PostgreSQL schema. The connection is named by its masked form
// (user@host:port/database) only: the password never reaches the output.
import pg from 'pg';
import { ExitCode, PmError, UsageError } from '../../errors.js';
import { classifyDatabaseError } from '../../db/errors.js';
import { appliedMigrations, migrate, pendingMigrations, planMigrations, schemaVersion } from '../../db/migrate.js';
import { LATEST_VERSION, MIGRATIONS } from '../../db/migrations.js';
import { databaseSettingsFromConfig, poolOptions, type DatabaseSettings } from '../../db/settings.js';
import { formatTable } from '../output/table.js';
import { stringOption, type Cli, type Command, type Values } from '../command.js';
import { loadConfig } from '../../config/index.js';

const CONNECT_TIMEOUT_MS = 5_000;
/** status reads two small tables. */
const STATUS_STATEMENT_TIMEOUT_MS = 10_000;
/** A migration may rewrite a large table, and waiting for another pm's migration is one statement too. */
const MIGRATE_STATEMENT_TIMEOUT_MS = 120_000;
/** The client gives up a little after the server should have: a server that hangs still ends pm. */
const CLIENT_GRACE_MS = 5_000;

export const dbCommand: Command = {
  name: 'db',
  summary: "Migrate pm's PostgreSQL schema, or show its version.",
  usage: 'pm db migrate [--database-url URL] [--to N] [--dry-run] | pm db status [--database-url URL]',
  description: [
    "pm db migrate brings the database's pm schema (schema pm: flags, audit, events, history) to the",
    'version this pm knows, applying each pending migration in its own transaction: a failing one is',
    'rolled back, the ones before it stay applied. An advisory lock keeps two pm from migrating at',
    'once (the second waits, then finds nothing to do), so running it twice is safe. pm never',
    'migrates down. pm db status shows the version, the latest this pm knows, what is pending and the',
    'pm daemons registered in the database (pm.daemons); it exits 0 when the schema is up to date,',
    '1 when it is missing, behind or ahead of this pm (so a deploy script can run pm db status || pm db migrate).',
    'The database is --database-url URL, else the daemon config\'s databaseUrl (config file, then',
    '$PM_DATABASE_URL; with its password file and TLS settings); what the URL leaves out comes from',
    'PGHOST, PGPORT, PGUSER, PGDATABASE, and the password from PGPASSWORD or ~/.pgpass (PGPASSFILE).',
    'Only user@host:port/database is ever printed, never the password.',
  ].join('\n'),
  examples: [
    'pm db status --database-url postgres://pm@db.internal:5432/pm',
    'PM_DATABASE_URL=postgres://pm@db.internal/pm PGPASSWORD=… pm db migrate',
    'pm db migrate --dry-run',
    'PGHOST=/run/postgresql PM_DATABASE_URL=postgres:// pm db migrate --to 1',
  ],
  options: {
    'database-url': { type: 'string' },
    config: { type: 'string' },
    to: { type: 'string' },
    'dry-run': { type: 'boolean' },
  },
  optionHelp: [
    ['--database-url URL', 'postgres://USER@HOST:PORT/DATABASE (default: the config\'s databaseUrl, $PM_DATABASE_URL)'],
    ['--config PATH', 'the daemon config file to read the database settings from (default as pm daemon)'],
    ['--to N', `migrate: stop at schema version N (default: the latest, ${LATEST_VERSION})`],
    ['--dry-run', 'migrate: show what would be applied, change nothing'],
  ],
  async run(values, positionals, cli) {
    const [sub, ...extra] = positionals;
    if ((sub !== 'migrate' && sub !== 'status') || extra.length > 0) {
      throw new UsageError(`pm db: expected "migrate" or "status"${sub === undefined ? '' : `, got "${positionals.join(' ')}"`}`, 'run pm db status, or pm db migrate');
    }
    if (sub === 'status') {
      for (const flag of ['to', 'dry-run']) if (values[flag] !== undefined) throw new UsageError(`--${flag} is an option of pm db migrate, not of pm db status`);
    }
    const target = targetOption(stringOption(values, 'to'));
    const settings = await databaseSettings(values, cli);
    const statementTimeoutMs = sub === 'migrate' && values['dry-run'] !== true ? MIGRATE_STATEMENT_TIMEOUT_MS : STATUS_STATEMENT_TIMEOUT_MS;
    return withClient(settings, `pm db ${sub}`, statementTimeoutMs, (client) => {
      if (sub === 'status') return status(client, settings, cli);
      if (values['dry-run'] === true) return dryRun(client, settings, target, cli);
      return runMigrate(client, settings, target, cli);
    });
  },
};

async function status(client: pg.Client, settings: DatabaseSettings, cli: Cli): Promise<number> {
  const applied = await appliedMigrations(client);
  const current = applied.at(-1)?.version ?? 0;
  const pending = pendingMigrations(current, LATEST_VERSION);
  const state =
    current > LATEST_VERSION
      ? cli.style.red('newer than this pm knows: upgrade pm')
      : current === 0
        ? cli.style.yellow("pm's schema is not there: run pm db migrate")
        : pending.length > 0
          ? cli.style.yellow(`${pending.length} pending: run pm db migrate`)
          : cli.style.green('up to date');
  cli.stdout.write(`database:  ${settings.display}\nversion:   ${current} (latest known: ${LATEST_VERSION}), ${state}\n\n`);
  const rows = [
    ...applied.map((m) => [String(m.version), m.name, 'applied', `${m.appliedAt.toISOString()} by ${m.appliedBy}`]),
    ...pending.map((m) => [String(m.version), m.name, 'pending', '']),
  ];
  cli.stdout.write(rows.length > 0 ? formatTable(['VERSION', 'NAME', 'STATE', 'APPLIED'], rows) : 'No migrations applied or known.\n');
  if (current >= FLEET_VERSION) await printDaemons(client, cli);
  return current === LATEST_VERSION ? ExitCode.ok : ExitCode.failed;
}

/** The schema version that has pm.daemons. */
const FLEET_VERSION = 3;

async function printDaemons(client: pg.Client, cli: Cli): Promise<void> {
  const { rows } = await client.query<{ host: string; pid: number; version: string; started_at: Date; seen_at: Date; live: boolean; processes: number }>(
    `SELECT host, pid, version, started_at, seen_at, seen_at > now() - make_interval(secs => 3 * poll_seconds + 5) AS live, cardinality(processes) AS processes
       FROM pm.daemons ORDER BY host`,
  );
  if (rows.length === 0) {
    cli.stdout.write('\nNo pm daemon has used this database yet.\n');
    return;
  }
  cli.stdout.write('\n');
  cli.stdout.write(
    formatTable(
      ['HOST', 'STATE', 'LAST SEEN', 'PROCESSES', 'PID', 'VERSION', 'STARTED'],
      rows.map((d) => [d.host, d.live ? 'live' : 'not seen lately', d.seen_at.toISOString(), String(d.processes), String(d.pid), d.version, d.started_at.toISOString()]),
    ),
  );
}

async function dryRun(client: pg.Client, settings: DatabaseSettings, target: number | undefined, cli: Cli): Promise<number> {
  const current = await schemaVersion(client);
  const pending = planMigrations(current, target ?? LATEST_VERSION, settings.display);
  cli.stdout.write(`${settings.display}: schema at version ${current}; `);
  if (pending.length === 0) {
    cli.stdout.write('nothing to apply (dry run)\n');
  } else {
    cli.stdout.write(`would apply (dry run, nothing changed):\n${pending.map((m) => `  ${m.version} ${m.name}\n`).join('')}`);
  }
  return ExitCode.ok;
}

async function runMigrate(client: pg.Client, settings: DatabaseSettings, target: number | undefined, cli: Cli): Promise<number> {
  const result = await migrate(client, {
    ...(target !== undefined && { target }),
    where: settings.display,
    log: (line) => cli.stdout.write(`${line}\n`),
  });
  const summary = result.applied.length === 0 ? `already at version ${result.to}` : `migrated from version ${result.from} to ${result.to}`;
  cli.stdout.write(`${cli.style.green('ok')}: ${settings.display}: ${summary}\n`);
  return ExitCode.ok;
}

/** `--to N`: a schema version this pm knows. */
function targetOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > LATEST_VERSION) {
    const known = MIGRATIONS.map((m) => m.version).join(', ');
    throw new UsageError(`--to: "${text}" is not a schema version this pm knows (${known})`, `pass one of ${known}, or leave --to out for the latest`);
  }
  return n;
}

/**
 * The database the daemon would use: the daemon's config (file < PM_* < flags, as `pm config
 * show` prints it), with --database-url on top; so migrate and the daemon never disagree on it.
 */
async function databaseSettings(values: Values, cli: Cli): Promise<DatabaseSettings> {
  const file = stringOption(values, 'config');
  const { config } = await loadConfig({ ...(file !== undefined && { file }), env: cli.env, flags: values, cwd: cli.cwd });
  const url = stringOption(values, 'database-url') ?? config.databaseUrl;
  if (url === undefined || url === '') {
    throw new UsageError('no database given', 'pass --database-url postgres://USER@HOST:PORT/DATABASE, or set databaseUrl in the config file or PM_DATABASE_URL (postgres:// alone takes everything from PGHOST, PGPORT, PGUSER, PGDATABASE)');
  }
  return databaseSettingsFromConfig(config, cli.env, url);
}

/** One connection with timeouts, closed whatever happens; driver errors become pm's typed ones. */
async function withClient(settings: DatabaseSettings, application: string, statementTimeoutMs: number, use: (client: pg.Client) => Promise<number>): Promise<number> {
  const client = new pg.Client({
    ...poolOptions(settings),
    application_name: application,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + CLIENT_GRACE_MS,
  });
  // A connection lost while idle must not become an uncaught exception: the next query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } catch (error) {
    throw error instanceof PmError ? error : classifyDatabaseError(error, settings.display);
  } finally {
    await client.end().catch(() => undefined);
  }
}
