// The results of bench/reconfig.ts as markdown: what ran where, the latency table, the proof that
// the other processes were untouched, and where the time went. --write puts it between the
// bench:reconfig:run markers of docs/benchmarks.md (bench:reconfig:run:debounce-MS with
// --pm-watch-debounce-ms).
import type { Skipped } from '../daemon/manager.js';
import type { Machine } from '../daemon/report.js';
import { ratio, table } from '../daemon/report.js';
import { formatMs, summarize } from '../daemon/stats.js';
import type { ReconfigManager } from './manager.js';
import { msBetween, type Trial } from './trials.js';

/** Where --write puts a run: its own markers for a non-default pm debounce, so the default run's block stays. */
export function runMarkers(debounceMs: number | undefined): { begin: string; end: string } {
  const name = `bench:reconfig:run${debounceMs === undefined ? '' : `:debounce-${debounceMs}`}`;
  return { begin: `<!-- ${name} -->`, end: `<!-- /${name} -->` };
}

export interface ReconfigRun {
  startedAt: Date;
  /** The npm command as typed, and its arguments. */
  command: string;
  args: string[];
  machine: Machine;
  loadAtStart: string;
  loadAtEnd: string;
  linkage: string;
  managers: ReconfigManager[];
  skipped: Skipped[];
  processes: number;
  trials: number;
  warmup: number;
  settleMs: number;
  all: Trial[];
  /** Fewer trials than a measurement takes (--quick): said at the top of the block. */
  smoke: boolean;
}

/** Trials in which, or before which, another process of the same manager got a new child. */
export function violations(all: readonly Trial[]): Trial[] {
  return all.filter((t) => t.othersDuring.length > 0 || t.othersBetween.length > 0);
}

export function renderReport(r: ReconfigRun): string {
  const counted = (m: ReconfigManager): Trial[] => r.all.filter((t) => t.manager === m.key && !t.warmup);
  const label = (m: ReconfigManager): string => `${m.name} ${m.version.replace(/^v/, '')}`;
  const pm = r.managers.find((m) => m.key === 'pm');
  const peers = r.managers.filter((m) => m !== pm);
  const median = (values: number[]): string => {
    if (values.length === 0) return '—';
    const m = summarize(values).median;
    return m < 0 ? `−${formatMs(-m)}` : formatMs(m);
  };
  const step = (title: string, ms: (t: Trial) => number): string => `| ${title} | ${r.managers.map((m) => median(counted(m).map(ms))).join(' | ')} |`;
  return [
    `### Run of ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    ...(r.smoke ? [`**Smoke run (${r.trials} trials per manager) — not a measurement.** A measurement: \`npm run bench:reconfig -- --write\` (200 trials) on a quiet machine.`, ''] : []),
    `\`${r.command}\` (that is \`node --import tsx bench/reconfig.ts${r.args.length > 0 ? ` ${r.args.join(' ')}` : ''}\`), code at ${r.machine.commit}.`,
    '',
    `- machine: ${r.machine.cores} × ${r.machine.cpu}; ${r.machine.os}, ${r.machine.kernel}; Node ${r.machine.node}`,
    `- load average (1, 5, 15 min): ${r.loadAtStart} at the start, ${r.loadAtEnd} at the end`,
    ...r.managers.map((m) => `- ${label(m)}: \`${m.command}\`; ${m.settings}. **A change:** ${m.reconfigPath}`),
    `- child: bench/daemon/reporter.c (${r.linkage} build), ${r.processes} processes per manager, each reporting to a unix socket of its own; the CONFIG a child runs with is read from \`/proc/PID/environ\` (the environment it was exec'd with) when it reports`,
    ...r.skipped.map((s) => `- skipped: ${s.name} — ${s.skipped.split('\n')[0]}`),
    '',
    `**One process's config changed → running with it.** t0 just before the config file is written → the first child of that process whose CONFIG is the new value has connected to the bench. Trial i sets process i mod ${r.processes} to CONFIG=v<i+1>; managers alternated trial by trial, ${r.settleMs}–${2 * r.settleMs} ms between trials; ${r.trials} trials per manager after ${r.warmup} not counted.`,
    '',
    table(r.managers.map((m) => ({ label: label(m), samples: counted(m).map((t) => msBetween(t.t0, t.t1)) }))),
    '',
    ...(pm ? peers.map((peer) => `${ratio(summarize(counted(pm).map((t) => msBetween(t.t0, t.t1))), peer.name, summarize(counted(peer).map((t) => msBetween(t.t0, t.t1))))}.`).flatMap((line) => [line, '']) : []),
    `**The others untouched.** Before and after every trial (after the pause) the bench takes every process's running child (its pid) and count of starts; another process with a new child, or a new start, during a trial or between a manager's trials, fails the run. All trials, warm-up included.`,
    '',
    untouchedTable(r),
    '',
    'Where the time went, the median of each step (they need not add up to the median total):',
    '',
    `| step | ${r.managers.map((m) => m.name).join(' | ')} |`,
    `| --- |${r.managers.map(() => ' ---: |').join('')}`,
    step("t0 → the manager's command returned (pm: the rename; PM2: `pm2 restart`; supervisord: `supervisorctl update`; systemd: `daemon-reload` + `restart`)", (t) => msBetween(t.t0, t.commandDone)),
    step('t0 → the old child gone (its connection closed)', (t) => msBetween(t.t0, t.oldGone)),
    step('the old child gone → the new child connected', (t) => msBetween(t.oldGone, t.t1)),
    step('the new child connected → the command returned (negative: it returned first)', (t) => msBetween(t.t1, t.commandDone)),
  ].join('\n');
}

function untouchedTable(r: ReconfigRun): string {
  const lines = [
    '| manager | trials | other processes checked | others untouched | others restarted during a trial | … between trials | changed process: children with the old value / extra starts |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const m of r.managers) {
    const mine = r.all.filter((t) => t.manager === m.key);
    const during = mine.reduce((n, t) => n + t.othersDuring.length, 0);
    const between = mine.reduce((n, t) => n + t.othersBetween.length, 0);
    const bad = violations(mine).length;
    const stale = mine.reduce((n, t) => n + t.staleStarts, 0);
    const extra = mine.reduce((n, t) => n + t.extraStarts, 0);
    const verdict = bad === 0 ? '**yes**' : `**no**: ${bad} of ${mine.length} trials`;
    lines.push(`| ${m.name} | ${mine.length} | ${(mine.length * (r.processes - 1)).toLocaleString('en-US')} | ${verdict} | ${during} | ${between} | ${stale} / ${extra} |`);
  }
  return lines.join('\n');
}
