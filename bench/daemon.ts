// Daemon latency against peers, in the same run: (a) crash → replacement running, for pm daemon,
// PM2, supervisord, systemd (Restart=always, RestartSec=0, in a throwaway namespace) and Docker
// (--restart=always), plus a minimal Node supervisor as the floor, alternating trial by trial;
// (b) manifest write → first action, for pm. The supervised child is a small C program
// (bench/daemon/reporter.c; its container variant bench/docker/reporter.c for Docker) that reports
// to the bench over a unix socket as soon as it runs.
//
// Usage: npm run build && npm run bench:daemon -- [--trials 200] [--quick] [--warmup 3]
//          [--settle-ms 100] [--managers pm,pm2,supervisord,systemd,docker,minimal] [--write]
//          [--raw FILE] [--pm-cli PATH]
// Peers are installed when missing: PM2 into bench/.peers (npm), supervisord from Debian (as root).
// A peer that cannot run here (systemd without root, no Docker engine...) is skipped, saying why.
// Every manager runs in a temp folder of its own and is shut down, with its children, at the end,
// on failure and on Ctrl-C (systemd's namespace ended, Docker's containers removed). --write puts
// the results into docs/benchmarks.md between the <!-- bench:daemon --> markers; --raw writes
// every trial's clock readings as JSON lines (to line them up with a traced daemon's timestamps);
// --pm-cli benchmarks another build of pm in place of ./dist (an older commit's, for a
// before/after in one run of the machine's noise).
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { awaitFirstRuns, ReportSocket, reporterBinary } from './daemon/child.js';
import { watchesDirectory, type Manager, type ManagerContext, type ProcessSpec, type Skipped } from './daemon/manager.js';
import { DockerRestartManager } from './daemon/managers/docker.js';
import { MinimalManager } from './daemon/managers/minimal.js';
import { DEFAULT_CLI, PmManager } from './daemon/managers/pm.js';
import { Pm2Manager } from './daemon/managers/pm2.js';
import { SupervisordManager } from './daemon/managers/supervisord.js';
import { SystemdRestartManager } from './daemon/managers/systemd.js';
import { cmdline, isAlive, killHard, residentKiB } from './daemon/proc.js';
import { loadAverage, mib, ratio, table, writeBlock } from './daemon/report.js';
import { crashedInTurns, crashToRunning, writeToRunning, type RawTrial, type Slot, type Subject, type TrialOptions } from './daemon/scenarios.js';
import { formatMs, summarize, type Summary } from './daemon/stats.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt, usage, daemonArgs } = benchArgs('bench:daemon');

const MANAGER_KEYS = ['pm', 'pm2', 'supervisord', 'systemd', 'docker', 'minimal'] as const;
type ManagerKey = (typeof MANAGER_KEYS)[number];
const FACTORIES: Record<ManagerKey, (context: ManagerContext) => Promise<Manager | Skipped>> = {
  pm: (c) => PmManager.create(c, pmCli, { args: pmDaemonArgs }),
  pm2: (c) => Pm2Manager.create(c),
  supervisord: (c) => SupervisordManager.create(c),
  systemd: (c) => SystemdRestartManager.create(c),
  docker: (c) => DockerRestartManager.create(c),
  minimal: async (c) => new MinimalManager(c),
};
const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
/** The first report of every child of a freshly started manager (supervisord's Python start-up, Docker's containers one by one). */
const FIRST_START_TIMEOUT_MS = 60_000;

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
    'pm-daemon-args': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(`usage: npm run bench:daemon -- [--trials N (200)] [--quick (20 trials)] [--warmup N (3)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--managers ${MANAGER_KEYS.join(',')}] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)] [--pm-daemon-args="FLAGS" (none; e.g. --pm-daemon-args="--memory-mode fast")]`);
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
const pmDaemonArgs = daemonArgs(values['pm-daemon-args']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('daemon');

/** Sockets whose children report their host pid (not systemd's, in a namespace, nor Docker's tokens). */
const sockets: ReportSocket[] = [];
let binaryPath = '';
cleanup.add('leak check', () => leakCheck(sockets, binaryPath));

let exitCode = 0;
try {
  const binary = await reporterBinary();
  binaryPath = binary.path;
  // A folder of its own for each socket: Docker bind-mounts it into the container.
  const listen = async (name: string, hostPids: boolean): Promise<ReportSocket> => {
    await mkdir(join(root, 'reports', name), { recursive: true });
    const socket = await ReportSocket.listen(join(root, 'reports', name, 'r.sock'));
    if (hostPids) sockets.push(socket);
    cleanup.add(`close the socket of ${name}`, () => socket.close());
    return socket;
  };

  // Every manager supervises the same spec: the reporter, told where to report; a manager whose
  // children take turns gets several, one socket each.
  const subjects: Subject[] = [];
  const keyOf = new Map<Manager, ManagerKey>();
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
    const turns = crashedInTurns(manager) ? manager.turns.children : 1;
    const slots: Slot[] = [];
    for (let i = 0; i < turns; i++) {
      const name = turns === 1 ? 'crash' : `crash-${i}`;
      const reports = await listen(`${key}-${name}`, !crashedInTurns(manager));
      slots.push({ spec: { name, argv: [binary.path, reports.path] }, reports, upAt: 0n });
    }
    cleanup.add(`shut ${manager.name} down`, () => manager.shutdown());
    progress(`starting ${manager.name} ${manager.version}${turns > 1 ? ` with ${turns} children taking turns` : ''}`);
    await manager.start(slots.map((s) => s.spec));
    await awaitFirstRuns(new Map([[manager, slots]]), FIRST_START_TIMEOUT_MS, (_m, slot) => `its child ${slot.spec.name}`);
    subjects.push({ manager, slots });
    keyOf.set(manager, key);
  }

  const raw: RawTrial[] = [];
  const options: TrialOptions = { trials, warmup, settleMs, timeoutMs, cleanup, progress, record: (t) => raw.push(t) };
  const crash = await crashToRunning(subjects, options);

  const pm = subjects.find((s) => s.manager.name === 'pm')?.manager;
  if (!pm || !watchesDirectory(pm)) throw new Error('internal: pm must watch its directory');
  const writtenReports = await listen('pm-written', true);
  const written: ProcessSpec = { name: 'written', argv: [binary.path, writtenReports.path] };
  const write = await writeToRunning({ manager: pm, reports: writtenReports }, written, options);

  const memory = subjects.map((s) => ({ manager: s.manager, pid: s.manager.daemonPid(), kib: residentKiB(s.manager.daemonPid() ?? -1) }));
  const loadAtEnd = loadAverage();
  if (values.raw !== undefined) {
    await writeFile(values.raw, raw.map((t) => `${JSON.stringify({ ...t, t0: String(t.t0), t1: String(t.t1), ms: Number(t.t1 - t.t0) / 1e6 })}\n`).join(''));
    progress(`raw trials: ${values.raw}`);
  }

  // ---- report -------------------------------------------------------------------------------
  const peers = subjects.filter((s) => s.manager !== pm && !s.manager.reference);
  const summaries = new Map(subjects.map((s) => [s.manager, summarize(crash.get(s.manager) ?? [])]));
  const best = [...peers].sort((a, b) => (summaries.get(a.manager)?.median ?? 0) - (summaries.get(b.manager)?.median ?? 0))[0]?.manager;
  const floor = subjects.find((s) => s.manager.reference)?.manager;
  const pmSummary = summaries.get(pm) as Summary;
  const floorSummary = floor ? summaries.get(floor) : undefined;
  const label = (m: Manager): string => (m.reference ? `*${m.name} (reference)*` : `${m.name} ${m.version.replace(/^v/, '')}`);
  const smoke = values.quick || trials < 100 ? `: smoke run — not a measurement (${trials} trials per manager)` : '';
  const systemd = subjects.find((s) => keyOf.get(s.manager) === 'systemd');
  const inTurns = subjects.flatMap((s) => (crashedInTurns(s.manager) ? [`${s.manager.name}'s ${s.manager.turns.children} children took turns, each up ≥ ${s.manager.turns.restMs / 1000} s before its next crash`] : []));
  const lines = [
    `### Run of ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${smoke}`,
    '',
    `\`${command}\` (that is \`node --import tsx bench/daemon.ts${args.length > 0 ? ` ${args.join(' ')}` : ''}\`), code at ${machine.commit}.`,
    '',
    `- machine: ${machine.cores} × ${machine.cpu}; ${machine.os}, ${machine.kernel}; Node ${machine.node}`,
    `- load average (1, 5, 15 min): ${loadAtStart} at the start, ${loadAtEnd} at the end`,
    ...subjects.map((s) => `- ${s.manager.name}: ${s.manager === pm ? `\`${PmManager.commandLine(pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli, pmDaemonArgs)}\`; ` : ''}${s.manager.settings}`),
    `- child: bench/daemon/reporter.c (${binary.linkage} build), the same for every manager${[...keyOf.values()].includes('docker') ? ' but Docker (its container variant, above)' : ''}`,
    ...skipped.map((s) => `- skipped: ${s.name} — ${s.skipped.split('\n')[0]}`),
    '',
    `**(a) crash → replacement running.** SIGKILL of the supervised child → its replacement has connected to the bench. ${trials} trials per manager after ${warmup} not counted, managers alternated trial by trial, ${settleMs}–${2 * settleMs} ms between trials${inTurns.length > 0 ? `; ${inTurns.join('; ')}` : ''}.`,
    '',
    table(subjects.map((s) => ({ label: label(s.manager), samples: crash.get(s.manager) ?? [] }))),
    '',
    ...(best ? [`pm against each peer (pm / peer: below 1×, pm is the faster; ${best.name} is the fastest peer in this run):`, ''] : ['No peer ran: no ratio.']),
    ...peers.map((s) => {
      const peer = summaries.get(s.manager) as Summary;
      const gap = pmSummary.median - peer.median;
      return `- ${ratio(pmSummary, s.manager.name, peer)}; pm ${gap <= 0 ? 'ahead' : 'behind'} by ${formatMs(Math.abs(gap))} at the median. ${peerNote(keyOf.get(s.manager), pmSummary, peer, floorSummary)}`;
    }),
    ...(floorSummary ? ['', `Over the minimal Node supervisor (the floor: SIGCHLD, the exit event, one fork + exec), pm adds ${formatMs(pmSummary.median - floorSummary.median)} at the median.`] : []),
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
    `**Resident memory after the run** (VmRSS of the manager's long-lived process, with its one supervised process${systemd ? `; systemd: PID 1 of its namespace, with its ${systemd.slots.length} units` : ''}): ${memory.map((m) => `${m.manager.name} ${m.pid === undefined ? 'not measured (dockerd and containerd serve every container on the machine)' : mib(m.kib)}`).join(', ')}.`,
  ];
  const block = lines.join('\n');
  console.log(`\n${block}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, block)}`);
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);

/** After every manager is down: any reporter child still alive was left behind. Killed, and reported. */
function leakCheck(all: ReportSocket[], binary: string): void {
  const leaked = all
    .flatMap((s) => s.pids())
    .filter((pid) => isAlive(pid) && binary !== '' && cmdline(pid)?.[0] === binary);
  for (const pid of leaked) killHard(pid);
  if (leaked.length > 0) throw new Error(`children left running after the managers stopped (killed now): ${leaked.join(', ')}`);
}

/**
 * Why a peer is where it is against pm, and what would close the gap where pm is behind: one line
 * per peer under the table. Facts measured elsewhere name the bench and section that measured them.
 */
function peerNote(key: ManagerKey | undefined, pm: Summary, peer: Summary, floor: Summary | undefined): string {
  const overFloor = (s: Summary): string => (floor ? formatMs(s.median - floor.median) : '?');
  switch (key) {
    case 'pm2':
      return (
        `Both are Node daemons with the same floor (the minimal supervisor's row: SIGCHLD, libuv's waitpid, the 'exit' event, then spawn() forking the daemon and exec'ing the child); over it PM2 adds ${overFloor(peer)} at the median, pm ${overFloor(pm)}. ` +
        'pm\'s share is broken down, with what would shorten it, in "Where pm\'s restart time goes" below: its level-triggered path (exit recorded, queued, reconciled) and the writes before the spawn.'
      );
    case 'supervisord':
      return "supervisord polls: its main loop waits up to 1 s in poll() and spawns in the pass after the one that reaped the child (`runforever`: `transition()` before `reap()`), so a restart comes 1–2 s after the crash, by design.";
    case 'systemd':
      return (
        "systemd is PID 1 and the children's parent: SIGCHLD wakes its own event loop, which reaps the child, queues the restart job (RestartSec=0) and forks the new process itself, with no IPC and no large process to fork. " +
        "Its own timestamps (bench:systemd, below) place its time: the death handled about 1 ms after the SIGKILL, the restart job begun some 15 ms later (the cause of that wait is not traced), the fork at once, the reporter connected 2–3 ms after it. " +
        (pm.median <= peer.median
          ? "pm is ahead because of that wait, which is about as long as pm's whole path here; without it systemd's reaction (about 1 ms to handle the death, the fork, 2–3 ms to the reporter) would be about the Node floor's, and pm behind by what it adds over that floor."
          : `pm is behind: the Node floor alone (the 'exit' event, then spawn() forking the whole daemon) takes ${floor ? formatMs(floor.median) : '?'} here and pm's level-triggered path adds ${overFloor(pm)}. Restarting an unchanged manifest straight from the exit event, and spawning from a small long-lived helper rather than forking the daemon, would bring pm toward systemd's figure (an estimate, not measured).`)
      );
    case 'docker':
      return (
        "Not like for like: pm's exec driver forks one process, while the engine starts a container again after its restart delay (100 ms, its least: every crash here came after a run of 11 s or more): containerd's shim, runc, cgroups, the overlay mount and a network namespace, about 315 ms of `POST /containers/ID/start` alone in bench:docker. " +
        "pm supervising the same containers with its docker driver is bench:docker's comparison, below."
      );
    default:
      return '';
  }
}
