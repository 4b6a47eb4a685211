// The results of bench/footprint.ts as markdown: what ran where, the memory and idle CPU of every
// manager at every size, memory per process (the slope), pm's heap, and the issue's targets; the
// block between the bench:footprint:run markers of docs/benchmarks.md that --write replaces.
import type { Machine } from '../daemon/report.js';
import { summarize } from '../daemon/stats.js';
import type { CellResult } from './cell.js';
import { fitLine, type Line } from './fit.js';
import type { ManagerKey } from './managers.js';
import type { PmHeap } from './pm-heap.js';

export const RUN_MARKERS = { begin: '<!-- bench:footprint:run -->', end: '<!-- /bench:footprint:run -->' };

/** The issue's targets: pm's daemon under 60 MiB with 500 processes, and no more per process than supervisord. */
const TARGET_SIZE = 500;
const TARGET_MIB = 60;

export interface ManagerInfo {
  key: ManagerKey;
  name: string;
  version: string;
  settings: string;
  measured: string;
}

/** One manager at one size in one repetition: its result, or why it failed. */
export interface Measurement {
  key: ManagerKey;
  processes: number;
  repeat: number;
  result?: CellResult;
  error?: string;
  heap?: PmHeap;
}

export interface FootprintReport {
  startedAt: Date;
  command: string;
  script: string;
  machine: Machine;
  load: { start: string; end: string };
  durationSeconds: number;
  smoke: boolean;
  managers: ManagerInfo[];
  skipped: { name: string; reason: string }[];
  reporter: string;
  sizes: number[];
  repeats: number;
  settleSeconds: number;
  windowSeconds: number;
  samples: number;
  measurements: Measurement[];
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;
const kibText = (kib: number): string => `${kib.toFixed(1)} KiB`;
const bytesMib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const med = (values: readonly number[]): number => summarize(values).median;
const range = (values: readonly number[], format: (v: number) => string): string => (values.length > 1 ? ` (${format(Math.min(...values))}–${format(Math.max(...values))})` : '');

type Kind = 'rssKiB' | 'ussKiB' | 'pssKiB';

/** Per manager: the line through (processes, median KiB of each measurement) for one kind of memory. */
export function slope(measurements: readonly Measurement[], key: ManagerKey, kind: Kind): Line | undefined {
  const done = measurements.filter((m) => m.key === key && m.result !== undefined).map((m) => m.result as CellResult);
  return fitLine(done.filter((r) => r[kind].length > 0).map((r) => [r.processes, med(r[kind])]));
}

export function renderReport(r: FootprintReport): string {
  const label = (info: ManagerInfo): string => `${info.name} ${info.version.replace(/^v/, '')}`;
  const results = (key: ManagerKey, n: number): CellResult[] => r.measurements.filter((m) => m.key === key && m.processes === n && m.result).map((m) => m.result as CellResult);
  const lines = [
    `### Run of ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC${r.smoke ? ' — smoke run, not a measurement' : ''}`,
    '',
    `\`${r.command}\` (that is \`${r.script}\`), code at ${r.machine.commit}; ${Math.round(r.durationSeconds / 60)} min.`,
    '',
    `- machine: ${r.machine.cores} × ${r.machine.cpu}; ${r.machine.os}, ${r.machine.kernel}; Node ${r.machine.node}`,
    `- load average (1, 5, 15 min): ${r.load.start} at the start, ${r.load.end} at the end`,
    ...r.managers.map((m) => `- ${label(m)}: ${m.settings}; measured: ${m.measured}`),
    ...r.skipped.map((s) => `- skipped: ${s.name} — ${s.reason.split('\n')[0]}`),
    `- every supervised process: ${r.reporter}, which connects to a unix socket of the bench, writes its pid and blocks in \`pause()\`; a measurement begins once all N have reported and exactly N processes below the manager run it`,
    `- sizes ${r.sizes.join(', ')}; ${r.repeats} repetition(s); one manager running at a time, started afresh for each size, the order rotated from size to size and repetition to repetition; after every child has reported, ${r.settleSeconds} s to settle, then a ${r.windowSeconds} s window: ${r.samples} memory samples across it (the median is shown) and the CPU time (utime + stime) over it`,
    '',
    '| manager | processes | RSS | RSS, first → last sample | USS (private) | PSS | idle CPU, % of one core | memory samples | N children started in |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const info of r.managers) {
    for (const n of r.sizes) {
      const done = results(info.key, n);
      const failed = r.measurements.filter((m) => m.key === info.key && m.processes === n && m.error !== undefined);
      if (done.length === 0) {
        lines.push(`| ${label(info)} | ${n.toLocaleString('en-US')} | failed: ${(failed[0]?.error ?? 'not measured').split('\n')[0]?.replace(/\|/g, '\\|')} | | | | | | |`);
        continue;
      }
      const rss = done.flatMap((d) => d.rssKiB);
      const pss = done.flatMap((d) => d.pssKiB);
      const uss = done.flatMap((d) => d.ussKiB);
      const cpu = done.map((d) => d.cpuPercent);
      const start = done.map((d) => d.startSeconds);
      const drift = `${mib(med(done.map((d) => d.rssKiB[0] as number)))} → ${mib(med(done.map((d) => d.rssKiB[d.rssKiB.length - 1] as number)))}`;
      lines.push(
        `| ${label(info)} | ${n.toLocaleString('en-US')} | ${mib(med(rss))} | ${drift} | ${uss.length > 0 ? mib(med(uss)) : 'n/a'} | ${pss.length > 0 ? mib(med(pss)) : 'n/a'} | ${med(cpu).toFixed(2)} %${range(cpu, (v) => v.toFixed(2))} | ${rss.length} | ${med(start).toFixed(1)} s${failed.length > 0 ? ` (${failed.length} failed)` : ''} |`,
      );
    }
  }

  const pm = r.managers.find((m) => m.key === 'pm');
  const pmRss = slope(r.measurements, 'pm', 'rssKiB');
  const pmUss = slope(r.measurements, 'pm', 'ussKiB');
  const ratio = (pmLine: Line | undefined, line: Line | undefined): string => (pmLine && line && line.slope > 0 ? `${(pmLine.slope / line.slope).toFixed(2)}×` : '—');
  lines.push(
    '',
    `**Memory per supervised process**: the slope of a least-squares line through every measurement's median (processes, memory), for RSS, USS and PSS; the baseline is where the RSS line meets zero processes.`,
    '',
    '| manager | per process (RSS) | per process (USS) | per process (PSS) | baseline (RSS) | pm / this manager, per process (RSS; USS) |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const info of r.managers) {
    const [rss, uss, pss] = (['rssKiB', 'ussKiB', 'pssKiB'] as const).map((kind) => slope(r.measurements, info.key, kind));
    const shown = (line: Line | undefined): string => (line ? kibText(line.slope) : 'n/a');
    lines.push(`| ${label(info)} | ${shown(rss)} | ${shown(uss)} | ${shown(pss)} | ${rss ? mib(rss.intercept) : 'n/a'} | ${info.key === 'pm' ? '—' : `${ratio(pmRss, rss)}; ${ratio(pmUss, uss)}`} |`);
  }

  if (pm) lines.push('', ...targets(r, pm));
  const heaps = r.measurements.filter((m) => m.key === 'pm' && m.heap !== undefined);
  if (heaps.length > 0) {
    lines.push(
      '',
      "**pm's heap**, from the daemon's own `/metrics` (prom-client's Node metrics), read once after each window (median over repetitions):",
      '',
      '| processes | V8 heap used | V8 heap reserved | external (Buffers …) | RSS (its own view) | largest heap spaces, used |',
      '| ---: | ---: | ---: | ---: | ---: | --- |',
    );
    for (const n of r.sizes) {
      const at = heaps.filter((m) => m.processes === n).map((m) => m.heap as PmHeap);
      if (at.length === 0) continue;
      const spaces = (at[0] as PmHeap).spaces.slice(0, 3).map(([space, bytes]) => `${space} ${bytesMib(bytes)}`).join(', ');
      lines.push(`| ${n.toLocaleString('en-US')} | ${bytesMib(med(at.map((h) => h.heapUsed)))} | ${bytesMib(med(at.map((h) => h.heapTotal)))} | ${bytesMib(med(at.map((h) => h.external)))} | ${bytesMib(med(at.map((h) => h.resident)))} | ${spaces} |`);
    }
  }

  const failures = r.measurements.filter((m) => m.error !== undefined);
  if (failures.length > 0) lines.push('', '**Failed measurements:**', '', ...failures.map((f) => `- ${f.key} with ${f.processes} processes (repetition ${f.repeat + 1}): ${(f.error ?? '').split('\n')[0]}`));
  return lines.join('\n');
}

/** The issue's two targets, judged on this run. */
function targets(r: FootprintReport, pm: ManagerInfo): string[] {
  const at500 = r.measurements.filter((m) => m.key === 'pm' && m.processes === TARGET_SIZE && m.result).flatMap((m) => m.result?.rssKiB ?? []);
  const pmLine = slope(r.measurements, 'pm', 'rssKiB');
  const supervisord = slope(r.measurements, 'supervisord', 'rssKiB');
  const lines = ['**The issue\'s targets** (its author measured supervisord at 30.5 / 31.9 / 39.1 MiB with 10 / 100 / 500 processes, about 18 KiB per process, and PM2\'s daemon at 59 / 69 / 109 MiB, about 104 KiB per process):', ''];
  lines.push(
    at500.length > 0
      ? `- ${pm.name}'s daemon under ${TARGET_MIB} MiB resident with ${TARGET_SIZE} processes: ${mib(med(at500))} — ${med(at500) < TARGET_MIB * 1024 ? 'met' : 'not met'}.`
      : `- ${pm.name}'s daemon under ${TARGET_MIB} MiB resident with ${TARGET_SIZE} processes: not measured (size ${TARGET_SIZE} not in this run).`,
  );
  lines.push(
    pmLine && supervisord
      ? `- memory per process no higher than supervisord's: ${kibText(pmLine.slope)} against ${kibText(supervisord.slope)} — ${pmLine.slope <= supervisord.slope ? 'met' : 'not met'}.`
      : '- memory per process no higher than supervisord\'s: not measured (needs both, at two sizes or more).',
  );
  return lines;
}
