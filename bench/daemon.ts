// Daemon latency against peers, in the same run: (a) crash → replacement running, for pm daemon,
// PM2 and supervisord (plus a minimal Node supervisor as the floor), alternating trial by trial;
// (b) manifest write → first action, for pm. The supervised child is a small C program
// (bench/daemon/reporter.c) that reports to the bench over a unix socket as soon as it runs.
//
// Usage: npm run build && npm run bench:daemon -- [--trials 200] [--quick] [--warmup 3]
//          [--settle-ms 100] [--managers pm,pm2,supervisord,minimal] [--write] [--raw FILE]
//          [--pm-cli PATH]
// Peers are installed when missing: PM2 into bench/.peers (npm), supervisord from Debian (as root).
// Every manager runs in a temp folder of its own and is shut down, with its children, at the end,
// on failure and on Ctrl-C. --write puts the results into docs/benchmarks.md between the
// <!-- bench:daemon --> markers; --raw writes every trial's clock readings as JSON lines (to line
// them up with a traced daemon's timestamps); --pm-cli benchmarks another build of pm in place of
// ./dist (an older commit's, for a before/after in one run of the machine's noise).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ReportSocket, reporterBinary } from './daemon/child.js';
import { Cleanup } from './daemon/cleanup.js';
import { watchesDirectory, type Manager, type ManagerContext, type ProcessSpec, type Skipped } from './daemon/manager.js';
import { MinimalManager } from './daemon/managers/minimal.js';
import { DEFAULT_CLI, PmManager } from './daemon/managers/pm.js';
import { Pm2Manager } from './daemon/managers/pm2.js';
import { SupervisordManager } from './daemon/managers/supervisord.js';
import { cmdline, isAlive, killHard, residentKiB } from './daemon/proc.js';
import { describeMachine, loadAverage, mib, ratio, table, writeBlock } from './daemon/report.js';
import { crashToRunning, writeToRunning, type RawTrial, type Subject, type TrialOptions } from './daemon/scenarios.js';
import { formatMs, summarize, type Summary } from './daemon/stats.js';
import { benchArgs } from './args.js';

const { positiveInt, nonNegativeInt, usage } = benchArgs('bench:daemon');

const MANAGER_KEYS = ['pm', 'pm2', 'supervisord', 'minimal'] as const;
type ManagerKey = (typeof MANAGER_KEYS)[number];
const FACTORIES: Record<ManagerKey, (context: ManagerContext) => Promise<Manager | Skipped>> = {
  pm: (c) => PmManager.create(c, pmCli),
  pm2: (c) => Pm2Manager.create(c),
  supervisord: (c) => SupervisordManager.create(c),
  minimal: async (c) => new MinimalManager(c),
};
const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
/** The first report of a freshly started manager (supervisord's Python start-up is the slowest). */
const FIRST_START_TIMEOUT_MS = 30_000;

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '3' },
    'settle-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '10000' },
    managers: { type: 'string', default: MANAGER_KEYS.join(',') },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('usage: npm run bench:daemon -- [--trials N (200)] [--quick (20 trials)] [--warmup N (3)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--managers pm,pm2,supervisord,minimal] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)]');
  process.exit(0);
}
const trials = positiveInt(values.trials ?? (values.quick ? '20' : '200'), '--trials');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const keys = values.managers.split(',').map((k) => k.trim());
for (const key of keys) if (!(MANAGER_KEYS as readonly string[]).includes(key)) usage(`--managers: unknown manager "${key}"; known: ${MANAGER_KEYS.join(', ')}`);
if (!keys.includes('pm')) usage('--managers must include pm');
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const progress = (line: string): void => void process.stderr.write(`${line}\n`);
const args = process.argv.slice(2);
const command = `npm run bench:daemon${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`;
const startedAt = new Date();
const loadAtStart = loadAverage();
const machine = describeMachine();

const cleanup = new Cleanup();
cleanup.onSignals(progress);
const root = await mkdtemp(join(tmpdir(), 'pm-bench-daemon-'));
cleanup.add('remove the temp folder', () => rm(root, { recursive: true, force: true }));
const sockets: ReportSocket[] = [];
let binaryPath = '';
cleanup.add('leak check', () => leakCheck(sockets, binaryPath));

let exitCode = 0;
try {
  const binary = await reporterBinary();
  binaryPath = binary.path;
  const listen = async (name: string): Promise<ReportSocket> => {
    const socket = await ReportSocket.listen(join(root, `${name}.sock`));
    sockets.push(socket);
    cleanup.add(`close ${name}.sock`, () => socket.close());
    return socket;
  };

  // Every manager supervises the same spec: the reporter, told where to report.
  const subjects: Subject[] = [];
  const skipped: Skipped[] = [];
  for (const key of keys as ManagerKey[]) {
    const dir = join(root, key);
    await mkdir(dir);
    let created: Manager | Skipped;
    try {
      created = await FACTORIES[key]({ dir, log: progress });
    } catch (error) {
      if (key === 'pm') throw error;
      created = { name: key, skipped: (error as Error).message };
    }
    if ('skipped' in created) {
      skipped.push(created);
      progress(`skipping ${created.name}: ${created.skipped}`);
      continue;
    }
    const manager = created;
    const reports = await listen(`${key}-crash`);
    cleanup.add(`shut ${manager.name} down`, () => manager.shutdown());
    progress(`starting ${manager.name} ${manager.version}`);
    await manager.start([{ name: 'crash', argv: [binary.path, reports.path] }]);
    await reports.arrival(0, FIRST_START_TIMEOUT_MS, `${manager.name} to start the first child`).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await manager.diagnostics()}`);
    });
    subjects.push({ manager, reports });
  }

  const raw: RawTrial[] = [];
  const options: TrialOptions = { trials, warmup, settleMs, timeoutMs, cleanup, progress, record: (t) => raw.push(t) };
  const crash = await crashToRunning(subjects, options);

  const pm = subjects.find((s) => s.manager.name === 'pm')?.manager;
  if (!pm || !watchesDirectory(pm)) throw new Error('internal: pm must watch its directory');
  const writtenReports = await listen('pm-written');
  const written: ProcessSpec = { name: 'written', argv: [binary.path, writtenReports.path] };
  const write = await writeToRunning({ manager: pm, reports: writtenReports }, written, options);

  const memory = subjects.map((s) => ({ name: s.manager.name, pid: s.manager.daemonPid(), kib: residentKiB(s.manager.daemonPid() ?? -1) }));
  const loadAtEnd = loadAverage();
  if (values.raw !== undefined) {
    await writeFile(values.raw, raw.map((t) => `${JSON.stringify({ ...t, t0: String(t.t0), t1: String(t.t1), ms: Number(t.t1 - t.t0) / 1e6 })}\n`).join(''));
    progress(`raw trials: ${values.raw}`);
  }

  // ---- report -------------------------------------------------------------------------------
  const peers = subjects.filter((s) => s.manager !== pm && !s.manager.reference);
  const summaries = new Map(subjects.map((s) => [s.manager, summarize(crash.get(s.manager) ?? [])]));
  const best = peers.sort((a, b) => (summaries.get(a.manager)?.median ?? 0) - (summaries.get(b.manager)?.median ?? 0))[0]?.manager;
  const floor = subjects.find((s) => s.manager.reference)?.manager;
  const label = (m: Manager): string => (m.reference ? `*${m.name} (reference)*` : `${m.name} ${m.version.replace(/^v/, '')}`);
  const lines = [
    `### Run of ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`${command}\` (that is \`node --import tsx bench/daemon.ts${args.length > 0 ? ` ${args.join(' ')}` : ''}\`), code at ${machine.commit}.`,
    '',
    `- machine: ${machine.cores} × ${machine.cpu}; ${machine.os}, ${machine.kernel}; Node ${machine.node}`,
    `- load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAtEnd} at the end`,
    ...subjects.map((s) => `- ${s.manager.name}: ${s.manager === pm ? `\`${PmManager.commandLine(pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli)}\`; ` : ''}${s.manager.settings}`),
    `- child: bench/daemon/reporter.c (${binary.linkage} build), the same for every manager`,
    ...skipped.map((s) => `- skipped: ${s.name} — ${s.skipped.split('\n')[0]}`),
    '',
    `**(a) crash → replacement running.** SIGKILL of the supervised child → its replacement has connected to the bench. ${trials} trials per manager after ${warmup} not counted, managers alternated trial by trial, ${settleMs}–${2 * settleMs} ms between trials.`,
    '',
    table(subjects.map((s) => ({ label: label(s.manager), samples: crash.get(s.manager) ?? [] }))),
    '',
    best ? `${ratio(summaries.get(pm) as Summary, best.name, summaries.get(best) as Summary)} (${best.name} is the fastest peer in this run).` : 'No peer ran: no ratio.',
    ...(floor ? ['', `Over the minimal Node supervisor (the floor: SIGCHLD, the exit event, one fork + exec), pm adds ${formatMs((summaries.get(pm) as Summary).median - (summaries.get(floor) as Summary).median)} at the median.`] : []),
    '',
    `**(b) manifest write → process running (pm).** A new manifest saved into the watched folder (a dot-named temp file, then a rename) → the process it declares has connected; then the file is removed → the process is gone. ${trials} trials after ${warmup} not counted.`,
    '',
    table(
      [
        { label: 'manifest written → running', samples: write.toRunning },
        { label: 'manifest removed → gone', samples: write.toGone },
      ],
      'pm',
    ),
    '',
    `**Resident memory after the run** (VmRSS of the manager's long-lived process, one supervised process): ${memory.map((m) => `${m.name} ${mib(m.kib)}`).join(', ')}.`,
  ];
  const block = lines.join('\n');
  console.log(`\n${block}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, block)}`);
} catch (error) {
  exitCode = 1;
  if ((error as Error).message !== 'interrupted') progress(`bench failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  const failures = await cleanup.run();
  for (const failure of failures) progress(`cleanup: ${failure}`);
  if (failures.length > 0) exitCode = 1;
}
process.exit(exitCode);

/** After every manager is down: any reporter child still alive was left behind. Killed, and reported. */
function leakCheck(all: ReportSocket[], binary: string): void {
  const leaked = all
    .flatMap((s) => s.pids())
    .filter((pid) => isAlive(pid) && binary !== '' && cmdline(pid)?.[0] === binary);
  for (const pid of leaked) killHard(pid);
  if (leaked.length > 0) throw new Error(`children left running after the managers stopped (killed now): ${leaked.join(', ')}`);
}
