// One process's configuration changed → the time until it runs with the new config, and proof that
// the others were untouched: pm daemon against supervisord, PM2 and systemd in the same run,
// alternating trial by trial. Every manager supervises N processes of the same program
// (bench/daemon/reporter.c) with CONFIG=v0 in their environment; a trial changes one process's
// CONFIG through the manager's own configuration path (pm: its manifest saved into the watched
// folder; supervisord: its section, then `supervisorctl update`; PM2: the ecosystem file, then
// `pm2 restart FILE --only NAME --update-env`; systemd: the unit's Environment=, then
// `systemctl daemon-reload` and `systemctl restart UNIT`).
//
// Usage: npm run build && npm run bench:reconfig -- [--trials 200] [--quick] [--processes 20]
//          [--warmup 3] [--settle-ms 100] [--timeout-ms 10000]
//          [--managers pm,pm2,supervisord,systemd] [--write] [--raw FILE] [--pm-cli PATH]
//          [--pm-watch-debounce-ms MS]
// Needs a C compiler; supervisord and systemd need root (supervisord is installed from Debian when
// missing, PM2 from npm into bench/.peers). Every manager, every child, the systemd namespace and
// the temp folder are removed at the end, on failure and on Ctrl-C. --write puts the results into
// docs/benchmarks.md between the <!-- bench:reconfig:run --> markers; --raw writes every trial
// (clock readings and every process's pid before and after) as JSON lines; --pm-watch-debounce-ms
// runs pm's daemon with another watchDebounceMs, to show what the debounce costs (--write then
// uses the <!-- bench:reconfig:run:debounce-MS --> markers).
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ReportSocket, reporterBinary } from './daemon/child.js';
import type { ManagerContext, Skipped } from './daemon/manager.js';
import { DEFAULT_CLI } from './daemon/managers/pm.js';
import { cmdline, killHard } from './daemon/proc.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { INITIAL_CONFIG, RECONFIG_KEYS, type ReconfigKey, type ReconfigManager } from './reconfig/manager.js';
import { PmReconfig } from './reconfig/pm.js';
import { Pm2Reconfig } from './reconfig/pm2.js';
import { renderReport, runMarkers, violations } from './reconfig/report.js';
import { SupervisordReconfig } from './reconfig/supervisord.js';
import { SystemdReconfig } from './reconfig/systemd.js';
import { alternate, awaitConfigured, type Subject, type Trial } from './reconfig/trials.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt, usage, daemonArgs } = benchArgs('bench:reconfig');

const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
/** Every process of a freshly started manager running with CONFIG=v0 (PM2 starts them twice). */
const FIRST_START_TIMEOUT_MS = 60_000;

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    processes: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    'settle-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '10000' },
    managers: { type: 'string', default: RECONFIG_KEYS.join(',') },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    'pm-watch-debounce-ms': { type: 'string' },
    'pm-daemon-args': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    `usage: npm run bench:reconfig -- [--trials N (200)] [--quick (20 trials)] [--processes N per manager (20)] [--warmup N (3)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--managers ${RECONFIG_KEYS.join(',')}] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)] [--pm-watch-debounce-ms MS (the daemon's default, 50)] [--pm-daemon-args="FLAGS" (none; e.g. --pm-daemon-args="--memory-mode fast")]`,
  );
  process.exit(0);
}
const trials = positiveInt(values.trials ?? (values.quick ? '20' : '200'), '--trials');
const processes = positiveInt(values.processes, '--processes');
if (processes < 2) usage('--processes must be at least 2: the others are what must stay untouched');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const keys = values.managers.split(',').map((k) => k.trim());
for (const key of keys) if (!(RECONFIG_KEYS as readonly string[]).includes(key)) usage(`--managers: unknown manager "${key}"; known: ${RECONFIG_KEYS.join(', ')}`);
if (!keys.includes('pm')) usage('--managers must include pm');
const debounceMs = values['pm-watch-debounce-ms'] === undefined ? undefined : nonNegativeInt(values['pm-watch-debounce-ms'], '--pm-watch-debounce-ms');
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const pmDaemonArgs = daemonArgs(values['pm-daemon-args']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('reconfig');


let exitCode = 0;
try {
  const reporter = await reporterBinary();
  cleanup.add('leak check', () => leakCheck(reporter.path, root));
  const factories: Record<ReconfigKey, (context: ManagerContext) => Promise<ReconfigManager | Skipped>> = {
    pm: (c) => PmReconfig.create(c, { cli: pmCli, cliShown: pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli, debounceMs, daemonArgs: pmDaemonArgs }),
    pm2: (c) => Pm2Reconfig.create(c),
    supervisord: (c) => SupervisordReconfig.create(c),
    systemd: () => SystemdReconfig.create(reporter.path),
  };

  const subjects: Subject[] = [];
  const skipped: Skipped[] = [];
  for (const key of keys as ReconfigKey[]) {
    const dir = join(root, key);
    await mkdir(join(dir, 'reports'), { recursive: true });
    let created: ReconfigManager | Skipped;
    try {
      created = await factories[key]({ dir, log: progress });
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
    cleanup.add(`shut ${manager.name} down`, () => manager.shutdown());
    const slots = [];
    for (let i = 0; i < processes; i++) {
      const name = `p${String(i).padStart(2, '0')}`;
      const reports = await ReportSocket.listen(join(dir, 'reports', `${name}.sock`));
      cleanup.add(`close ${key}/${name}.sock`, () => reports.close());
      slots.push({ name, reports });
    }
    progress(`starting ${manager.name} ${manager.version} with ${processes} processes`);
    await manager.start(slots.map((s) => ({ name: s.name, argv: [reporter.path, s.reports.path] })));
    const subject = { manager, slots };
    await awaitConfigured(subject, INITIAL_CONFIG, FIRST_START_TIMEOUT_MS);
    subjects.push(subject);
  }

  const all: Trial[] = [];
  progress(`config changed → running: ${trials} trials per manager after ${warmup} warm-up, ${subjects.map((s) => s.manager.name).join(', ')} alternating`);
  await alternate(subjects, { trials, warmup, settleMs, timeoutMs, cleanup, progress }, (t) => all.push(t));
  const loadAtEnd = loadAverage();
  if (values.raw !== undefined) {
    await writeFile(values.raw, all.map((t) => `${JSON.stringify(t, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value))}\n`).join(''));
    progress(`raw trials: ${values.raw}`);
  }

  const report = renderReport({
    startedAt,
    command,
    args,
    machine,
    loadAtStart,
    loadAtEnd,
    linkage: reporter.linkage,
    managers: subjects.map((s) => s.manager),
    skipped,
    processes,
    trials,
    warmup,
    settleMs,
    all,
    smoke: values.quick || trials < 200,
  });
  console.log(`\n${report}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, runMarkers(debounceMs))}`);
  const bad = violations(all);
  if (bad.length > 0) {
    exitCode = 1;
    for (const t of bad.slice(0, 10)) progress(`FAILED: ${t.manager} trial ${t.index} (${t.process}): others restarted during it: ${t.othersDuring.join(', ') || 'none'}; before it: ${t.othersBetween.join(', ') || 'none'}`);
  }
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);

/**
 * After every manager is down, no reporter of this run may be left: a process running `binary`
 * with a socket in `root` (other runs' reporters report elsewhere). Killed, and reported.
 */
function leakCheck(binary: string, root: string): void {
  const left = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      const argv = cmdline(pid);
      return argv?.[0] === binary && argv[1]?.startsWith(`${root}/`) === true;
    });
  for (const pid of left) killHard(pid);
  if (left.length > 0) throw new Error(`children left running after the managers stopped (killed now): ${left.join(', ')}`);
}
