// pm history [NAME]: each process's life as facts (starts, exits with their codes, stops, restarts,
// circuit-breaker transitions, flags handled), for post-mortems and for other systems to query.
// From PostgreSQL when a database is configured (pm.history: every host's, shipped from their
// spools), else from this state directory's history.jsonl, which the daemon appends to.
import { join } from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { formatDetail, HISTORY_KINDS, HISTORY_SPOOL_FILE, isHistoryEntry, type HistoryEntry, type HistoryKind } from '../../store/history.js';
import { stringOption, type Command } from '../command.js';
import { formatTable } from '../output/table.js';
import { configuredDatabase, newestLast, outputOption, readDatabase, readFilter, readOptionHelp, readOptions, readSpool, type ConfiguredDatabase, type ReadFilter } from './audit.js';

/** A history entry as pm history prints it; `host` only when it comes from the database. */
export type HistoryRecord = HistoryEntry & { host?: string };

export const historyCommand: Command = {
  name: 'history',
  summary: "Show each process's life: starts, exits with codes, stops, restarts, breaker changes, flags.",
  usage: 'pm history [NAME] [--kind KIND] [--since DURATION|TIME] [--limit N] [-o json] [--local]',
  description: [
    'Prints the newest history entries, oldest first: TIME, PROCESS, KIND and DETAIL (and HOST, from a',
    'database). Kinds: start (result, pid, reason), exit (code, signal, verdict, whether the policy',
    'restarts it, how long it ran), stop (why, how it ended), restart (strategy, reason), breaker (from,',
    'to, reason, failures) and flag (the pm.flags row, action, who asked, result). With a database',
    "configured the entries come from pm.history, every host's; without one, or with --local, from this",
    "state directory's history.jsonl, which the daemon appends to.",
  ].join('\n'),
  examples: ['pm history api', 'pm history api --kind exit --since 1d', 'pm history --since 2026-01-31 --limit 0 -o json', 'pm history worker --local'],
  options: { kind: { type: 'string' }, ...readOptions },
  optionHelp: [['--kind KIND', `only entries of this kind: ${HISTORY_KINDS.join(', ')}`], ...readOptionHelp],
  async run(values, positionals, cli) {
    if (positionals.length > 1) throw new UsageError(`pm history takes at most one NAME (got "${positionals.join(' ')}")`, 'e.g. pm history api');
    const kind = stringOption(values, 'kind');
    if (kind !== undefined && !HISTORY_KINDS.includes(kind as HistoryKind)) throw new UsageError(`--kind: unknown kind "${kind}"`, `use one of ${HISTORY_KINDS.join(', ')}`);
    const filter = readFilter(values, positionals[0], Date.now());
    const format = outputOption(values);
    const database = await configuredDatabase(values, cli);
    const localPath = join(cli.stateDir, HISTORY_SPOOL_FILE);
    const entries: HistoryRecord[] = database
      ? await historyFromDatabase(database, filter, kind as HistoryKind | undefined, localPath)
      : newestLast((await readSpool(localPath, isHistoryEntry)).filter((e) => kind === undefined || e.kind === kind), filter);
    if (format === 'json') {
      cli.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    } else if (entries.length === 0) {
      const about = `${kind === undefined ? '' : ` of kind ${kind}`}${filter.process === undefined ? '' : ` about ${filter.process}`}`;
      cli.stderr.write(`no history${about}${filter.since ? ` since ${filter.since.toISOString()}` : ''} in ${database ? database.settings.display : localPath}\n`);
    } else {
      const host = database !== undefined;
      const header = ['TIME', ...(host ? ['HOST'] : []), 'PROCESS', 'KIND', 'DETAIL'];
      const rows = entries.map((e) => [e.time, ...(host ? [e.host ?? '-'] : []), e.process, e.kind, formatDetail(e.detail)]);
      cli.stdout.write(formatTable(header, rows));
    }
    return ExitCode.ok;
  },
};

async function historyFromDatabase(database: ConfiguredDatabase, filter: ReadFilter, kind: HistoryKind | undefined, localPath: string): Promise<HistoryRecord[]> {
  const rows = await readDatabase<{ time: Date; host: string; process: string; kind: string; detail: HistoryEntry['detail'] }>(
    database,
    'pm history',
    'SELECT id, time, host, process, kind, detail FROM pm.history',
    filter,
    localPath,
    kind === undefined ? {} : { kind },
  );
  return rows.map((r) => ({ time: r.time.toISOString(), host: r.host, process: r.process, kind: r.kind as HistoryKind, detail: r.detail }));
}
