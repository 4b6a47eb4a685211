import type { ExitStatus, Observation } from '../../drivers/driver.js';
import { driverProbeHooks } from '../../probes/context.js';
import type { Driver } from '../../drivers/driver.js';
import { probesOf } from '../../probes/effective.js';
import { optionalCwd, programArgv } from '../../manifest/runtime.js';
import type { ProcessRecord } from '../../store/records.js';
import { runProbe } from '../../probes/runners.js';
import { describeExit } from '../../plan/explain.js';
import { ExitCode, NotFoundError, UsageError } from '../../errors.js';
import { formatAge } from '../../util/duration.js';
import { limitConcurrency } from '../../util/limit.js';
import { selectorOption, stringOption, type Command } from '../command.js';
import { observeAll, openState } from '../state.js';
import { matchesSelector } from '../../plan/selector.js';
import { exitVerdict } from '../../plan/exit.js';
import { probeIdentity } from '../../apply/preflight.js';
import type { ProcessManifest } from '../../manifest/types.js';
import { formatTable } from '../output/table.js';
import { daemonClient } from '../via-daemon.js';
import type { ProcessStatus } from '../../daemon/api.js';
import type { Cli } from '../command.js';

interface Status {
  name: string;
  driver: string;
  state: string;
  /** One readiness check now (true without a probe, as in Kubernetes); null when not running. */
  ready: boolean | null;
  readyDetail: string;
  restarts: number;
  pid: number | null;
  startedAt: string | null;
  lastExit: string | null;
  /** Why the last start failed, when it did. */
  lastError: string | null;
  source: string;
  labels: Record<string, string>;
  command: string[];
  /** The last-applied manifest, as kubectl get -o yaml shows the object (not through a daemon). */
  manifest?: ProcessManifest;
  /** Through a daemon: why the state is what it is, backoff, circuit breaker, pause. */
  detail?: string;
  backoff?: ProcessStatus['backoff'];
  breaker?: ProcessStatus['breaker'];
  paused?: boolean;
}

export const getCommand: Command = {
  name: 'get',
  summary: 'List managed processes and their state.',
  usage: 'pm get [NAME ...] [-l SELECTOR] [-o wide|json|yaml]',
  description: [
    'Shows each process pm manages: NAME DRIVER STATE READY RESTARTS AGE (wide adds PID, LAST EXIT,',
    'SOURCE and COMMAND). STATE comes from the driver now; READY from one readiness probe run now (a',
    'running process without a readiness probe counts as ready, as in Kubernetes; - when not running).',
    'Reads the state without taking the lock, so it works while an apply runs.',
  ].join('\n'),
  examples: ['pm get', 'pm get api -o yaml', 'pm get -l tier=backend -o wide', 'pm get -o json | jq .[].state'],
  options: { output: { type: 'string', short: 'o' }, selector: { type: 'string', short: 'l' } },
  optionHelp: [
    ['-o, --output FORMAT', 'wide, json or yaml (default: a table)'],
    ['-l, --selector K=V', 'only processes with these labels'],
  ],
  async run(values, positionals, cli) {
    const format = stringOption(values, 'output') ?? 'table';
    if (!['table', 'wide', 'json', 'yaml'].includes(format)) throw new UsageError(`-o: unknown format "${format}"`, 'use wide, json or yaml');
    const selector = selectorOption(values);

    const client = await daemonClient(cli);
    if (client) {
      const { items } = await client.list({ signal: cli.signal });
      const known = new Set(items.map((s) => s.name));
      for (const name of positionals) if (!known.has(name)) throw new NotFoundError(name);
      const chosen = items.filter((s) => (positionals.length === 0 || positionals.includes(s.name)) && matchesSelector(s.labels, selector));
      return print(chosen.map(fromDaemon), positionals, format, cli, `the pm daemon on ${cli.stateDir}`, selector !== undefined);
    }
    const state = await openState(cli);
    const all = await state.store.listRecords();
    for (const name of positionals) if (!all.has(name)) throw new NotFoundError(name);
    const chosen = [...all.values()].filter((r) => (positionals.length === 0 || positionals.includes(r.name)) && matchesSelector(r.manifest.metadata.labels, selector));
    const records = new Map(chosen.map((r) => [r.name, r]));
    const observed = await observeAll(state.driver, records);
    const limit = limitConcurrency(16);
    const statuses = await Promise.all(chosen.map((r) => limit(() => statusOf(r, observed.get(r.name) ?? { state: 'missing' }, cli.env, cli.signal, state.driver))));

    return print(statuses, positionals, format, cli, state.store.dir, selector !== undefined);
  },
};

async function print(statuses: Status[], positionals: string[], format: string, cli: Cli, where: string, selected: boolean): Promise<number> {
  const now = Date.now();
  if (format === 'json') {
    cli.stdout.write(`${JSON.stringify(positionals.length === 1 ? statuses[0] : statuses, null, 2)}\n`);
  } else if (format === 'yaml') {
    const { stringify } = await import('yaml');
    cli.stdout.write(stringify(positionals.length === 1 ? statuses[0] : statuses));
  } else if (statuses.length === 0) {
    cli.stderr.write(`no processes managed in ${where}${selected ? ' match the selector' : ''}\n`);
  } else {
    const wide = format === 'wide';
    const header = ['NAME', 'DRIVER', 'STATE', 'READY', 'RESTARTS', 'AGE', ...(wide ? ['PID', 'LAST EXIT / ERROR', 'SOURCE', 'COMMAND'] : [])];
    const rows = statuses.map((s) => [
      s.name,
      s.driver,
      s.state,
      s.ready === null ? '-' : s.ready ? 'yes' : 'no',
      String(s.restarts),
      s.startedAt ? formatAge(now - Date.parse(s.startedAt)) : '-',
      ...(wide ? [s.pid === null ? '-' : String(s.pid), s.lastError ?? s.lastExit ?? '-', s.source, s.command.map(quoteArg).join(' ')] : []),
    ]);
    cli.stdout.write(formatTable(header, rows));
  }
  return ExitCode.ok;
}

/** The daemon knows more than one look can tell: its phase (BackOff, CircuitOpen, Paused...) and readiness as its probes see it. */
function fromDaemon(s: ProcessStatus): Status {
  return {
    name: s.name,
    driver: s.driver,
    state: s.phase,
    ready: s.up ? s.ready : s.phase === 'Completed' ? true : null,
    readyDetail: s.detail,
    restarts: s.restarts,
    pid: s.pid ?? null,
    startedAt: s.startedAt ?? null,
    lastExit: s.lastExit ? describeExit(s.lastExit) : null,
    lastError: s.lastError ?? null,
    source: s.source,
    labels: s.labels,
    command: s.command,
    detail: s.detail,
    backoff: s.backoff,
    breaker: s.breaker,
    paused: s.paused,
  };
}

/** A readiness check in `pm get` answers now: it waits at most this long, whatever the probe says. */
const GET_PROBE_TIMEOUT_SECONDS = 2;

async function statusOf(record: ProcessRecord, observation: Observation, env: NodeJS.ProcessEnv, signal: AbortSignal, driver: Driver): Promise<Status> {
  const spec = record.manifest.spec;
  let stateText: string;
  let ready: boolean | null = null;
  let readyDetail = '';
  if (observation.state === 'running') {
    stateText = 'Running';
    const probe = probesOf(record.manifest).readiness;

    if (probe) {
      const timeoutSeconds = Math.min(probe.timeoutSeconds, GET_PROBE_TIMEOUT_SECONDS);
      const identity = await probeIdentity({ name: record.name, manifest: record.manifest, source: record.source }, env);
      const result = await runProbe({ ...probe, timeoutSeconds }, { ports: spec.ports, ...optionalCwd(record.manifest), signal, ...identity, ...driverProbeHooks(driver, record.handle) });
      ready = result.ok;
      readyDetail = result.message;
    } else {
      ready = true;
      readyDetail = 'no readiness probe';
    }
  } else if (observation.state === 'exited') {
    stateText = exitState(observation.exit);
  } else if (observation.state === 'unknown') {
    stateText = 'Unknown';
    readyDetail = observation.reason;
  } else {
    stateText = record.lastError ? 'StartFailed' : 'NotStarted';
  }
  const lastExit = observation.state === 'exited' ? observation.exit : record.lastExit;
  return {
    name: record.name,
    driver: spec.driver,
    state: stateText,
    ready,
    readyDetail,
    restarts: Math.max(0, record.starts - 1),
    pid: observation.state === 'running' ? observation.pid : null,
    startedAt: record.startedAt ?? null,
    lastExit: lastExit ? describeExit(lastExit) : null,
    lastError: record.lastError ?? null,
    source: record.source.file,
    labels: record.manifest.metadata.labels,
    command: programArgv(record.manifest),
    manifest: record.manifest,
  };
}

function exitState(exit: ExitStatus): string {
  switch (exitVerdict(exit)) {
    case 'succeeded':
      return 'Completed';
    case 'failed':
      return exit.signal ? `Killed (${exit.signal})` : `Failed (exit ${exit.code})`;
    case 'unknown':
      return exit.signal ? 'Stopped' : 'Exited';
  }
}

/** Shows an argument as a shell user would type it, so `sh -c "echo hi"` reads unambiguously. */
function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
