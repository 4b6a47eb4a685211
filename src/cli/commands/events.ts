// pm events [NAME]: what the daemon noticed (starts, exits, probe failures, reloads, outages). From
// PostgreSQL when a database is configured (every host's, shipped from their spools), else from this
// state directory's events.jsonl, which the daemon appends to and which outlives it (the daemon's API
// shows only the recent events it holds in memory).
import { join } from 'node:path';
import type { DaemonEvent } from '../../daemon/api.js';
import { ExitCode, UsageError } from '../../errors.js';
import { EVENTS_SPOOL_FILE } from '../../store/shipper.js';
import type { Command } from '../command.js';
import { formatTable } from '../output/table.js';
import { configuredDatabase, newestLast, outputOption, readDatabase, readFilter, readOptionHelp, readOptions, readSpool, type ConfiguredDatabase, type ReadFilter } from './audit.js';

/** An event as pm events prints it; `host` only when it comes from the database. */
export type EventRecord = DaemonEvent & { host?: string };

export const eventsCommand: Command = {
  name: 'events',
  summary: 'Show what the daemon noticed: starts, exits, probe failures, reloads, database outages.',
  usage: 'pm events [NAME] [--since DURATION|TIME] [--limit N] [-o json] [--local]',
  description: [
    'Prints the newest events, oldest first: TIME, SEVERITY, TYPE, PROCESS and MESSAGE (and HOST, from a',
    'database); with NAME, only those about that process. With a database configured (databaseUrl,',
    "read as pm daemon reads it) the events come from pm.events: every host's, including those each",
    'host kept in its spool during an outage and shipped since. Without one, or with --local, they',
    "come from this state directory's events.jsonl, which the daemon appends to.",
  ].join('\n'),
  examples: ['pm events', 'pm events api --since 10m', 'pm events --since 2026-01-31 --limit 0 -o json', 'pm events --local'],
  options: readOptions,
  optionHelp: readOptionHelp,
  async run(values, positionals, cli) {
    if (positionals.length > 1) throw new UsageError(`pm events takes at most one NAME (got "${positionals.join(' ')}")`, 'e.g. pm events api');
    const filter = readFilter(values, positionals[0], Date.now());
    const format = outputOption(values);
    const database = await configuredDatabase(values, cli);
    const localPath = join(cli.stateDir, EVENTS_SPOOL_FILE);
    const events = database ? await eventsFromDatabase(database, filter, localPath) : newestLast(await readSpool(localPath, isEvent), filter);
    if (format === 'json') {
      cli.stdout.write(`${JSON.stringify(events, null, 2)}\n`);
    } else if (events.length === 0) {
      cli.stderr.write(`no events${filter.process === undefined ? '' : ` about ${filter.process}`}${filter.since ? ` since ${filter.since.toISOString()}` : ''} in ${database ? database.settings.display : localPath}\n`);
    } else {
      const host = database !== undefined;
      const header = ['TIME', ...(host ? ['HOST'] : []), 'SEVERITY', 'TYPE', 'PROCESS', 'MESSAGE'];
      const rows = events.map((e) => [e.time, ...(host ? [e.host ?? '-'] : []), e.severity, e.type, e.process ?? '-', e.message]);
      cli.stdout.write(formatTable(header, rows));
    }
    return ExitCode.ok;
  },
};

async function eventsFromDatabase(database: ConfiguredDatabase, filter: ReadFilter, localPath: string): Promise<EventRecord[]> {
  const rows = await readDatabase<{ time: Date; host: string; type: string; process: string | null; severity: string; message: string }>(
    database,
    'pm events',
    'SELECT id, time, host, type, process, severity, message FROM pm.events',
    filter,
    localPath,
  );
  return rows.map((r) => ({
    time: r.time.toISOString(),
    host: r.host,
    type: r.type as DaemonEvent['type'],
    ...(r.process !== null && { process: r.process }),
    severity: r.severity as DaemonEvent['severity'],
    message: r.message,
  }));
}

function isEvent(value: unknown): value is EventRecord {
  const e = value as Partial<DaemonEvent> | null;
  return typeof e === 'object' && e !== null && typeof e.time === 'string' && typeof e.type === 'string' && typeof e.message === 'string';
}
