// Prometheus metrics of the daemon, in a registry of its own (the global one belongs to whoever
// embeds pm, and tests build many daemons). Per-process series are not kept up to date as things
// happen: they are read from api.list() when scraped, so they can never drift from what `pm get`
// shows, and a process that is gone simply stops being reported.
//
// prom-client is loaded at the first scrape, not at start-up: with @opentelemetry/api it is 83
// modules, and an idle daemon with 10 processes was 3.2-3.8 MiB larger and 10-80 ms slower to
// start with them, a cost every daemon paid though most are never scraped. What has to be counted
// before then (reconciles, actions, manifest reads) is kept in plain numbers (metrics-recorder.ts)
// that prom-client formats once loaded. Types are imported only as types, which compile to nothing.
import type * as PromClient from 'prom-client';
import type { Metric, Registry } from 'prom-client';
import type { DaemonApi, ProcessPhase, ProcessStatus } from '../daemon/api.js';
import { BreakerPhase } from '../plan/breaker.js';
import { RecordedCounter, RecordedHistogram } from './metrics-recorder.js';

type Prom = typeof PromClient;
/** Defines metrics on the registry once prom-client is loaded. */
type Definer = (prom: Prom, registers: Registry[]) => void;

// Every phase, checked against the union by the compiler: a phase added to api.ts without being
// added here fails to build instead of silently never being reported.
const PHASES = Object.keys({
  Pending: true,
  Waiting: true,
  Starting: true,
  Running: true,
  Ready: true,
  Completed: true,
  Failed: true,
  BackOff: true,
  CircuitOpen: true,
  Paused: true,
  Stopping: true,
} satisfies Record<ProcessPhase, true>) as ProcessPhase[];

const BREAKER_PHASES = Object.values(BreakerPhase);

/** The action kinds the executor runs today; their series exist from the start, at 0. Other kinds are counted when they first happen. */
const KNOWN_ACTION_KINDS = ['start', 'restart', 'update', 'delete'] as const;

export type ReconcileResultLabel = 'ok' | 'error' | 'requeue';
export type ActionResultLabel = 'ok' | 'failed' | 'skipped';

const PREFIX = 'pm_';

/** What one scrape reports about the processes, read when the scrape was asked for. */
interface Scrape {
  processes: ProcessStatus[];
  queueDepth: number;
}

export class DaemonMetrics {
  private readonly reconcileDuration = new RecordedHistogram(
    `${PREFIX}reconcile_duration_seconds`,
    'How long one reconcile of one key took, by outcome.',
    ['result'],
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
  );
  private readonly actions = new RecordedCounter(`${PREFIX}actions_total`, 'Actions the executor ran, by kind and result.', ['kind', 'result']);
  private readonly manifestLoads = new RecordedCounter(`${PREFIX}manifest_reloads_total`, 'Reads of the manifest source, by whether the set was accepted.', ['result']);
  /** Metrics asked for by watchDatabase / watchDrivers, in call order: defined when the registry is built, or at once if it already is. */
  private readonly watched: Definer[] = [];
  /** The registry, from the first render() on; shared by scrapes that start while prom-client loads. */
  private loading: Promise<Registry> | undefined;
  private built: { prom: Prom; registry: Registry } | undefined;
  /** The snapshot of the render() in progress, shared by the per-process collectors of that scrape. */
  private scrape: Scrape | undefined;

  constructor(private readonly api: Pick<DaemonApi, 'list' | 'queueDepth'>) {
    // Every known label set exists from the start, so a rate over it is 0 rather than absent.
    for (const result of ['ok', 'error', 'requeue'] satisfies ReconcileResultLabel[]) this.reconcileDuration.zero({ result });
    for (const kind of KNOWN_ACTION_KINDS) for (const result of ['ok', 'failed', 'skipped'] satisfies ActionResultLabel[]) this.actions.zero({ kind, result });
    for (const result of ['accepted', 'rejected']) this.manifestLoads.zero({ result });
  }

  /** pm_database_up: 1 while the configured database is reachable, 0 while the daemon runs degraded. */
  watchDatabase(up: () => boolean): void {
    this.define((prom, registers) => {
      new prom.Gauge({
        name: `${PREFIX}database_up`,
        help: 'Whether the configured PostgreSQL is reachable (1) or the daemon runs degraded without it (0).',
        registers,
        collect() {
          this.set(up() ? 1 : 0);
        },
      });
    });
  }

  /** pm_driver_up{driver}: 1 while the driver's back end answers, 0 while it is degraded; one series per driver in use. */
  watchDrivers(backends: () => readonly { driver: string; up: boolean }[]): void {
    this.define((prom, registers) => {
      new prom.Gauge({
        name: `${PREFIX}driver_up`,
        help: 'Whether each driver in use reaches its back end (1) or is degraded (0): the Docker Engine, systemd; exec is always 1.',
        labelNames: ['driver'],
        registers,
        collect() {
          this.reset();
          for (const b of backends()) this.set({ driver: b.driver }, b.up ? 1 : 0);
        },
      });
    });
  }

  observeReconcile(seconds: number, result: ReconcileResultLabel): void {
    this.reconcileDuration.observe({ result }, seconds);
  }

  countAction(kind: string, result: ActionResultLabel): void {
    this.actions.inc({ kind, result });
  }

  countManifestLoad(accepted: boolean): void {
    this.manifestLoads.inc({ result: accepted ? 'accepted' : 'rejected' });
  }

  /** The Prometheus text exposition of every metric, read now. */
  async render(): Promise<{ contentType: string; body: string }> {
    // Read before waiting for prom-client: a scrape reports the moment it was asked for, and two
    // scrapes that both wait for the first load still each report their own moment.
    const scrape: Scrape = { processes: this.api.list(), queueDepth: this.api.queueDepth() };
    const registry = await this.registry();
    // prom-client runs every collect() synchronously inside metrics(), so the snapshot is cleared
    // before any other scrape can set its own. Were that to change, the collectors would fall back
    // to reading the api themselves: more work, same answer.
    this.scrape = scrape;
    let body: Promise<string>;
    try {
      body = registry.metrics();
    } finally {
      this.scrape = undefined;
    }
    return { contentType: registry.contentType, body: await body };
  }

  private define(definer: Definer): void {
    this.watched.push(definer);
    if (this.built) definer(this.built.prom, [this.built.registry]);
  }

  /** Loads prom-client once; a failed load is tried again at the next scrape rather than remembered. */
  private registry(): Promise<Registry> {
    this.loading ??= import('prom-client').then(
      (prom) => this.build(prom),
      (error: unknown) => {
        this.loading = undefined;
        throw error;
      },
    );
    return this.loading;
  }

  /** Registers, in the order they have always been exposed in: Node's metrics, per-process series, the recorded ones, then the watched. */
  private build(prom: Prom): Registry {
    const registry = new prom.Registry();
    const registers = [registry];
    // Node's own metrics are about the daemon: a prefix of their own keeps them apart from the
    // per-process pm_process_* series (process_start_time_seconds would otherwise collide).
    // The event-loop delay monitor samples every 10 ms by default: 100 wake-ups a second of an
    // otherwise idle daemon, most of its idle CPU (bench:footprint: about 1 % → 0.4 % of a core at
    // 100 processes with 1 s). Delays of interest to a supervisor are far longer than a second's grain.
    // Started at the first scrape, so the series prom-client accumulates itself begin then: the GC
    // histogram counts from that scrape on, and the event-loop delay (reset at every scrape anyway)
    // has no sample in the first one (min 9223372036.85, mean NaN). CPU time, memory, open fds and
    // the start time are read from the OS at each scrape and cover the daemon's whole life.
    prom.collectDefaultMetrics({ register: registry, prefix: `${PREFIX}daemon_`, eventLoopMonitoringPrecision: 1000 });
    this.defineProcessSeries(prom, registers);
    // Not prom-client metrics but objects answering get() as they do (metrics-recorder.ts), which
    // is all the Registry calls; its typings only name its own classes.
    for (const recorded of [this.reconcileDuration, this.actions, this.manifestLoads]) registry.registerMetric(recorded as unknown as Metric);
    for (const definer of this.watched) definer(prom, registers);
    this.built = { prom, registry };
    return registry;
  }

  private defineProcessSeries(prom: Prom, registers: Registry[]): void {
    // Collectors are called by prom-client with `this` bound to their metric: they reach the daemon
    // through these closures, not this.api.
    const api = this.api;
    const processes = (): ProcessStatus[] => this.scrape?.processes ?? api.list();
    const queueDepth = (): number => this.scrape?.queueDepth ?? api.queueDepth();

    new prom.Gauge({
      name: `${PREFIX}process_up`,
      help: 'Whether the process is running now (1) or not (0).',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.set({ process: p.name }, p.up ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: `${PREFIX}process_ready`,
      help: 'Whether the process is ready (services) or completed (oneshots).',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.set({ process: p.name }, p.ready ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: `${PREFIX}process_state`,
      help: 'The process phase: 1 for the current one, 0 for every other.',
      labelNames: ['process', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) for (const state of PHASES) this.set({ process: p.name, state }, p.phase === state ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: `${PREFIX}process_breaker_state`,
      help: 'The circuit breaker phase: 1 for the current one, 0 for every other.',
      labelNames: ['process', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) for (const state of BREAKER_PHASES) this.set({ process: p.name, state }, p.breaker.phase === state ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: `${PREFIX}process_backoff_seconds`,
      help: 'The current delay before the next automatic start, in seconds.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.set({ process: p.name }, p.backoff.delayMs / 1000);
      },
    });
    // A counter although its value is set, not incremented: it only grows while the process exists,
    // and rate() copes with the reset when a process is deleted and declared again.
    new prom.Counter({
      name: `${PREFIX}process_restarts_total`,
      help: 'Starts of the process after its first one: automatic restarts, requested restarts and spec changes.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.inc({ process: p.name }, p.restarts);
      },
    });
    new prom.Gauge({
      name: `${PREFIX}queue_depth`,
      help: 'Keys waiting in the work queue (not counting delayed ones).',
      registers,
      collect() {
        this.set(queueDepth());
      },
    });
  }
}
