// One measurement: a manager alone on the machine (of the managers compared) supervising N idle
// children. Start it, wait until every child has reported and check each is the manager's own,
// let it settle, then over one window sample its resident memory several times and take its CPU
// time; then shut it down and wait until every child is gone.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReportSocket } from '../daemon/child.js';
import type { Cleanup } from '../daemon/cleanup.js';
import type { Manager, ProcessSpec } from '../daemon/manager.js';
import { cmdline, isAlive, killHard } from '../daemon/proc.js';
import { cpuTimes } from '../systemd/namespace.js';
import { memoryOf, processTable, subtree, type ProcessEntry } from './proc.js';

export interface CellOptions {
  /** After every child has reported, before the window. */
  settleSeconds: number;
  windowSeconds: number;
  /** Memory samples spread over the window (the first at its start, the last at its end). */
  samples: number;
  /** The reporter's path: a process running it is a child, not part of the manager. */
  reporter: string;
  cleanup: Cleanup;
  progress: (line: string) => void;
  /** Called after the window, before the shutdown, with the daemon's pid (pm's heap is read there). */
  beforeShutdown?: ((daemonPid: number) => Promise<void>) | undefined;
}

export interface CellResult {
  processes: number;
  /** Manager started → the last of the N children has reported. */
  startSeconds: number;
  /** The manager's long-lived processes measured (pid and name), its children left out. */
  measured: ProcessEntry[];
  /** One per sample: the sum over the measured processes, KiB. */
  rssKiB: number[];
  /** Empty without smaps_rollup. */
  pssKiB: number[];
  ussKiB: number[];
  /** utime + stime of the measured processes over the window, in % of one core. */
  cpuPercent: number;
  windowSeconds: number;
  /** Shutdown requested → every child gone. */
  stopSeconds: number;
}

/** Seconds allowed for N children to report: managers start them at very different rates (PM2 one by one). */
export function startTimeoutMs(processes: number): number {
  return 60_000 + 300 * processes;
}

export async function measureCell(manager: Manager, specs: ProcessSpec[], reports: ReportSocket, options: CellOptions): Promise<CellResult> {
  const n = specs.length;
  const startedAt = process.hrtime.bigint();
  await manager.start(specs);
  await waitFor(() => reports.live().length >= n, startTimeoutMs(n), () => `${manager.name} to start ${n} children (${reports.live().length} reported)`, manager, options);
  const startSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const daemon = manager.daemonPid();
  if (daemon === undefined) throw new Error(`${manager.name}: no daemon pid after start`);
  const { measured, children } = checkChildren(manager.name, daemon, reports, n, options.reporter);
  options.progress(`  ${manager.name}: ${n} children running after ${startSeconds.toFixed(1)} s; measuring ${measured.map((p) => `${p.comm} ${p.pid}`).join(', ')}`);

  await pause(options.settleSeconds * 1000, options.cleanup);
  const arrivals = reports.count;
  const rssKiB: number[] = [];
  const pssKiB: number[] = [];
  const ussKiB: number[] = [];
  const sample = (): void => {
    let [rss, pss, uss] = [0, 0, 0];
    for (const p of measured) {
      const memory = memoryOf(p.pid);
      if (memory === undefined) throw new Error(`${manager.name}: ${p.comm} ${p.pid} is gone`);
      rss += memory.rssKiB;
      pss += memory.pssKiB ?? Number.NaN;
      uss += memory.ussKiB ?? Number.NaN;
    }
    rssKiB.push(rss);
    if (!Number.isNaN(pss)) pssKiB.push(pss);
    if (!Number.isNaN(uss)) ussKiB.push(uss);
  };
  const cpu = (): number => measured.reduce((sum, p) => sum + (cpuTimes(p.pid)?.own ?? Number.NaN), 0);
  const cpuBefore = cpu();
  const begin = process.hrtime.bigint();
  sample();
  const gap = (options.windowSeconds * 1000) / Math.max(1, options.samples - 1);
  for (let i = 1; i < options.samples; i++) {
    await pause(gap, options.cleanup);
    sample();
  }
  const cpuAfter = cpu();
  const windowSeconds = Number(process.hrtime.bigint() - begin) / 1e9;
  if (reports.count !== arrivals) throw new Error(`${manager.name}: ${reports.count - arrivals} child(ren) (re)started during the window: not idle`);
  if (reports.live().length !== n) throw new Error(`${manager.name}: ${reports.live().length} of ${n} children running at the end of the window`);
  if (Number.isNaN(cpuAfter - cpuBefore)) throw new Error(`${manager.name}: a measured process ended during the window`);

  await options.beforeShutdown?.(daemon);
  const stopping = process.hrtime.bigint();
  await manager.shutdown();
  const left = await childrenGone(reports, children, 30_000, options.reporter);
  if (left.length > 0) throw new Error(`${manager.name}: ${left.length} children still running after its shutdown (killed now): ${left.slice(0, 10).join(', ')}${left.length > 10 ? ', …' : ''}`);
  const stopSeconds = Number(process.hrtime.bigint() - stopping) / 1e9;
  return { processes: n, startSeconds, measured, rssKiB, pssKiB, ussKiB, cpuPercent: (100 * (cpuAfter - cpuBefore)) / 1000 / windowSeconds, windowSeconds, stopSeconds };
}

/**
 * N children must have reported, and exactly N processes below the manager's daemon must run the
 * reporter (host pids: a child in systemd's namespace reports its pid there). Returns the
 * manager's own processes (the daemon and anything else below it that is not a child: none for
 * the managers here, listed in the report if there were) and the children's host pids.
 */
function checkChildren(name: string, daemon: number, reports: ReportSocket, n: number, reporter: string): { measured: ProcessEntry[]; children: number[] } {
  const tree = subtree(daemon, processTable());
  if (tree.length === 0) throw new Error(`${name}: its daemon (pid ${daemon}) is not running`);
  if (reports.live().length !== n) throw new Error(`${name}: ${reports.live().length} children reported, ${n} expected`);
  const isChild = (p: ProcessEntry): boolean => p.pid !== daemon && cmdline(p.pid)?.[0] === reporter;
  const children = tree.filter(isChild).map((p) => p.pid);
  if (children.length !== n) throw new Error(`${name}: ${children.length} processes run the reporter under pid ${daemon}, ${n} expected`);
  return { measured: tree.filter((p) => !isChild(p)), children };
}

/** Waits for every connection to close (the child died); those of `pids` still alive after timeoutMs are killed and returned. */
async function childrenGone(reports: ReportSocket, pids: readonly number[], timeoutMs: number, reporter: string): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  while (reports.live().length > 0 && Date.now() < deadline) await sleep(50);
  const left = pids.filter((pid) => isAlive(pid) && cmdline(pid)?.[0] === reporter);
  for (const pid of left) killHard(pid);
  return left;
}

async function waitFor(ready: () => boolean, timeoutMs: number, what: () => string, manager: Manager, options: Pick<CellOptions, 'cleanup'>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (options.cleanup.started) throw new Error('interrupted');
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}\n${await manager.diagnostics()}`);
    await sleep(50);
  }
}

/** Sleeps, in steps short enough to notice Ctrl-C. */
async function pause(ms: number, cleanup: Cleanup): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cleanup.started) throw new Error('interrupted');
    await sleep(Math.min(250, end - Date.now()));
  }
}
