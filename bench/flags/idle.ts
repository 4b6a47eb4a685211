// (b) an idle daemon with many processes declared: what it asks of the database (committed
// transactions from pg_stat_database, statements from the server's log) and what it costs itself
// (CPU from /proc/PID/stat, resident memory), over one window in which nothing changes.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import { residentKiB } from '../daemon/proc.js';
import { isDaemonApp, logOffset, statementsLogged, transactionCounts, type PostgresCluster } from './database.js';

export interface IdleOptions {
  cluster: PostgresCluster;
  /** The bench's own connection (database postgres: its reads are never counted in `database`). */
  observer: pg.Client;
  database: string;
  daemonPid: number;
  /** Where every declared process reports; none may come or go during the window. */
  reports: ReportSocket;
  processes: number;
  seconds: number;
  cleanup: Cleanup;
}

export interface IdleResult {
  seconds: number;
  /** xact_commit delta of the daemon's database (autovacuum is off: its clients only). */
  commits: number;
  rollbacks: number;
  /** Statements the daemon's sessions sent (server log, log_statement = all on that database). */
  daemonStatements: number;
  /** The daemon's statements by their first words ("BEGIN", "SELECT id::text AS id, …"), in the order first seen. */
  daemonStatementTexts: [string, number][];
  /** Statements from any other session in that database (expected: none). */
  otherStatements: number;
  /** The daemon's user + system CPU over the window, in % of one CPU. */
  cpuPercent: number;
  cpuSeconds: number;
  rssKiB: { start: number; end: number; max: number };
}

/** Measures one window of `seconds`; fails if a declared process stopped or a new one reported meanwhile. */
export async function measureIdle(options: IdleOptions): Promise<IdleResult> {
  const { cluster, observer, database, daemonPid, reports } = options;
  const tick = clockTicks();
  const arrivals = reports.count;
  const rss: number[] = [];
  const sampleRss = (): void => {
    const kib = residentKiB(daemonPid);
    if (kib === undefined) throw new Error(`the daemon (pid ${daemonPid}) is gone`);
    rss.push(kib);
  };

  sampleRss();
  const logFrom = await logOffset(cluster);
  const before = await transactionCounts(observer, database);
  const cpuBefore = cpuTicks(daemonPid);
  const begin = process.hrtime.bigint();
  const end = begin + BigInt(options.seconds) * 1_000_000_000n;
  while (process.hrtime.bigint() < end) {
    if (options.cleanup.started) throw new Error('interrupted');
    await sleep(Math.min(1000, Number(end - process.hrtime.bigint()) / 1e6));
    sampleRss();
  }
  const cpuAfter = cpuTicks(daemonPid);
  const elapsed = Number(process.hrtime.bigint() - begin) / 1e9;
  const after = await transactionCounts(observer, database);
  const logTo = await logOffset(cluster);

  if (reports.count !== arrivals) throw new Error(`${reports.count - arrivals} process(es) (re)started during the idle window`);
  if (reports.live().length !== options.processes) throw new Error(`${reports.live().length} of ${options.processes} processes running at the end of the idle window`);
  const logged = await statementsLogged(cluster, logFrom, logTo, database);
  let daemonStatements = 0;
  let otherStatements = 0;
  const texts = new Map<string, number>();
  for (const [app, n] of logged.byApp) {
    if (!isDaemonApp(app)) {
      otherStatements += n;
      continue;
    }
    daemonStatements += n;
    for (const [text, m] of logged.byText.get(app) ?? []) texts.set(text, (texts.get(text) ?? 0) + m);
  }
  const cpuSeconds = (cpuAfter - cpuBefore) / tick;
  return {
    seconds: elapsed,
    commits: after.commits - before.commits,
    rollbacks: after.rollbacks - before.rollbacks,
    daemonStatements,
    daemonStatementTexts: [...texts],
    otherStatements,
    cpuPercent: (100 * cpuSeconds) / elapsed,
    cpuSeconds,
    rssKiB: { start: rss[0] as number, end: rss[rss.length - 1] as number, max: Math.max(...rss) },
  };
}

/** utime + stime of the whole process (every thread), in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command's closing parenthesis start at field 3 (state): utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Clock ticks per second (USER_HZ), 100 almost everywhere. */
function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}
