// Prometheus metrics of the daemon, in a registry of its own (the global one belongs to whoever
// embeds pm, and tests build many daemons). Per-process series are not kept up to date as things
// happen: they are read from api.list() when scraped, so they can never drift from what `pm get`
// shows, and a process that is gone simply stops being reported.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DaemonApi, ProcessPhase, ProcessStatus } from '../daemon/api.js';
import { BreakerPhase } from '../plan/breaker.js';

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

export class DaemonMetrics {
  readonly registry = new Registry();
  private readonly reconcileDuration: Histogram<'result'>;
  private readonly actions: Counter<'kind' | 'result'>;
  private readonly manifestLoads: Counter<'result'>;
  /** api.list() taken once per render() and shared by the per-process collectors of that scrape. */
  private scrape: ProcessStatus[] | undefined;

  constructor(private readonly api: Pick<DaemonApi, 'list' | 'queueDepth'>) {
    // Collectors are called by prom-client with `this` bound to their metric: they reach the daemon
    // through the `api` parameter, not this.api.
    const registers = [this.registry];
    // Node's own metrics are about the daemon: a prefix of their own keeps them apart from the
    // per-process pm_process_* series (process_start_time_seconds would otherwise collide).
    // The event-loop delay monitor samples every 10 ms by default: 100 wake-ups a second of an
    // otherwise idle daemon, most of its idle CPU (bench:footprint: about 1 % → 0.4 % of a core at
    // 100 processes with 1 s). Delays of interest to a supervisor are far longer than a second's grain.
    collectDefaultMetrics({ register: this.registry, prefix: `${PREFIX}daemon_`, eventLoopMonitoringPrecision: 1000 });
    const processes = (): ProcessStatus[] => this.scrape ?? api.list();

    new Gauge({
      name: `${PREFIX}process_up`,
      help: 'Whether the process is running now (1) or not (0).',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.set({ process: p.name }, p.up ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}process_ready`,
      help: 'Whether the process is ready (services) or completed (oneshots).',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.set({ process: p.name }, p.ready ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}process_state`,
      help: 'The process phase: 1 for the current one, 0 for every other.',
      labelNames: ['process', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) for (const state of PHASES) this.set({ process: p.name, state }, p.phase === state ? 1 : 0);
      },
    });
    new Gauge({
      name: `${PREFIX}process_breaker_state`,
      help: 'The circuit breaker phase: 1 for the current one, 0 for every other.',
      labelNames: ['process', 'state'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) for (const state of BREAKER_PHASES) this.set({ process: p.name, state }, p.breaker.phase === state ? 1 : 0);
      },
    });
    new Gauge({
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
    new Counter({
      name: `${PREFIX}process_restarts_total`,
      help: 'Starts of the process after its first one: automatic restarts, requested restarts and spec changes.',
      labelNames: ['process'],
      registers,
      collect() {
        this.reset();
        for (const p of processes()) this.inc({ process: p.name }, p.restarts);
      },
    });
    new Gauge({
      name: `${PREFIX}queue_depth`,
      help: 'Keys waiting in the work queue (not counting delayed ones).',
      registers,
      collect() {
        this.set(api.queueDepth());
      },
    });

    this.reconcileDuration = new Histogram({
      name: `${PREFIX}reconcile_duration_seconds`,
      help: 'How long one reconcile of one key took, by outcome.',
      labelNames: ['result'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers,
    });
    this.actions = new Counter({
      name: `${PREFIX}actions_total`,
      help: 'Actions the executor ran, by kind and result.',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.manifestLoads = new Counter({
      name: `${PREFIX}manifest_reloads_total`,
      help: 'Reads of the manifest source, by whether the set was accepted.',
      labelNames: ['result'],
      registers,
    });

    // Every known label set exists from the start, so a rate over it is 0 rather than absent.
    for (const result of ['ok', 'error', 'requeue'] satisfies ReconcileResultLabel[]) this.reconcileDuration.zero({ result });
    for (const kind of KNOWN_ACTION_KINDS) for (const result of ['ok', 'failed', 'skipped'] satisfies ActionResultLabel[]) this.actions.inc({ kind, result }, 0);
    for (const result of ['accepted', 'rejected']) this.manifestLoads.inc({ result }, 0);
  }

  /** pm_database_up: 1 while the configured database is reachable, 0 while the daemon runs degraded. */
  watchDatabase(up: () => boolean): void {
    new Gauge({
      name: `${PREFIX}database_up`,
      help: 'Whether the configured PostgreSQL is reachable (1) or the daemon runs degraded without it (0).',
      registers: [this.registry],
      collect() {
        this.set(up() ? 1 : 0);
      },
    });
  }

  /** pm_driver_up{driver}: 1 while the driver's back end answers, 0 while it is degraded; one series per driver in use. */
  watchDrivers(backends: () => readonly { driver: string; up: boolean }[]): void {
    new Gauge({
      name: `${PREFIX}driver_up`,
      help: 'Whether each driver in use reaches its back end (1) or is degraded (0): the Docker Engine, systemd; exec is always 1.',
      labelNames: ['driver'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of backends()) this.set({ driver: b.driver }, b.up ? 1 : 0);
      },
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
    // prom-client runs every collect() synchronously inside metrics(), so the snapshot is cleared
    // before any other scrape can start. Were that to change, the collectors would fall back to
    // calling api.list() themselves: more work, same answer.
    this.scrape = this.api.list();
    let body: Promise<string>;
    try {
      body = this.registry.metrics();
    } finally {
      this.scrape = undefined;
    }
    return { contentType: this.registry.contentType, body: await body };
  }
}
