// Database flags against a real PostgreSQL and real pm daemons: (a) flag written → restart begun,
// woken by NOTIFY and by polling alone, alternated in blocks in one run; (b) what an idle daemon
// with 1,000 processes declared asks of the database (committed transactions, statements) and
// costs itself (CPU, RSS). The supervised child is bench/daemon's C reporter, which connects to a
// unix socket of the bench as soon as it runs.
//
// Usage: npm run build && npm run bench:flags -- [--trials 200] [--quick] [--warmup 3] [--block 10]
//          [--settle-ms 100] [--timeout-ms 10000] [--processes 1000] [--idle-seconds 60]
//          [--idle-settle-seconds 10] [--write] [--raw FILE] [--pm-cli PATH]
// PostgreSQL runs as a throwaway cluster (test/support/postgres.ts: initdb and pg_ctl as the
// postgres user under /var/tmp). The daemons, the cluster and the temp folder are removed at the
// end, on failure and on Ctrl-C. --write puts the results into docs/benchmarks.md between the
// <!-- bench:flags:run --> markers.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { ReportSocket, reporterBinary } from './daemon/child.js';
import type { ProcessSpec } from './daemon/manager.js';
import { DEFAULT_CLI, PmManager } from './daemon/managers/pm.js';
import { cmdline, isAlive, killHard } from './daemon/proc.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { connectAs, connectObserver, createDatabase, databaseEnv, migrate, serverVersion, startCluster, waitForListener } from './flags/database.js';
import { measureIdle } from './flags/idle.js';
import { FLAG_PROCESS, flagToRestart, rawLine, samplesOf, type FlagMode, type FlagSubject } from './flags/latency.js';
import { renderReport, RUN_MARKERS } from './flags/report.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt } = benchArgs('bench:flags');

const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const NOTIFY_POLL_SECONDS = 3600;
const POLL_SECONDS = 1;
/**
 * A backend reports its counts to pg_stat_database at most once a second; what it holds back
 * follows with its next transaction that reads a table or 10 s later (PostgreSQL's
 * PGSTAT_IDLE_INTERVAL). So the idle window begins this long after the daemon began to LISTEN:
 * its start-up transactions have been counted by then, and each of its polls (5 s apart) is
 * counted as it ends.
 */
const STATS_SETTLE_MS = 12_000;
const DATABASES: Record<FlagMode | 'idle', string> = { notify: 'pm_notify', poll: 'pm_poll', idle: 'pm_idle' };
const FIRST_START_TIMEOUT_MS = 30_000;
const LISTEN_TIMEOUT_MS = 30_000;

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '3' },
    block: { type: 'string', default: '10' },
    'settle-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '10000' },
    processes: { type: 'string' },
    'idle-seconds': { type: 'string' },
    'idle-settle-seconds': { type: 'string' },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run bench:flags -- [--trials N (200)] [--quick (20 trials, 100 processes, 10 s idle)] [--warmup N (3)] [--block N (10)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--processes N (1000)] [--idle-seconds S (60)] [--idle-settle-seconds S (10)] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)]',
  );
  process.exit(0);
}
const quick = values.quick;
const trials = positiveInt(values.trials ?? (quick ? '20' : '200'), '--trials');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const block = positiveInt(values.block, '--block');
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const processes = positiveInt(values.processes ?? (quick ? '100' : '1000'), '--processes');
const idleSeconds = positiveInt(values['idle-seconds'] ?? (quick ? '10' : '60'), '--idle-seconds');
const idleSettleSeconds = nonNegativeInt(values['idle-settle-seconds'] ?? (quick ? '3' : '10'), '--idle-settle-seconds');
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('flags');

const sockets: ReportSocket[] = [];
let binaryPath = '';

let exitCode = 0;
try {
  const binary = await reporterBinary();
  binaryPath = binary.path;

  progress('starting PostgreSQL (a throwaway cluster)');
  const cluster = await startCluster((creating) =>
    cleanup.add('stop PostgreSQL and remove its folder', async () => {
      const created = await creating.catch(() => undefined);
      await created?.destroy();
    }),
  );
  cleanup.add('leak check', () => leakCheck(sockets, binaryPath));
  const clients: pg.Client[] = [];
  cleanup.add('close the bench\'s database connections', () => Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined))).then(() => undefined));
  const postgres = await serverVersion(cluster);
  const observer = await connectObserver(cluster);
  clients.push(observer);
  for (const [key, database] of Object.entries(DATABASES)) {
    await createDatabase(cluster, database, { logStatements: key === 'idle' });
    await migrate(pmCli, cluster, database, join(root, 'xdg-config'));
  }
  progress(`${postgres} on port ${cluster.port}; databases ${Object.values(DATABASES).join(', ')} migrated`);

  const listen = async (name: string): Promise<ReportSocket> => {
    const socket = await ReportSocket.listen(join(root, `${name}.sock`));
    sockets.push(socket);
    cleanup.add(`close ${name}.sock`, () => socket.close());
    return socket;
  };
  const daemon = async (name: string, database: string, extraArgs: string[]): Promise<PmManager> => {
    const dir = join(root, name);
    await mkdir(dir);
    const manager = await PmManager.create({ dir, log: progress }, pmCli, { env: databaseEnv(cluster, database), args: extraArgs });
    cleanup.add(`shut the ${name} daemon down`, () => manager.shutdown());
    return manager;
  };

  // ---- (a) flag written → restart begun ----------------------------------------------------
  const subjects: FlagSubject[] = [];
  for (const mode of ['notify', 'poll'] as const) {
    const database = DATABASES[mode];
    const writer = await connectAs(cluster, database, 'pm-bench-writer');
    clients.push(writer);
    if (mode === 'poll') await writer.query('ALTER TABLE pm.flags DISABLE TRIGGER flags_notify');
    const pollSeconds = mode === 'notify' ? NOTIFY_POLL_SECONDS : POLL_SECONDS;
    const manager = await daemon(mode, database, ['--flag-poll-seconds', String(pollSeconds)]);
    const reports = await listen(mode);
    progress(`starting the ${mode} daemon (flagPollSeconds ${pollSeconds})`);
    await manager.start([{ name: FLAG_PROCESS, argv: [binary.path, reports.path] }]);
    await reports.arrival(0, FIRST_START_TIMEOUT_MS, `the ${mode} daemon to start ${FLAG_PROCESS}`).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await manager.diagnostics()}`);
    });
    await waitForListener(observer, database, LISTEN_TIMEOUT_MS);
    subjects.push({ mode, manager, reports, writer, pollMs: pollSeconds * 1000 });
  }
  const flagTrials = await flagToRestart(subjects, { trials, warmup, block, settleMs, timeoutMs, cleanup, progress });
  if (values.raw !== undefined) {
    await writeFile(values.raw, flagTrials.map(rawLine).join(''));
    progress(`raw trials: ${values.raw}`);
  }
  for (const subject of subjects) await subject.manager.shutdown();

  // ---- (b) idle with many processes ---------------------------------------------------------
  const idleReports = await listen('idle');
  const idle = await daemon('idle', DATABASES.idle, []);
  const width = String(processes).length;
  const specs: ProcessSpec[] = Array.from({ length: processes }, (_, i) => ({ name: `idle-${String(i + 1).padStart(width, '0')}`, argv: [binary.path, idleReports.path] }));
  progress(`starting the idle daemon with ${processes} processes (flagPollSeconds: default)`);
  const idleStart = process.hrtime.bigint();
  await idle.start(specs);
  const allUp = await idleReports.arrival(processes - 1, Math.max(60_000, processes * 200), `the idle daemon to start ${processes} processes`).catch(async (error: Error) => {
    throw new Error(`${error.message} (${idleReports.count} started)\n${await idle.diagnostics()}`);
  });
  const upAfterMs = Number(allUp.at - idleStart) / 1e6;
  await waitForListener(observer, DATABASES.idle, LISTEN_TIMEOUT_MS);
  const listeningAt = Date.now();
  const settleUntil = Math.max(Date.now() + idleSettleSeconds * 1000, listeningAt + STATS_SETTLE_MS);
  progress(`all ${processes} running after ${(upAfterMs / 1000).toFixed(1)} s; settling ${((settleUntil - Date.now()) / 1000).toFixed(1)} s, then measuring ${idleSeconds} s`);
  while (Date.now() < settleUntil && !cleanup.started) await sleep(Math.min(1000, settleUntil - Date.now()));
  const idleResult = await measureIdle({ cluster, observer, database: DATABASES.idle, daemonPid: idle.daemonPid() as number, reports: idleReports, processes, seconds: idleSeconds, cleanup });
  const stopBegin = process.hrtime.bigint();
  await idle.shutdown();
  const stopMs = Number(process.hrtime.bigint() - stopBegin) / 1e6;
  const loadAtEnd = loadAverage();

  // ---- report -------------------------------------------------------------------------------
  const cli = pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli;
  const report = renderReport({
    startedAt,
    command,
    args,
    machine,
    loadAtStart,
    loadAtEnd,
    postgres,
    daemonCommand: PmManager.commandLine(cli, ['--flag-poll-seconds', 'S']),
    manifestSettings: 'one manifest per process: restartPolicy {policy: always, backoff: {initialSeconds: 0}, circuitBreaker: {enabled: false}}, minReadySeconds: 0',
    binary,
    latency: { trials, warmup, block, settleMs, pollSeconds: POLL_SECONDS, samples: { notify: samplesOf(flagTrials, 'notify'), poll: samplesOf(flagTrials, 'poll') } },
    idle: { processes, settleSeconds: idleSettleSeconds, upAfterMs, result: idleResult, stopMs },
  });
  console.log(`\n${report}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, RUN_MARKERS)}`);
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);

/** After every daemon is down: a reporter child still alive was left behind. Killed, and reported. */
function leakCheck(all: ReportSocket[], binary: string): void {
  const leaked = [...new Set(all.flatMap((s) => s.pids()))].filter((pid) => isAlive(pid) && binary !== '' && cmdline(pid)?.[0] === binary);
  for (const pid of leaked) killHard(pid);
  if (leaked.length > 0) throw new Error(`children left running after the daemons stopped (killed now): ${leaked.length} (${leaked.slice(0, 10).join(', ')}${leaked.length > 10 ? ', …' : ''})`);
}
