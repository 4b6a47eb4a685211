// The results of bench/flags.ts as markdown: what ran where, the latency table with where the time
// went, and the idle figures; the block between the bench:flags:run markers that --write replaces.
import type { ReporterBinary } from '../daemon/child.js';
import { mib, table, type Machine } from '../daemon/report.js';
import { formatMs } from '../daemon/stats.js';
import type { IdleResult } from './idle.js';
import { FLAG_PROCESS, median, type FlagMode, type FlagSamples } from './latency.js';

export const RUN_MARKERS = { begin: '<!-- bench:flags:run -->', end: '<!-- /bench:flags:run -->' };

export interface FlagsReport {
  startedAt: Date;
  command: string;
  args: string[];
  machine: Machine;
  loadAtStart: string;
  loadAtEnd: string;
  postgres: string;
  /** The daemon's command line with DB for the database and S for flagPollSeconds. */
  daemonCommand: string;
  manifestSettings: string;
  binary: ReporterBinary;
  latency: { trials: number; warmup: number; block: number; settleMs: number; pollSeconds: number; samples: Record<FlagMode, FlagSamples> };
  idle: { processes: number; settleSeconds: number; upAfterMs: number; result: IdleResult; stopMs: number | undefined };
}

const MODE_LABEL: Record<FlagMode, (pollSeconds: number) => string> = {
  notify: () => 'NOTIFY (flagPollSeconds 3600)',
  poll: (s) => `polling only (trigger disabled, flagPollSeconds ${s})`,
};

export function renderReport(r: FlagsReport): string {
  const { latency: a, idle: b } = r;
  const stage = (label: string, pick: (s: FlagSamples) => number[]): string =>
    `| ${label} | ${formatMs(median(pick(a.samples.notify)))} | ${formatMs(median(pick(a.samples.poll)))} |`;
  const perSecond = (n: number): string => `${(n / b.result.seconds).toFixed(2)}/s`;
  const lines = [
    `### Run of ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`${r.command}\` (that is \`node --import tsx bench/flags.ts${r.args.length > 0 ? ` ${r.args.join(' ')}` : ''}\`), code at ${r.machine.commit}.`,
    '',
    `- machine: ${r.machine.cores} × ${r.machine.cpu}; ${r.machine.os}, ${r.machine.kernel}; Node ${r.machine.node}`,
    `- load average (1, 5, 15 min): ${r.loadAtStart} at the start, ${r.loadAtEnd} at the end`,
    `- database: ${r.postgres}, a throwaway cluster on the same machine (fsync off, autovacuum off), scram password over TCP 127.0.0.1; one database per daemon, each migrated by \`pm db migrate\``,
    `- pm: \`PM_DATABASE_URL=postgres://pm_test@127.0.0.1:PORT/DB PGPASSWORD=… ${r.daemonCommand}\` (S: 3600 with NOTIFY, ${r.latency.pollSeconds} polling only; left out in (b): the default, 5); ${r.manifestSettings}`,
    `- child: bench/daemon/reporter.c (${r.binary.linkage} build)`,
    '',
    `**(a) flag written → restart begun.** t0 right before \`INSERT INTO pm.flags (process, action) VALUES ('${FLAG_PROCESS}', 'restart')\` is sent (the writer's own connection, already open) → the replacement of \`${FLAG_PROCESS}\` has connected. Two daemons side by side, a database each; ${a.trials} trials per mode after ${a.warmup} not counted, modes alternated in blocks of ${a.block}; after each trial the old child's exit and the row's \`result = ok\` are awaited, then a pause of ${a.settleMs}–${2 * a.settleMs} ms (NOTIFY) or ${a.settleMs}–${a.settleMs + a.pollSeconds * 1000} ms (polling: flags meet the poll loop at every phase).`,
    '',
    table(
      (['notify', 'poll'] as const).map((mode) => ({ label: MODE_LABEL[mode](a.pollSeconds), samples: a.samples[mode].total })),
      'mode',
    ),
    '',
    'Where the time went, the median of each step (they need not add up to the median total):',
    '',
    '| step | NOTIFY | polling |',
    '| --- | ---: | ---: |',
    stage('t0 → the INSERT has returned (the writer\'s round trip, commit included)', (s) => s.insert),
    stage('the INSERT began → the daemon began the transaction that claimed the row (server clock: `handled_at − requested_at`)', (s) => s.claim),
    stage('that BEGIN → the old child gone (claim query, control, reconcile, SIGTERM, exit)', (s) => s.stop),
    stage('the old child gone → the replacement connected (spawn, exec, connect)', (s) => s.start),
    '',
    `**(b) idle, ${b.processes.toLocaleString('en-US')} processes declared** (the same C reporter, blocking; flagPollSeconds at its default, 5): all running ${formatMs(b.upAfterMs)} after the daemon was started; measured over ${b.result.seconds.toFixed(1)} s from ${b.settleSeconds} s later and at least 12 s after the daemon began to LISTEN (a backend's counts reach \`pg_stat_database\` at most once a second, the rest up to 10 s later: the daemon's start-up transactions must not fall into the window). No process started or stopped in the window.`,
    '',
    '| idle window | |',
    '| --- | ---: |',
    `| committed transactions in the daemon's database (\`pg_stat_database.xact_commit\` delta; the bench reads it from database \`postgres\`, so 0 of its own) | ${b.result.commits} (${perSecond(b.result.commits)}) |`,
    `| statements the daemon sent (server log, \`log_statement = all\` on its database) | ${b.result.daemonStatements} (${perSecond(b.result.daemonStatements)}) |`,
    `| … of which | ${b.result.daemonStatementTexts.map(([text, n]) => `\`${text}\` ${n}`).join('; ') || '–'} |`,
    `| statements from any other session in that database | ${b.result.otherStatements} |`,
    `| rolled-back transactions | ${b.result.rollbacks} |`,
    `| daemon CPU (\`/proc/PID/stat\` utime + stime) | ${b.result.cpuPercent.toFixed(2)} % of one CPU (${b.result.cpuSeconds.toFixed(2)} s) |`,
    `| daemon RSS at the start / end / highest in the window | ${mib(b.result.rssKiB.start)} / ${mib(b.result.rssKiB.end)} / ${mib(b.result.rssKiB.max)} |`,
    ...(b.stopMs === undefined ? [] : [`| then: SIGTERM to the daemon (\`--shutdown stop\`) → it exited, every process stopped | ${formatMs(b.stopMs)} |`]),
  ];
  return lines.join('\n');
}
