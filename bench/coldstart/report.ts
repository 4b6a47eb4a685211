// The results as markdown: what ran where and how each manager was configured, one table of cold
// starts, the time per level, pm's hand-off split, and the generated DAG. --write puts it between
// the <!-- bench:coldstart:run --> markers of docs/benchmarks.md.
import { formatMs, summarize } from '../daemon/stats.js';
import type { Machine } from '../daemon/report.js';
import { median, percentile, type RunResult } from './analysis.js';
import type { ColdManager, Skipped } from './managers/types.js';
import { criticalPathMs, describeDag, type Scenario } from './scenario.js';

export const RUN_MARKERS = { begin: '<!-- bench:coldstart:run -->', end: '<!-- /bench:coldstart:run -->' };

export interface ReportInput {
  startedAt: Date;
  command: string;
  machine: Machine;
  /** The temp folder every run's files are in, and its file system. */
  scratch: { folder: string; description: string; slowAfterDeletes: boolean };
  loadAtStart: string;
  loadAtEnd: string;
  /** Fewer runs or processes than the defaults: labelled a smoke run. */
  smoke: boolean;
  scenario: Scenario;
  child: { linkage: string };
  managers: ColdManager[];
  skipped: Skipped[];
  results: RunResult[];
  wallSeconds: number;
}

const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
/** formatMs with a sign: a hand-off can be negative (the dependent started first). */
const num = (n: number): string => (Number.isNaN(n) ? '–' : n < 0 ? `−${formatMs(-n)}` : formatMs(n));

export function renderReport(input: ReportInput): string {
  const { scenario, managers, results } = input;
  const bound = criticalPathMs(scenario);
  const edges = scenario.processes.reduce((n, p) => n + p.dependsOn.length, 0);
  const of = (m: ColdManager): RunResult[] => results.filter((r) => r.manager === m.key);
  const medianOf = (key: ColdManager['key']): number | undefined => {
    const m = managers.find((candidate) => candidate.key === key);
    return m && of(m).length > 0 ? summarize(of(m).map((r) => r.totalMs)).median : undefined;
  };
  const pmMedian = medianOf('pm');
  const warmMedian = medianOf('pm-warm');
  const lines: string[] = [];
  const stamp = input.startedAt.toISOString().slice(0, 16).replace('T', ' ');
  lines.push(`### Run of ${stamp} UTC${input.smoke ? ' — smoke run, not a measurement' : ''}`, '');
  lines.push(`\`${input.command}\` (that is \`node --import tsx bench/coldstart.ts${input.command.includes(' -- ') ? ` ${input.command.slice(input.command.indexOf(' -- ') + 4)}` : ''}\`), code at ${input.machine.commit}; ${Math.round(input.wallSeconds)} s in all.`, '');
  lines.push(`- machine: ${input.machine.cores} × ${input.machine.cpu}; ${input.machine.os}, ${input.machine.kernel}; Node ${input.machine.node}`);
  lines.push(`- load average (1, 5, 15 min): ${input.loadAtStart} at the start, ${input.loadAtEnd} at the end`);
  lines.push(
    `- scratch folder (each run's configuration, pm's state directory and every manager's log files): ${input.scratch.folder}, on ${input.scratch.description}; every run's folder is kept until the end of the bench${input.scratch.slowAfterDeletes ? ". On ext4 without a journal, creating files is slower for minutes after deletions nearby (`node bench/file-create.mjs`): pm, supervisord and PM2 create log files as they start processes, systemd does not, so runs soon after another bench's cleanup are slower for those three" : ''}`,
  );
  lines.push(
    `- scenario: ${scenario.processes.length} processes in ${scenario.levels} levels of ${scenario.width}; each above level 0 depends on 2–3 of the level below (${edges} edges, seed ${scenario.seed}, listed at the end); every process is ready ${scenario.readyMs} ms after it starts`,
  );
  lines.push(`- **critical-path lower bound: ${scenario.levels} × ${scenario.readyMs} ms = ${bound} ms**, plus at least ${scenario.levels} fork + exec (about a millisecond each here) and each manager's own start-up`);
  lines.push(
    `- child: bench/coldstart/child.c (${input.child.linkage}), the same for every manager: it reports "started" (with its own CLOCK_MONOTONIC reading) to a unix socket of the bench as its main() begins, sleeps ${scenario.readyMs} ms, reports "ready", and only then tells the manager (a line on descriptor 3, tcp port, READY=1, or PM2's IPC message)`,
  );
  lines.push(`- t1: the last process's "ready"; an **order violation** is a process that started before all its dependencies were ready; runs alternate between managers, the first one rotating`);
  lines.push('');
  lines.push('| manager | runs | median | p99 | min–max | median ÷ bound | pm ÷ this | pm, set added ÷ this | order violations (per run) | t0 → first start | dependency ready → dependent start (median, p90) |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const m of managers) {
    const rs = of(m);
    if (rs.length === 0) {
      lines.push(`| ${m.name} | 0 | – | – | – | – | – | – | – | – | – |`);
      continue;
    }
    const s = summarize(rs.map((r) => r.totalMs));
    const handoffs = rs.flatMap((r) => r.handoffMs);
    const violations = rs.map((r) => r.violations);
    const vText = violations.every((v) => v === 0) ? '0' : `${median(violations)} median (${Math.min(...violations)}–${Math.max(...violations)})`;
    const ratio = m.key === 'pm' || pmMedian === undefined ? '–' : x(pmMedian, s.median);
    const warmRatio = m.key === 'pm-warm' || warmMedian === undefined ? '–' : x(warmMedian, s.median);
    lines.push(
      `| ${m.name} | ${s.runs} | ${formatMs(s.median)} | ${formatMs(s.p99)} | ${formatMs(s.min).replace(' ms', '')}–${formatMs(s.max)} | ${x(s.median, bound)} | ${ratio} | ${warmRatio} | ${vText} | ${num(median(rs.map((r) => r.firstStartMs)))} | ${num(median(handoffs))}, ${num(percentile(handoffs, 90))} |`,
    );
  }
  lines.push('');
  lines.push(`p99 is the nearest-rank 99th percentile: with 100 runs or fewer, the slowest run. "pm ÷ this": pm daemon's median over this manager's; "pm, set added ÷ this": the same for pm's daemon given the set while it runs. A negative hand-off is a process started before its last dependency was ready.`);
  const restarts = results.filter((r) => r.restarted > 0);
  if (restarts.length > 0) lines.push('', `Runs where a manager started a process twice: ${restarts.map((r) => `${r.manager} run ${r.index + 1} (${r.restarted})`).join(', ')}.`);
  for (const s of input.skipped) lines.push('', `**${s.name}: skipped** — ${s.skipped}`);

  lines.push('', '**Last process of each level ready** (ms after t0, median over the runs):', '');
  lines.push(`| manager | ${Array.from({ length: scenario.levels }, (_, i) => `level ${i}`).join(' | ')} |`);
  lines.push(`| --- | ${Array.from({ length: scenario.levels }, () => '---:').join(' | ')} |`);
  for (const m of managers) {
    const rs = of(m);
    if (rs.length === 0) continue;
    lines.push(`| ${m.name} | ${Array.from({ length: scenario.levels }, (_, i) => num(median(rs.map((r) => r.levelReadyMs[i] as number)))).join(' | ')} |`);
  }

  lines.push('', `**Time to start one level** (its first start → its last start, ${scenario.width} processes, median over the runs): what each extra process of a level costs the manager:`, '');
  lines.push(`| manager | ${Array.from({ length: scenario.levels }, (_, i) => `level ${i}`).join(' | ')} |`);
  lines.push(`| --- | ${Array.from({ length: scenario.levels }, () => '---:').join(' | ')} |`);
  for (const m of managers) {
    const rs = of(m);
    if (rs.length === 0) continue;
    lines.push(`| ${m.name} | ${Array.from({ length: scenario.levels }, (_, i) => num(median(rs.map((r) => r.levelSpreadMs[i] as number)))).join(' | ')} |`);
  }

  const measured = managers.filter((m) => of(m).some((r) => r.managerCpuMs !== undefined));
  if (measured.length > 0) {
    lines.push('', "**The manager's own CPU per cold start** (t0 → t1, from the scheduler's accounting in /proc/PID/task/*/schedstat; median over the runs; pm's daemon from its spawn where its start-up is counted):", '');
    lines.push('| manager | all its threads | its main thread |');
    lines.push('| --- | ---: | ---: |');
    for (const m of measured) {
      const cpu = of(m).flatMap((r) => (r.managerCpuMs ? [r.managerCpuMs] : []));
      lines.push(`| ${m.name} | ${num(median(cpu.map((c) => c.processMs)))} | ${num(median(cpu.map((c) => c.mainThreadMs)))} |`);
    }
  }

  const split = managers.filter((m) => of(m).some((r) => r.pmSpawnMs !== undefined));
  if (split.length > 0) {
    lines.push('', "**pm's hand-offs split at its own `Ready` events** (the daemon's log, whole ms, mapped onto the bench's clock once per run: ±1 ms), over every edge that opened a gate in every run:", '');
    lines.push('| pm | dependency ready → pm logs it Ready (median, p90) | pm logs Ready → dependent started (median, p90) |');
    lines.push('| --- | ---: | ---: |');
    for (const m of split) {
      const seen = of(m).flatMap((r) => r.pmSeenMs ?? []);
      const spawn = of(m).flatMap((r) => r.pmSpawnMs ?? []);
      lines.push(`| ${m.name} | ${num(median(seen))}, ${num(percentile(seen, 90))} | ${num(median(spawn))}, ${num(percentile(spawn, 90))} |`);
    }
  }

  lines.push('', '**How each manager was set up** (one process shown; CHILD, SOCKET, PORT and TMP stand for the run\'s paths):', '');
  const shown = new Map<string, string>();
  for (const m of managers) {
    lines.push(`- **${m.name}**: ${m.settings}. ${m.timed}. Command: \`${m.command}\`.`, '');
    const same = shown.get(m.sample.text);
    if (same !== undefined) {
      lines.push(`  The same files as for ${same}.`, '');
      continue;
    }
    shown.set(m.sample.text, m.name);
    lines.push(`  \`\`\`${m.sample.language}`, ...m.sample.text.trimEnd().split('\n').map((l) => `  ${l}`), '  ```', '');
  }
  lines.push('<details><summary>The generated DAG (each process ← its dependencies)</summary>', '', '```', ...describeDag(scenario), '```', '', '</details>');
  return lines.join('\n');
}
