// Footprint against peers, in the same run: resident memory (VmRSS and PSS) and idle CPU of each
// manager's long-lived process with N idle children (10, 100, 500 and 1,000 by default), and
// memory per supervised process as the slope between sizes. One manager runs at a time, started
// afresh for every size, the order rotated; the child is bench/daemon's C reporter, which reports
// to the bench over a unix socket and then blocks in pause().
//
// Usage: npm run build && npm run bench:footprint -- [--sizes 10,100,500,1000] [--repeats 1]
//          [--managers pm,supervisord,pm2,systemd] [--settle-seconds 10] [--window-seconds 30]
//          [--samples 7] [--quick] [--write]
// Peers are installed when missing (PM2 into bench/.peers by npm, supervisord from Debian as root);
// systemd runs as PID 1 of a throwaway namespace (root). Everything started is stopped, with its
// children, after each measurement, on failure and on Ctrl-C. --write puts the results into
// docs/benchmarks.md between the <!-- bench:footprint:run --> markers.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ReportSocket, reporterBinary } from './daemon/child.js';
import type { Manager, ProcessSpec } from './daemon/manager.js';
import { cmdline, isAlive, killHard } from './daemon/proc.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { summarize } from './daemon/stats.js';
import { measureCell, type CellOptions } from './footprint/cell.js';
import { factories, MANAGER_KEYS, MEASURED, type ManagerKey } from './footprint/managers.js';
import { pmHeap, type PmHeap } from './footprint/pm-heap.js';
import { renderReport, RUN_MARKERS, type ManagerInfo, type Measurement } from './footprint/report.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt, usage, daemonArgs } = benchArgs('bench:footprint');
const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

const { values } = parseArgs({
  options: {
    sizes: { type: 'string' },
    repeats: { type: 'string', default: '1' },
    managers: { type: 'string', default: MANAGER_KEYS.join(',') },
    'settle-seconds': { type: 'string' },
    'window-seconds': { type: 'string' },
    samples: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'pm-daemon-args': { type: 'string' },
    write: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run bench:footprint -- [--sizes 10,100,500,1000] [--repeats N (1)] [--managers pm,supervisord,pm2,systemd] [--settle-seconds S (10)] [--window-seconds S (30)] [--samples N (7)] [--quick (sizes 10,100; 3 s settle, 10 s window, 5 samples)] [--pm-daemon-args="FLAGS" (none; e.g. --pm-daemon-args="--memory-mode fast")] [--write]',
  );
  process.exit(0);
}
const quick = values.quick;
const sizes = (values.sizes ?? (quick ? '10,100' : '10,100,500,1000')).split(',').map((s) => positiveInt(s.trim(), '--sizes'));
if (new Set(sizes).size !== sizes.length) usage('--sizes: a size is given twice');
const repeats = positiveInt(values.repeats, '--repeats');
const FACTORY = factories(daemonArgs(values['pm-daemon-args']));
const settleSeconds = nonNegativeInt(values['settle-seconds'] ?? (quick ? '3' : '10'), '--settle-seconds');
const windowSeconds = positiveInt(values['window-seconds'] ?? (quick ? '10' : '30'), '--window-seconds');
const samples = positiveInt(values.samples ?? (quick ? '5' : '7'), '--samples');
const keys = values.managers.split(',').map((k) => k.trim());
for (const key of keys) if (!(MANAGER_KEYS as readonly string[]).includes(key)) usage(`--managers: unknown manager "${key}"; known: ${MANAGER_KEYS.join(', ')}`);
if (!keys.includes('pm')) usage('--managers must include pm');

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('footprint');


let exitCode = 0;
try {
  const binary = await reporterBinary();
  // Each manager once up front: its version, or why it is skipped.
  const managers: ManagerInfo[] = [];
  const skipped: { name: string; reason: string }[] = [];
  for (const key of keys as ManagerKey[]) {
    const dir = join(root, `probe-${key}`);
    await mkdir(dir);
    const created = await FACTORY[key]({ dir, log: progress }).catch((error: Error) => ({ name: key, skipped: error.message }));
    if ('skipped' in created) {
      if (key === 'pm') throw new Error(created.skipped);
      skipped.push({ name: created.name, reason: created.skipped });
      progress(`skipping ${created.name}: ${created.skipped}`);
      continue;
    }
    managers.push({ key, name: created.name, version: created.version, settings: created.settings, measured: MEASURED[key] });
  }

  const options: CellOptions = { settleSeconds, windowSeconds, samples, reporter: binary.path, cleanup, progress };
  const measurements: Measurement[] = [];
  const cells = repeats * sizes.length * managers.length;
  progress(`${cells} measurements of ${settleSeconds + windowSeconds} s each, plus start and stop: at least ${Math.ceil((cells * (settleSeconds + windowSeconds)) / 60)} min`);
  let cell = 0;
  let serial = 0;
  for (let repeat = 0; repeat < repeats; repeat++) {
    // Sizes up in one repetition, down in the next; managers rotated at every step.
    const order = repeat % 2 === 0 ? sizes : [...sizes].reverse();
    for (const [step, n] of order.entries()) {
      const turn = (repeat * sizes.length + step) % managers.length;
      for (const info of [...managers.slice(turn), ...managers.slice(0, turn)]) {
        if (cleanup.started) throw new Error('interrupted');
        cell++;
        progress(`[${cell}/${cells}] ${info.name}, ${n} processes (repetition ${repeat + 1})`);
        const measurement = await measureOne(info, n, repeat, `${++serial}`, binary.path, options);
        measurements.push(measurement);
        if (measurement.error !== undefined) progress(`  failed: ${measurement.error}`);
        else if (measurement.result) progress(`  RSS ${(summarize(measurement.result.rssKiB).median / 1024).toFixed(1)} MiB, CPU ${measurement.result.cpuPercent.toFixed(2)} % of one core; stopped in ${measurement.result.stopSeconds.toFixed(1)} s`);
      }
    }
  }

  const report = renderReport({
    startedAt,
    command,
    script: `node --import tsx bench/footprint.ts${args.length > 0 ? ` ${args.join(' ')}` : ''}`,
    machine,
    load: { start: loadAtStart, end: loadAverage() },
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    smoke: quick,
    managers,
    skipped,
    reporter: `bench/daemon/reporter.c (${binary.linkage} build)`,
    sizes,
    repeats,
    settleSeconds,
    windowSeconds,
    samples,
    measurements,
  });
  console.log(`\n${report}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, RUN_MARKERS)}`);
  if (measurements.some((m) => m.error !== undefined)) exitCode = 1;
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);

/**
 * One manager, made afresh in a folder of its own, with n children reporting to a socket of their
 * own; shut down (and its children checked gone) on every path. A failure is returned, not thrown,
 * so that the other measurements go on; Ctrl-C is thrown.
 */
async function measureOne(info: ManagerInfo, n: number, repeat: number, serial: string, reporter: string, options: CellOptions): Promise<Measurement> {
  const dir = join(root, serial);
  await mkdir(dir);
  const reports = await ReportSocket.listen(join(dir, 'r.sock'));
  let manager: Manager | undefined;
  let heap: PmHeap | undefined;
  const teardown = async (): Promise<void> => {
    try {
      await manager?.shutdown();
    } finally {
      // Reported pids are host pids except in systemd's namespace, whose end kills its processes.
      if (info.key !== 'systemd') leakCheck(reports.pids(), reporter);
      await reports.close();
      await rm(dir, { recursive: true, force: true });
    }
  };
  cleanup.add(`shut ${info.name} (${n} processes) down`, teardown);
  try {
    const created = await FACTORY[info.key]({ dir, log: progress });
    if ('skipped' in created) throw new Error(created.skipped);
    manager = created;
    const specs: ProcessSpec[] = Array.from({ length: n }, (_, i) => ({ name: `fp${i}`, argv: [reporter, reports.path] }));
    const result = await measureCell(manager, specs, reports, {
      ...options,
      // pm's heap, read after the window, before the shutdown in measureCell.
      beforeShutdown:
        info.key === 'pm'
          ? async (pid) => {
              heap = await pmHeap(pid).catch((error: Error) => void progress(`  pm's /metrics could not be read: ${error.message}`));
            }
          : undefined,
    });
    await teardown();
    return { key: info.key, processes: n, repeat, result, ...(heap !== undefined && { heap }) };
  } catch (error) {
    if (cleanup.started) throw error;
    return { key: info.key, processes: n, repeat, error: `${(error as Error).message}${manager ? `\n${await manager.diagnostics().catch(() => '')}` : ''}` };
  } finally {
    await teardown().catch((error: Error) => progress(`  cleanup of ${info.name}: ${error.message}`));
  }
}

/** After a manager is down: any child of it still running was left behind. Killed, and reported. */
function leakCheck(pids: readonly number[], reporter: string): void {
  const leaked = pids.filter((pid) => isAlive(pid) && cmdline(pid)?.[0] === reporter);
  for (const pid of leaked) killHard(pid);
  if (leaked.length > 0) throw new Error(`children left running after the manager stopped (killed now): ${leaked.slice(0, 10).join(', ')}${leaked.length > 10 ? ', …' : ''}`);
}
