// The results of bench/systemd.ts as markdown: what ran where and how, the crash → restarted table
// with where the time went (systemd's own timestamps of each unit), what pm's polling cost, and
// pm's systemctl calls timed alone; the block of docs/benchmarks.md that --write replaces.
import type { ReporterBinary } from '../daemon/child.js';
import { ratio, table, type Machine } from '../daemon/report.js';
import { formatMs, summarize } from '../daemon/stats.js';
import type { UnitManager } from './managers.js';
import type { Call, CallTimes, CpuTimes } from './namespace.js';
import { msBetween, type Trial } from './trials.js';

/** The block of the default run; a run with --poll-ms N has its own (so both can stand side by side). */
export function runMarkers(pollMs: number | undefined): { begin: string; end: string } {
  const name = pollMs === undefined ? 'bench:systemd:run' : `bench:systemd:run:poll-${pollMs}`;
  return { begin: `<!-- ${name} -->`, end: `<!-- /${name} -->` };
}

/** CPU used while the trials ran, ms. */
export interface RunCost {
  wallMs: number;
  daemon: CpuTimes | undefined;
  systemd: CpuTimes | undefined;
}

export interface SystemdReport {
  startedAt: Date;
  command: string;
  args: string[];
  machine: Machine;
  systemd: string;
  loadAtStart: string;
  loadAtEnd: string;
  reporter: ReporterBinary;
  /** In table order; exactly one has key 'pm'. */
  managers: UnitManager[];
  pmCommand: string;
  slots: number;
  trials: number;
  warmup: number;
  restSeconds: number;
  settleMs: number;
  all: Trial[];
  cost: RunCost;
  calls: CallTimes | undefined;
}

const CALL_LABELS: Record<Call, string> = {
  prefix: '`nsenter -t PID -m -p -- true` (the prefix alone)',
  show: "`systemctl show` of one unit, pm's 17 properties (the poll; the reap's stop and the new handle too)",
  reload: '`systemctl daemon-reload` (install, when it wrote a file or systemd needs a reload)',
  load: "`systemctl show -p Id,LoadState,LoadError,FragmentPath,DropInPaths,NeedDaemonReload` (install's check of the loaded file)",
  anchor: '`systemctl start pm.target` (already active; install, after a reload)',
  start: '`systemctl start` of a stopped Type=exec unit (returns once the program was executed)',
};

export function renderReport(r: SystemdReport): string {
  const counted = (m: UnitManager): Trial[] => r.all.filter((t) => t.manager === m.key && !t.warmup);
  const samples = (m: UnitManager): number[] => counted(m).map((t) => msBetween(t.t0, t.t1));
  const pm = r.managers.find((m) => m.key === 'pm') as UnitManager;
  const peers = r.managers.filter((m) => m !== pm);
  const ups = r.managers.flatMap((m) => counted(m).map((t) => t.upMs));
  const step = (m: UnitManager, from: (t: Trial) => bigint | undefined, to: (t: Trial) => bigint | undefined): string => {
    const trials = counted(m);
    const values = trials.flatMap((t) => {
      const a = from(t);
      const b = to(t);
      return a === undefined || b === undefined ? [] : [msBetween(a, b)];
    });
    if (values.length === 0) return '—';
    const median = summarize(values).median;
    return `${median < 0 ? '−' : ''}${formatMs(Math.abs(median))}${values.length < trials.length ? ` (${values.length} trials)` : ''}`;
  };
  const row = (label: string, from: (t: Trial) => bigint | undefined, to: (t: Trial) => bigint | undefined): string =>
    `| ${label} | ${r.managers.map((m) => step(m, from, to)).join(' | ')} |`;
  const restarts = (m: UnitManager): string => {
    const bySlot = new Map<number, number>();
    for (const t of r.all) if (t.manager === m.key) bySlot.set(t.slot, Math.max(bySlot.get(t.slot) ?? 0, t.restarts));
    return `${m.name} ${[...bySlot.values()].reduce((a, b) => a + b, 0)}`;
  };

  const lines = [
    `### Run of ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`${r.command}\` (that is \`node --import tsx bench/systemd.ts${r.args.length > 0 ? ` ${r.args.join(' ')}` : ''}\`), code at ${r.machine.commit}.`,
    '',
    `- machine: ${r.machine.cores} × ${r.machine.cpu}; ${r.machine.os}, ${r.machine.kernel}; Node ${r.machine.node}`,
    `- ${r.systemd}, booted as PID 1 of a throwaway PID + mount namespace (test/support/systemd.ts: units only from its private /run), reached with \`nsenter -t PID -m -p --\``,
    `- load average (1, 5, 15 min): ${r.loadAtStart} at the start, ${r.loadAtEnd} at the end`,
    `- every unit runs \`REPORTER SOCKET\`: bench/daemon/reporter.c (${r.reporter.linkage}), which connects to a unix socket of the bench in a temp folder (the namespace shares the file system but /run) and writes its pid; the bench stamps the accepted connection`,
    ...r.managers.flatMap((m) => [
      `- ${m.name}: ${m.settings}${m === pm ? `; the daemon: \`${r.pmCommand}\`` : ''}; for unit NAME:`,
      '',
      `  \`\`\`${m.config.language}`,
      ...m.config.text.trimEnd().split('\n').map((l) => `  ${l}`),
      '  ```',
      '',
    ]),
    "- crash: SIGKILL from the host of the unit's main process (systemd's MainPID is the namespace's pid: the bench kills the child of systemd that has it there, checked to run the reporter), the same for all; t0 just before the `kill`",
    '',
    `**Crash → restarted.** t0 → the new run's reporter has connected to the bench's socket. ${r.slots} units per manager taking turns, each up at least ${r.restSeconds} s before its next crash (systemd's start limit is 5 starts in 10 s, and it counts pm's starts too; the killed runs had been up ${formatMs(Math.min(...ups))}–${formatMs(Math.max(...ups))}); managers alternated trial by trial, ${r.settleMs}–${2 * r.settleMs} ms between trials; ${r.trials} trials per manager after ${r.warmup} not counted.`,
    '',
    table(r.managers.map((m) => ({ label: m.name, samples: samples(m) }))),
    '',
    ...peers.map((m) => `${ratio(summarize(samples(pm)), m.name, summarize(samples(m)))}.`).flatMap((l) => [l, '']),
    `Where the time went, the median of each step (systemd's monotonic timestamps of the unit, read after each trial, are on the bench's clock; pm's \`Exited\` event is its log's wall-clock ms, mapped onto the bench's clock once per run; steps need not add up to the median total). systemd's own count of restarts (NRestarts, all units of each manager, warm-up included): ${r.managers.map(restarts).join('; ')}.`,
    '',
    `| step | ${r.managers.map((m) => m.name).join(' | ')} |`,
    `| --- | ${r.managers.map(() => '---:').join(' | ')} |`,
    row('t0 → systemd has handled the death (`ActiveExitTimestamp`)', (t) => t.t0, (t) => t.exitSeen),
    row("t0 → pm has taken the exit in (its `Exited` event: its poll's `show` has answered)", (t) => t.t0, (t) => t.seenByPm),
    row('systemd has handled the death → the start job began (`InactiveExitTimestamp`): RestartSec=, or all of pm\'s reaction', (t) => t.exitSeen, (t) => t.startBegun),
    row("pm's `Exited` event → the start job began (pm's calls before and up to `systemctl start`)", (t) => t.seenByPm, (t) => t.startBegun),
    row('the start job → the new main process forked (`ExecMainStartTimestamp`; negative: stamped at the fork, before the state change)', (t) => t.startBegun, (t) => t.forked),
    row('forked → the reporter connected (exec, then its connect)', (t) => t.forked, (t) => t.t1),
    '',
    costLine(r.cost, pm),
  ];
  if (r.calls) {
    lines.push(
      '',
      `**pm's systemctl calls alone**, through pm's own runner (src/drivers/systemd) and the same prefix, one at a time, timed by the bench (the spawn of nsenter and systemctl included); ${r.calls.prefix.length} rounds.`,
      '',
      table(
        (Object.keys(CALL_LABELS) as Call[]).map((call) => ({ label: CALL_LABELS[call], samples: r.calls?.[call] ?? [] })),
        'call',
      ),
    );
  }
  return lines.join('\n');
}

function costLine(cost: RunCost, pm: UnitManager): string {
  const share = (ms: number): string => `${formatMs(ms)}, ${((100 * ms) / cost.wallMs).toFixed(1)} % of one core`;
  const parts: string[] = [];
  if (cost.daemon) parts.push(`the ${pm.name} daemon ${share(cost.daemon.own)}, and its finished children (nsenter + systemctl) ${share(cost.daemon.children)}`);
  if (cost.systemd) parts.push(`systemd (PID 1 inside, for every manager's units and pm's calls) ${share(cost.systemd.own)}`);
  return `CPU while the trials ran (${formatMs(cost.wallMs)}): ${parts.join('; ') || 'not measured'}.`;
}
