// Units: crash → restarted, pm daemon's systemd driver against systemd's own `Restart=always`
// (RestartSec=0, its fastest, and its default 100 ms), in one throwaway systemd booted in a PID +
// mount namespace (test/support/systemd.ts), alternated trial by trial. Every unit runs
// bench/daemon/reporter.c, which connects to a unix socket of the bench as soon as it runs; the
// bench stamps that connection.
//
// Usage: npm run build && npm run bench:systemd -- [--trials 200] [--quick] [--warmup 3]
//          [--units 4] [--rest-seconds 3] [--settle-ms 100] [--timeout-ms 10000] [--poll-ms MS]
//          [--calls 20] [--write] [--raw FILE] [--pm-cli PATH]
// Needs root, systemd 252 (/lib/systemd/systemd), util-linux (unshare, nsenter, setpriv) and a C
// compiler. The pm daemon, every unit, the namespace and the temp folder are removed at the end,
// on failure and on Ctrl-C. --write puts the results into docs/benchmarks.md between the
// <!-- bench:systemd:run --> markers (<!-- bench:systemd:run:poll-MS --> with --poll-ms).
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WAIT_POLL_MS } from '../src/drivers/systemd/index.js';
import { bootSystemd } from '../test/support/systemd.js';
import { awaitFirstRuns, reporterBinary, ReportSocket } from './daemon/child.js';
import { DEFAULT_CLI } from './daemon/managers/pm.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { PmSystemdManager, RestartAlwaysManager, type UnitManager } from './systemd/managers.js';
import { cpuTimes, removeUnitCgroups, systemdVersion, timeCalls, type CallTimes, type CpuTimes } from './systemd/namespace.js';
import { renderReport, runMarkers, type RunCost } from './systemd/report.js';
import { alternate, attachPmExits, clockAnchor, type Slot, type Trial, type TrialContext } from './systemd/trials.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt, usage } = benchArgs('bench:systemd');

const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
/** The first run of every unit: pm installs and starts them one by one after its own start-up. */
const FIRST_START_TIMEOUT_MS = 60_000;

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '3' },
    units: { type: 'string', default: '4' },
    'rest-seconds': { type: 'string', default: '3' },
    'settle-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '10000' },
    'poll-ms': { type: 'string' },
    calls: { type: 'string' },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    `usage: npm run bench:systemd -- [--trials N (200)] [--quick (20 trials)] [--warmup N (3)] [--units N per manager (4)] [--rest-seconds S (3)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--poll-ms MS (pm's PM_SYSTEMD_POLL_MS; default unset: ${WAIT_POLL_MS})] [--calls N (20; quick 5; 0: none)] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)]`,
  );
  process.exit(0);
}
const trials = positiveInt(values.trials ?? (values.quick ? '20' : '200'), '--trials');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const unitsPerManager = positiveInt(values.units, '--units');
const restSeconds = Number(values['rest-seconds']);
if (!(restSeconds >= 0)) usage(`--rest-seconds must be a number ≥ 0, got "${values['rest-seconds']}"`);
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const pollMs = values['poll-ms'] === undefined ? undefined : positiveInt(values['poll-ms'], '--poll-ms');
const callRounds = nonNegativeInt(values.calls ?? (values.quick ? '5' : '20'), '--calls');
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('systemd');
if (restSeconds * 5 < 10) progress(`note: --rest-seconds ${restSeconds}: more than 5 starts of a unit in 10 s hit systemd's start limit, and the unit is then refused`);


let exitCode = 0;
try {
  const reporter = await reporterBinary();
  progress('booting systemd in a new PID + mount namespace');
  const sd = await bootSystemd();
  const unitNames: string[] = [];
  cleanup.add('end the namespace (systemd and everything in it)', async () => {
    await sd.destroy();
    removeUnitCgroups(unitNames);
  });
  const version = await systemdVersion(sd);
  progress(`${version}, PID ${sd.pid}`);

  await mkdir(join(root, 'pm'));
  const pm = await PmSystemdManager.create(join(root, 'pm'), sd, reporter.path, {
    pollMs,
    defaultPollMs: WAIT_POLL_MS,
    log: progress,
    cli: pmCli,
    cliShown: pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli,
  });
  const managers: UnitManager[] = [new RestartAlwaysManager(sd, reporter.path, '0'), new RestartAlwaysManager(sd, reporter.path, undefined), pm];
  const pools = new Map<UnitManager, Slot[]>();
  for (const manager of managers) {
    const pool: Slot[] = [];
    for (let i = 0; i < unitsPerManager; i++) {
      const reportDir = join(root, 'reports', `${manager.key}-${i}`);
      await mkdir(reportDir, { recursive: true });
      const reports = await ReportSocket.listen(join(reportDir, 'r.sock'));
      cleanup.add(`close the socket of ${manager.key}-${i}`, () => reports.close());
      const spec = { name: manager.key === 'pm' ? `bench-${process.pid}-${i}` : `bench-${process.pid}-${manager.key}-${i}`, socket: reports.path };
      unitNames.push(manager.unitName(spec));
      pool.push({ manager, index: i, spec, reports, upAt: 0n });
    }
    pools.set(manager, pool);
    cleanup.add(`shut ${manager.name} down`, () => manager.shutdown());
    progress(`starting ${manager.name} with ${unitsPerManager} units`);
    await manager.start(pool.map((s) => s.spec));
  }
  await awaitFirstRuns(pools, FIRST_START_TIMEOUT_MS, (manager, slot) => manager.unitName(slot.spec));

  const all: Trial[] = [];
  const context: TrialContext = { sd, reporter: reporter.path, cleanup, progress, timeoutMs, settleMs, restMs: restSeconds * 1000 };
  const daemonPid = pm.daemonPid();
  const before = { at: process.hrtime.bigint(), daemon: daemonPid === undefined ? undefined : cpuTimes(daemonPid), systemd: cpuTimes(sd.pid) };
  progress(`crash → restarted: ${trials} trials per manager after ${warmup} warm-up, ${unitsPerManager} units each, each up ≥ ${restSeconds} s before its crash`);
  const anchor = clockAnchor();
  await alternate(pools, trials, warmup, context, (t) => all.push(t));
  const pmSlots = pools.get(pm) as Slot[];
  attachPmExits(all, await pm.exitEvents(), anchor, (slot) => (pmSlots[slot] as Slot).spec.name);
  const minus = (a: CpuTimes | undefined, b: CpuTimes | undefined): CpuTimes | undefined => (a && b ? { own: a.own - b.own, children: a.children - b.children } : undefined);
  const cost: RunCost = {
    wallMs: Number(process.hrtime.bigint() - before.at) / 1e6,
    daemon: minus(daemonPid === undefined ? undefined : cpuTimes(daemonPid), before.daemon),
    systemd: minus(cpuTimes(sd.pid), before.systemd),
  };

  let calls: CallTimes | undefined;
  if (callRounds > 0) {
    progress(`pm's systemctl calls alone: ${callRounds} rounds`);
    const unit = `bench-${process.pid}-calls.service`;
    unitNames.push(unit);
    await writeFile(join(sd.unitDir, unit), '[Unit]\nDescription=pm bench: systemctl calls alone\n[Service]\nType=exec\nExecStart=/bin/sleep infinity\n');
    await sd.execOk(['systemctl', 'daemon-reload']);
    calls = await timeCalls(sd, unit, callRounds, () => cleanup.started);
  }
  const loadAtEnd = loadAverage();
  if (values.raw !== undefined) {
    const line = (t: Trial): string => `${JSON.stringify(t, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value))}\n`;
    await writeFile(values.raw, all.map(line).join(''));
    progress(`raw trials: ${values.raw}`);
  }

  const report = renderReport({
    startedAt,
    command,
    args,
    machine,
    systemd: version,
    loadAtStart,
    loadAtEnd,
    reporter,
    managers,
    pmCommand: pm.command,
    slots: unitsPerManager,
    trials,
    warmup,
    restSeconds,
    settleMs,
    all,
    cost,
    calls,
  });
  console.log(`\n${report}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, runMarkers(pollMs))}`);
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);
