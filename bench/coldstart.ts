// Cold start of a dependency DAG (issue 6, scenario b): 100 processes in 5 levels, each above level
// 0 depending on 2–3 of the level below and ready a fixed time after it starts; every manager gets
// the same generated set in its own terms (pm: dependsOn + readiness probe; supervisord: priorities;
// PM2: file order, wait_ready; systemd: Type=notify with Requires=/After=) and starts it from
// nothing. t0: the bench asks; t1: the last process reports ready. Managers alternate run by run.
// pm and systemd are also each given the set while they run (pm-warm: manifests renamed into the
// watched folder; systemd-reload: unit files renamed in, daemon-reload, start): the same job.
//
// Usage: npm run build && npm run bench:coldstart -- [--runs 10] [--quick] [--processes 100]
//          [--levels 5] [--ready-ms 100] [--seed 1] [--managers pm,pm-warm,systemd,...] [--pm-probe notify]
//          [--probe-period 0.05] [--pm2-lanes 1] [--timeout-ms 60000] [--settle-ms 300]
//          [--write] [--raw FILE] [--pm-cli PATH] [--pm-baseline-cli PATH] [--pm-baseline-daemon-args FLAGS]
// Needs a C compiler; supervisord (installed as root when missing), PM2 (installed into
// bench/.peers) and systemd (root, systemd 252, util-linux) as bench/daemon.ts and bench/systemd.ts
// need them; for Compose, the Docker Engine and busybox-static as the tests need them, and Debian's
// docker-compose (installed as root when neither it nor the plugin is there; run by default up to
// 30 processes only). Every manager and child is stopped after each run, on failure and on Ctrl-C.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';
import { scratchFilesystem } from './scratch-fs.js';
import { reporterBinary } from './daemon/child.js';
import { DEFAULT_CLI } from './daemon/managers/pm.js';
import { cmdline, cpuTimes, killHard } from './daemon/proc.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { analyseRun, clockAnchor, splitPmHandoffs, type RunResult } from './coldstart/analysis.js';
import { ComposeColdManager } from './coldstart/managers/compose.js';
import { PmColdManager, type PmProbe } from './coldstart/managers/pm.js';
import { Pm2ColdManager } from './coldstart/managers/pm2.js';
import { SupervisordColdManager } from './coldstart/managers/supervisord.js';
import { SystemdColdManager } from './coldstart/managers/systemd.js';
import { MANAGER_KEYS, type ColdManager, type ManagerKey, type Setup, type Skipped } from './coldstart/managers/types.js';
import { ColdReports } from './coldstart/reports.js';
import { renderReport, RUN_MARKERS } from './coldstart/report.js';
import { describeDag, generateScenario } from './coldstart/scenario.js';

const { positiveInt, nonNegativeInt, usage, daemonArgs } = benchArgs('bench:coldstart');

const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
const CHILD_SOURCE = fileURLToPath(new URL('./coldstart/child.c', import.meta.url));
/** After a teardown, every child must have closed its connection within this long. */
const GONE_TIMEOUT_MS = 30_000;

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    processes: { type: 'string' },
    levels: { type: 'string', default: '5' },
    'ready-ms': { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    managers: { type: 'string' },
    'pm-probe': { type: 'string', default: 'notify' },
    'probe-period': { type: 'string', default: '0.05' },
    'pm2-lanes': { type: 'string', default: '1' },
    'compose-health-interval': { type: 'string', default: '1' },
    'timeout-ms': { type: 'string', default: '60000' },
    'settle-ms': { type: 'string', default: '300' },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    'pm-baseline-cli': { type: 'string' },
    'pm-baseline-daemon-args': { type: 'string' },
    'pm-daemon-args': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    `usage: npm run bench:coldstart -- [--runs N (10; quick 3)] [--quick (3 runs of 30 processes)] [--processes N (100; quick 30)] [--levels L (5)] [--ready-ms MS (100)] [--seed N (1)] [--managers ${MANAGER_KEYS.join(',')}] [--pm-probe notify|startup|tcp|exec (notify)] [--probe-period S (0.05)] [--pm2-lanes N (1)] [--compose-health-interval S (1)] [--timeout-ms MS per run (60000)] [--settle-ms MS (300)] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)] [--pm-baseline-cli PATH (another build of pm, e.g. a worktree's dist/cli/main.js, run as pm-warm is, alternated with the others)] [--pm-baseline-daemon-args="FLAGS" (that baseline's daemon flags; alone, the same build with other flags)] [--pm-daemon-args="FLAGS" (none; e.g. --pm-daemon-args="--memory-mode fast")]`,
  );
  process.exit(0);
}
const runs = positiveInt(values.runs ?? (values.quick ? '3' : '10'), '--runs');
const count = positiveInt(values.processes ?? (values.quick ? '30' : '100'), '--processes');
const levels = positiveInt(values.levels, '--levels');
if (count % levels !== 0) usage(`--processes ${count} must split evenly into --levels ${levels}`);
const readyMs = nonNegativeInt(values['ready-ms'], '--ready-ms');
const seed = nonNegativeInt(values.seed, '--seed');
const baselineCli = values['pm-baseline-cli'] === undefined ? undefined : resolve(values['pm-baseline-cli']);
const baselineArgs = values['pm-baseline-daemon-args'] === undefined ? undefined : daemonArgs(values['pm-baseline-daemon-args']);
const baseline = baselineCli !== undefined || baselineArgs !== undefined;
// pm-baseline runs when --pm-baseline-cli or --pm-baseline-daemon-args asks for it, and only then.
if (!baseline && values.managers?.split(',').some((k) => k.trim() === 'pm-baseline')) usage('--managers pm-baseline needs --pm-baseline-cli PATH or --pm-baseline-daemon-args FLAGS: what to compare with');
const keys = (values.managers ?? MANAGER_KEYS.join(',')).split(',').map((k) => k.trim()).filter((k) => k !== 'pm-baseline');
for (const key of keys) if (!(MANAGER_KEYS as readonly string[]).includes(key)) usage(`--managers: unknown manager "${key}"; known: ${MANAGER_KEYS.join(', ')}`);
if (baseline) keys.push('pm-baseline');
const probe = values['pm-probe'];
if (probe !== 'tcp' && probe !== 'startup' && probe !== 'exec' && probe !== 'notify') usage(`--pm-probe must be tcp, startup, exec or notify, got "${probe}"`);
const period = Number(values['probe-period']);
const composeInterval = Number(values['compose-health-interval']);
if (!(composeInterval >= 0.001)) usage(`--compose-health-interval must be at least 0.001 s (Docker's minimum), got ${values['compose-health-interval']}`);
if (!(period > 0)) usage(`--probe-period must be a number of seconds > 0, got "${values['probe-period']}"`);
const lanes = positiveInt(values['pm2-lanes'], '--pm2-lanes');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const pmDaemonArgs = daemonArgs(values['pm-daemon-args']);
const repo = fileURLToPath(new URL('..', import.meta.url));
const smoke = runs < 10 || count !== 100 || levels !== 5 || readyMs !== 100;

const { progress, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('coldstart');
const scratch = { folder: root, ...scratchFilesystem(root) };


let exitCode = 0;
try {
  const child = await reporterBinary(CHILD_SOURCE);
  const reports = await ColdReports.listen(join(root, 'reports.sock'));
  cleanup.add('close the report socket; kill any child still connected', async () => {
    const left = killChildren(reports.livePids(), child.path);
    await reports.close();
    if (left.length > 0) throw new Error(`children still alive after every manager stopped (killed): ${left.join(', ')}`);
  });
  const scenario = generateScenario({ count, levels, seed, readyMs });
  progress(`scenario: ${count} processes in ${levels} levels of ${scenario.width}, ready ${readyMs} ms after start, seed ${seed}; the DAG:`);
  for (const line of describeDag(scenario)) progress(`  ${line}`);
  const setup: Setup = { scenario, child: child.path, socket: reports.path, log: progress };

  const managers: ColdManager[] = [];
  const skipped: Skipped[] = [];
  const pmOptions = { cli: pmCli, cliShown: pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli, probe: probe as PmProbe, periodSeconds: period, daemonArgs: pmDaemonArgs };
  const factories: Record<ManagerKey, () => Promise<ColdManager | Skipped>> = {
    pm: () => PmColdManager.create(setup, 'daemon', pmOptions),
    'pm-warm': () => PmColdManager.create(setup, 'warm', pmOptions),
    'pm-baseline': () => PmColdManager.create(setup, 'warm', { ...pmOptions, cli: baselineCli ?? pmCli, cliShown: baselineCli ?? pmOptions.cliShown, daemonArgs: baselineArgs ?? pmDaemonArgs, baseline: true }),
    'pm-apply': () => PmColdManager.create(setup, 'apply', pmOptions),
    supervisord: () => SupervisordColdManager.create(setup),
    pm2: () => Pm2ColdManager.create(setup, 'ready', lanes),
    'pm2-order': () => Pm2ColdManager.create(setup, 'order', undefined),
    systemd: () => SystemdColdManager.create(setup, 'loaded', (label, run) => cleanup.add(label, run)),
    'systemd-reload': () => SystemdColdManager.create(setup, 'reload', (label, run) => cleanup.add(label, run)),
    compose: () => ComposeColdManager.create(setup, { childStatic: child.linkage === 'static', periodSeconds: composeInterval, named: values.managers !== undefined, timeoutMs }, (label, run) => cleanup.add(label, run)),
  };
  for (const key of MANAGER_KEYS.filter((k) => keys.includes(k))) {
    const made = await factories[key]();
    if ('skipped' in made) {
      progress(`${made.name}: skipped — ${made.skipped}`);
      skipped.push(made);
      continue;
    }
    managers.push(made);
    cleanup.add(`stop ${made.name}`, () => made.teardown());
  }
  if (managers.length === 0) throw new Error('no manager to measure');
  // Ctrl-C in the middle of a run: let it finish (a manager being started is then stopped like the others), then the steps above.
  let inFlight: Promise<unknown> = Promise.resolve();
  cleanup.add('let the run in flight finish', () => inFlight.then(() => undefined, () => undefined));

  const results: RunResult[] = [];
  const names = scenario.processes.map((p) => p.name);
  progress(`${runs} cold starts per manager, alternating: ${managers.map((m) => m.name).join(', ')}`);
  for (let i = 0; i < runs; i++) {
    const order = [...managers.slice(i % managers.length), ...managers.slice(0, i % managers.length)];
    for (const manager of order) {
      if (cleanup.started) throw new Error('interrupted');
      const run = coldStart(manager, i, reports, names);
      inFlight = run;
      results.push(await run);
      await sleep(settleMs);
    }
  }

  const report = renderReport({ startedAt, command, machine, scratch, loadAtStart, loadAtEnd: loadAverage(), smoke, scenario, child, managers, skipped, results, wallSeconds: (Date.now() - startedAt.getTime()) / 1000 });
  console.log(`\n${report}\n`);
  if (values.raw !== undefined) {
    await writeFile(values.raw, results.map((r) => `${JSON.stringify(r)}\n`).join(''));
    progress(`raw runs: ${values.raw}`);
  }
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, RUN_MARKERS)}`);

  /** One cold start: prepare (untimed), t0, ask, wait for every ready report, tear down, check that every child is gone. */
  async function coldStart(manager: ColdManager, index: number, reports: ColdReports, names: readonly string[]): Promise<RunResult> {
    if (reports.liveCount > 0) throw new Error(`${reports.liveCount} children of an earlier run are still alive`);
    // Kept until the end (the temp folder goes then): removing a run's files at once would slow
    // the creates of the runs after it on ext4 without a journal (bench/scratch-fs.ts).
    const dir = join(root, 'runs', `${manager.key}-${index + 1}`);
    await mkdir(dir, { recursive: true });
    const run = reports.beginRun();
    await manager.prepare(dir);
    const anchor = clockAnchor();
    // A manager started at t0 (pm daemon) has no process yet: all its CPU counts.
    const cpuPid = manager.cpuPid?.();
    const cpuBefore = cpuPid === undefined ? { processMs: 0, mainThreadMs: 0 } : cpuTimes(cpuPid);
    const t0 = process.hrtime.bigint();
    try {
      await Promise.all([manager.start(), reports.allReady(names, timeoutMs)]);
    } catch (error) {
      throw new Error(`${manager.name}, run ${index + 1}: ${(error as Error).message}\n${await manager.diagnostics()}`, { cause: error });
    }
    const afterPid = manager.cpuPid?.();
    const cpuAfter = afterPid === undefined ? undefined : cpuTimes(afterPid);
    const result = analyseRun(manager.key, index, scenario, t0, run);
    if (cpuBefore !== undefined && cpuAfter !== undefined) {
      result.managerCpuMs = { processMs: cpuAfter.processMs - cpuBefore.processMs, mainThreadMs: cpuAfter.mainThreadMs - cpuBefore.mainThreadMs };
    }
    if (manager instanceof PmColdManager && manager.key !== 'pm-apply') splitPmHandoffs(result, scenario, run, (await manager.events()).ready, anchor);
    await manager.teardown();
    await reports.allGone(GONE_TIMEOUT_MS).catch((error: Error) => {
      // systemd's and Compose's are ended by their own teardown (a pid namespace, the engine).
      if (!(manager instanceof SystemdColdManager || manager instanceof ComposeColdManager)) killChildren(reports.livePids(), child.path);
      throw new Error(`${manager.name}, run ${index + 1}, after its teardown: ${error.message}`);
    });
    progress(
      `run ${index + 1}/${runs} ${manager.name}: ${result.totalMs.toFixed(0)} ms to all ready (first start ${result.firstStartMs.toFixed(0)} ms; ${result.violations} order violations${result.restarted > 0 ? `; ${result.restarted} started twice` : ''})`,
    );
    return result;
  }
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);

/** SIGKILL to each pid that runs the child (a pid of systemd's namespace may be another process here); returns those killed. */
function killChildren(pids: readonly number[], program: string): number[] {
  const killed = pids.filter((pid) => cmdline(pid)?.[0] === program);
  for (const pid of killed) killHard(pid);
  return killed;
}
