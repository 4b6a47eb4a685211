// The results of bench/docker.ts as markdown: what ran where and how, the crash → running table with
// where the time went (the engine's events), the crash loop, and what `docker kill` does; the block
// of docs/benchmarks.md between the bench:docker:run markers that --write replaces.
import { ratio, table, type Machine } from '../daemon/report.js';
import { formatMs, summarize } from '../daemon/stats.js';
import type { EngineDescription, OperationTimes } from './engine.js';
import type { DockerManager } from './managers.js';
import { msBetween, type KillResult, type Trial } from './trials.js';

export const RUN_MARKERS = { begin: '<!-- bench:docker:run -->', end: '<!-- /bench:docker:run -->' };

export interface DockerReport {
  startedAt: Date;
  command: string;
  args: string[];
  machine: Machine;
  engine: EngineDescription;
  loadAtStart: string;
  loadAtEnd: string;
  image: string;
  managers: DockerManager[];
  /** The manifest pm was given, with placeholders. */
  pmManifest: string;
  containers: number;
  trials: number;
  warmup: number;
  restSeconds: number;
  settleMs: number;
  loopCrashes: number;
  /** --network; undefined: the engine's default. */
  network: string | undefined;
  all: Trial[];
  kills: KillResult[];
  ops: OperationTimes | undefined;
}

type Key = DockerManager['key'];
const ORDER: Key[] = ['engine', 'pm'];

export function renderReport(r: DockerReport): string {
  const byKey = new Map(r.managers.map((m) => [m.key, m]));
  const manager = (key: Key): DockerManager => byKey.get(key) as DockerManager;
  const counted = (key: Key): Trial[] => r.all.filter((t) => t.manager === key && t.scenario === 'crash' && !t.warmup);
  const crashes = new Map(ORDER.map((key) => [key, counted(key)]));
  const samples = (key: Key): number[] => (crashes.get(key) ?? []).map((t) => msBetween(t.t0, t.t1));
  const loop = (key: Key): Trial[] => r.all.filter((t) => t.manager === key && t.scenario === 'loop');
  const ups = ORDER.flatMap((key) => (crashes.get(key) ?? []).map((t) => t.upMs));
  const step = (key: Key, from: (t: Trial) => bigint | undefined, to: (t: Trial) => bigint | undefined): string => {
    const values = (crashes.get(key) ?? []).flatMap((t) => {
      const a = from(t);
      const b = to(t);
      return a === undefined || b === undefined ? [] : [msBetween(a, b)];
    });
    if (values.length === 0) return '—';
    const m = summarize(values).median;
    return `${m < 0 ? '−' : ''}${formatMs(Math.abs(m))}${values.length < (crashes.get(key) ?? []).length ? ` (${values.length} trials)` : ''}`;
  };
  const row = (label: string, from: (t: Trial) => bigint | undefined, to: (t: Trial) => bigint | undefined): string =>
    `| ${label} | ${step('engine', from, to)} | ${step('pm', from, to)} |`;
  const pmSummary = summarize(samples('pm'));
  const engineSummary = summarize(samples('engine'));
  const loopRows = Array.from({ length: r.loopCrashes }, (_, i) => {
    const cell = (key: Key): string => {
      const t = loop(key)[i];
      return t ? `${formatMs(msBetween(t.t0, t.t1))} (up ${formatMs(t.upMs)} before)` : '—';
    };
    return `| ${i + 1} | ${cell('engine')} | ${cell('pm')} |`;
  });
  const kill = (key: Key): string => {
    const k = r.kills.find((x) => x.manager === key);
    if (!k) return 'not run';
    return k.replacedMs === undefined ? `not restarted within ${(k.waitedMs / 1000).toFixed(0)} s (then: ${k.state})` : `replaced after ${formatMs(k.replacedMs)} (then: ${k.state})`;
  };

  const lines = [
    `### Run of ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `\`${r.command}\` (that is \`node --import tsx bench/docker.ts${r.args.length > 0 ? ` ${r.args.join(' ')}` : ''}\`), code at ${r.machine.commit}.`,
    '',
    `- machine: ${r.machine.cores} × ${r.machine.cpu}; ${r.machine.os}, ${r.machine.kernel}; Node ${r.machine.node}`,
    `- engine: ${r.engine.versions}; ${r.engine.setup}`,
    `- load average (1, 5, 15 min): ${r.loadAtStart} at the start, ${r.loadAtEnd} at the end`,
    `- every container: image \`${r.image}\` (busybox-static, built by test/support/docker.ts), command \`/reporter /report/r.sock\` (bench/docker/reporter.c, static, bind-mounted read-only), the report folder bind-mounted at /report, ${r.network === undefined ? "the engine's default network (bridge)" : `network ${r.network}`}`,
    `- ${manager('engine').name}: \`${manager('engine').commands.join('; ')}\`; ${manager('engine').settings}`,
    `- ${manager('pm').name}: \`${manager('pm').commands.join('; ')}\`; ${manager('pm').settings}; the manifest, for container NAME:`,
    '',
    '  ```yaml',
    ...r.pmManifest.trimEnd().split('\n').map((l) => `  ${l}`),
    '  ```',
    '',
    `- crash: SIGKILL of the container's main process from the host (\`kill -KILL\` of the pid the engine's inspect gives, checked to be the reporter), the same for both; not \`docker kill\`, which the engine does not restart (see (c))`,
    '',
    `**(a) crash → replacement running.** t0 just before the SIGKILL → the new run's reporter has connected to the bench's socket. ${r.containers} containers per manager taking turns, so that each ran at least ${r.restSeconds} s before it was crashed again (the engine's delay is back at 100 ms for every trial; the killed runs had been up ${formatMs(Math.min(...ups))}–${formatMs(Math.max(...ups))}); managers alternated trial by trial, ${r.settleMs}–${2 * r.settleMs} ms between trials; ${r.trials} trials per manager after ${r.warmup} not counted.`,
    '',
    table(ORDER.map((key) => ({ label: manager(key).name, samples: samples(key) }))),
    '',
    `${ratio(pmSummary, 'engine', engineSummary)}.`,
    '',
    "Where the time went, the median of each step (the engine's container events, its wall clock mapped onto the bench's; steps need not add up to the median total):",
    '',
    '| step | engine restart=always | pm |',
    '| --- | ---: | ---: |',
    row('t0 → `die` event (the engine has seen the exit)', (t) => t.t0, (t) => t.die),
    row('`die` → the wait endpoint answered (the bench\'s own `POST /containers/NAME/wait`, as pm waits)', (t) => t.die, (t) => t.waited),
    row('the wait answered → `destroy` (pm inspected, then removed the old container)', (t) => t.waited, (t) => t.destroy),
    row('`die` → `destroy`', (t) => t.die, (t) => t.destroy),
    row('`destroy` → `create` (pm created the new one)', (t) => t.destroy, (t) => t.create),
    row('`create` → `start` event', (t) => t.create, (t) => t.start),
    row('`die` → `start` event (the manager\'s whole reaction)', (t) => t.die, (t) => t.start),
    row('`start` event → the reporter connected (negative: it ran before the event was sent)', (t) => t.start, (t) => t.t1),
    ...(r.loopCrashes > 0
      ? [
          '',
          `**(b) crash loop.** One container of each manager crashed ${r.loopCrashes} times in a row, each time ${r.settleMs}–${2 * r.settleMs} ms after its replacement reported (after a first run of at least ${r.restSeconds} s): crash → replacement running.`,
          '',
          '| crash | engine restart=always | pm |',
          '| ---: | ---: | ---: |',
          ...loopRows,
        ]
      : []),
    '',
    `**(c) \`docker kill -s KILL\`** (the engine's kill endpoint, \`POST /containers/NAME/kill?signal=KILL\`) of a container that had run ${r.restSeconds} s or more: engine restart=always: ${kill('engine')}; pm: ${kill('pm')}.`,
  ];
  if (r.ops) lines.push('', ...renderOperations(r.ops));
  return lines.join('\n');
}

function renderOperations(ops: OperationTimes): string[] {
  const median = (values: number[]): number => summarize(values).median;
  const pmPath = median(ops.remove) + median(ops.create) + median(ops.startNew);
  const enginePath = 100 + median(ops.startAgain);
  return [
    `**(d) the engine's calls alone**, timed by the bench as a client (round trip included), the same container as above, one call at a time: create, start, SIGKILL, start again, SIGKILL, remove; ${ops.create.length} rounds.`,
    '',
    table(
      [
        { label: '`POST /containers/create`', samples: ops.create },
        { label: '`POST /containers/ID/start` (new container)', samples: ops.startNew },
        { label: '`POST /containers/ID/start` (the same container again, as restart=always does)', samples: ops.startAgain },
        { label: '`DELETE /containers/ID` (exited)', samples: ops.remove },
      ],
      'engine call',
    ),
    '',
    `Sums of medians: pm's way of replacing (remove + create + start) ${formatMs(pmPath)}; restart=always's (100 ms delay + start again) ${formatMs(enginePath)}.`,
  ];
}
