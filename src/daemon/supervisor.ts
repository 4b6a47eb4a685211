// The daemon's reconciler: one key per process, level-triggered. Every trigger (a manifest change,
// a child's exit, a probe transition, an API call, the resync timer) only enqueues names; each
// reconcile re-reads what it needs, asks the pure planner (plan/supervise.ts) what to do, and does
// at most that one thing. Nothing waits on a dependency or a backoff delay: those come back as
// requeues, and a dependency's transitions enqueue its dependents.
//
// Records live in memory and are written through to the store in the background, one write chain
// per process, so a crash → restart never waits for an fsync; the new handle is written right
// after the spawn, so a daemon killed at any point finds (and adopts) what it started.
import { optionalCwd, programArgv, runtimeOf } from '../manifest/runtime.js';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import type { Logger } from 'pino';
import { describeHandle, pidEnv, type ExitStatus, type Observation, type ProcessHandle } from '../drivers/driver.js';
import type { DriverName, ProcessDriver } from '../drivers/router.js';
import type { DesiredProcess, DesiredSet, Hook } from '../manifest/types.js';
import type { FileStore } from '../store/file-store.js';
import { HistoryFeed, type HistoryEntry, type HistoryKind } from '../store/history.js';
import type { AuditEntry, ProcessRecord } from '../store/records.js';
import { prepareStart, probeIdentity, type Prepared } from '../apply/preflight.js';
import { withRecordedExit } from '../cli/state.js';
import { describeStartFailure, NotFoundError, PmError } from '../errors.js';
import { delayMs, emptyBackoff, nextStartAt, recordFailure as backoffFailure, recordHealthyRun, remainingMs } from '../plan/backoff.js';
import { closedBreaker, recordFailure as breakerFailure, recordStart, recordSuccess, resetBreaker, type BreakerTransition, type BreakerUpdate } from '../plan/breaker.js';
import { describeExit, describeReason } from '../plan/explain.js';
import { exitVerdict, policyRestarts } from '../plan/exit.js';
import { manifestDigest } from '../plan/digest.js';
import { supervise, type Decision, type DependencyView } from '../plan/supervise.js';
import type { FieldChange } from '../plan/diff.js';
import type { Reason } from '../plan/types.js';
import type { ControlResult, ControlVerb, DaemonEvent, EventType, ProcessPhase, ProcessStatus } from './api.js';
import { Controller, type ReconcileResult } from './controller.js';
import type { DesiredSources } from './desired.js';
import { EventLog } from './events.js';
import { describeHookFailure, runHook, type HookKind, type HookResult } from './hooks.js';
import { Instance, type InstanceIdentity } from './instance.js';
import { processLogger } from '../log/logger.js';

export interface SupervisorHooks {
  onReconcile?(seconds: number, result: 'ok' | 'error' | 'requeue'): void;
  onAction?(kind: string, result: AuditEntry['result']): void;
}

export interface SupervisorOptions {
  store: FileStore;
  /** Usually a DriverRouter: recoverFor asks the driver the intent's manifest names. */
  driver: ProcessDriver & { recoverFor?(driver: DriverName, instance: string): Promise<ProcessHandle | undefined> };
  sources: DesiredSources;
  records: Map<string, ProcessRecord>;
  logger: Logger;
  /** pm's environment: what fromEnv references resolve against. */
  env: NodeJS.ProcessEnv;
  /** Reconciles that run at once (different processes). */
  workers: number;
  metrics?: SupervisorHooks;
  now?: () => number;
  /** A draw in [0, 1) for backoff jitter. */
  random?: () => number;
  /** Learns the secret values of each process at its start, and scrubs them from hook output shown in events and the audit log. */
  redactor?: { add(value: string): void; redact(text: string): string };
}

const DAEMON_ACTOR = 'pm-daemon';

interface Waiting {
  phase: ProcessPhase;
  detail: string;
}

export class Supervisor {
  readonly events = new EventLog();
  /** Structured facts of each process's life, for STATE/history.jsonl and pm.history. */
  readonly history = new HistoryFeed();
  readonly controller: Controller;
  readonly #store: FileStore;
  readonly #driver: SupervisorOptions['driver'];
  readonly #sources: DesiredSources;
  readonly #records: Map<string, ProcessRecord>;
  readonly #instances = new Map<string, Instance>();
  /** Why a process without an instance is where it is (the last decision), for status. */
  readonly #waiting = new Map<string, Waiting>();
  readonly #failing = new Map<string, string>();
  readonly #writes = new Map<string, Promise<void>>();
  readonly #pendingWrites = new Set<string>();
  /** Audit appends in flight, for flush(). */
  readonly #audits = new Set<Promise<void>>();
  #dependents = new Map<string, string[]>();
  #storeError: string | undefined;
  readonly #log: Logger;
  readonly #processLogs = new Map<string, Logger>();
  readonly #stopping = new AbortController();
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #metrics: SupervisorHooks;
  readonly #redactor: NonNullable<SupervisorOptions['redactor']>;

  constructor(options: SupervisorOptions) {
    this.#store = options.store;
    this.#driver = options.driver;
    this.#sources = options.sources;
    this.#records = options.records;
    this.#log = options.logger;
    this.#env = options.env;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#metrics = options.metrics ?? {};
    this.#redactor = options.redactor ?? { add: () => undefined, redact: (text) => text };
    this.controller = new Controller({
      workers: options.workers,
      reconcile: (name) => this.#timedReconcile(name),
      onError: (name, error) => {
        const message = error instanceof Error ? error.message : String(error);
        this.#failing.set(name, message);
        this.#log.error({ process: name, err: error }, `reconcile failed: ${message}`);
      },
    });
    this.#indexDependents();
  }

  /** Adopts what runs, then starts the workers and reconciles every process once. */
  async start(): Promise<void> {
    await this.#recoverUnrecorded();
    // One engine that cannot answer (Docker down) must not keep the daemon from supervising the rest:
    // its processes are left to their reconciles, which retry with backoff and show in /readyz.
    await Promise.all(
      [...this.#records.values()].map((record) =>
        this.#adopt(record).catch((error: unknown) => {
          this.#failing.set(record.name, (error as Error).message);
          this.#processLog(record.name).warn({ err: error }, `not adopted at start: ${(error as Error).message}; retrying`);
        }),
      ),
    );
    this.controller.start();
    this.enqueue(new Set([...this.#sources.names(), ...this.#records.keys()]));
  }

  /** Ends supervision: no new actions; in-flight ones finish; writes land. Processes keep running. */
  async stop(): Promise<void> {
    // Hooks and restart scripts in flight are cut short (their process groups killed): a reconcile
    // must not hold the shutdown for as long as a hook may run. preStop hooks of a stop: shutdown
    // run after this, unaffected.
    this.#stopping.abort(new Error('the daemon is stopping'));
    await this.controller.stop();
    for (const instance of this.#instances.values()) instance.close();
    await this.flush();
  }

  /** Stops every process, dependents first (shutdown: stop). Call after stop(). */
  async stopAll(): Promise<void> {
    const levels = stopOrder(this.#records, this.#sources);
    for (const level of levels) {
      await Promise.all(level.map((name) => this.#stopInstance(name, 'the daemon is shutting down (shutdown: stop)').catch(() => undefined)));
    }
    await this.flush();
  }

  /** Resolves once every record write and audit entry begun so far has landed (or failed, and been reported). */
  async flush(): Promise<void> {
    while (this.#writes.size > 0 || this.#audits.size > 0) await Promise.allSettled([...this.#writes.values(), ...this.#audits]);
  }

  enqueue(names: Iterable<string>): void {
    for (const name of names) this.controller.queue.add(name);
  }

  /** The watched directory produced a new valid set. */
  acceptWatched(set: DesiredSet): { changed: string[]; conflicts: string[] } {
    const result = this.#sources.setWatched(set);
    this.#indexDependents();
    // A process that left the set must also be looked at: its record still exists.
    this.enqueue(result.changed);
    return result;
  }

  /** Applied processes changed (API apply): reindex and reconcile what changed. */
  appliedChanged(names: readonly string[]): void {
    this.#indexDependents();
    this.enqueue(names);
  }

  get sources(): DesiredSources {
    return this.#sources;
  }

  records(): ReadonlyMap<string, ProcessRecord> {
    return this.#records;
  }

  /** Resync: every process, and a backoff reset for instances that ran long enough. */
  resync(): void {
    const now = this.#now();
    for (const [name, record] of this.#records) {
      const instance = this.#instances.get(name);
      if (!instance || !record.backoff) continue;
      const backoff = recordHealthyRun(record.backoff, record.manifest.spec.restartPolicy.backoff, { startedAt: instance.startedAt, now });
      if (backoff !== record.backoff) this.#put({ ...record, backoff });
    }
    this.enqueue(new Set([...this.#sources.names(), ...this.#records.keys()]));
  }

  // ---- status -------------------------------------------------------------------------------

  status(name: string): ProcessStatus | undefined {
    const proc = this.#sources.get(name);
    const record = this.#records.get(name);
    if (!proc && !record) return undefined;
    const manifest = proc?.manifest ?? (record as ProcessRecord).manifest;
    const instance = this.#instances.get(name);
    const { phase, detail } = this.#phase(name, record, instance);
    const backoffCfg = manifest.spec.restartPolicy.backoff;
    const backoff = record?.backoff ?? emptyBackoff();
    const breaker = record?.breaker ?? closedBreaker();
    const next = nextStartAt(backoff, backoffCfg);
    const status: ProcessStatus = {
      name,
      phase,
      detail,
      up: instance !== undefined,
      ready: instance ? instance.ready : phase === 'Completed',
      restarts: Math.max(0, (record?.starts ?? 0) - 1),
      backoff: { failures: backoff.failures, delayMs: delayMs(backoff, backoffCfg), ...(next > 0 && { nextStartAt: new Date(next).toISOString() }) },
      breaker: { phase: breaker.phase, failures: breaker.failures.length, ...(breaker.phase === 'open' && { retryAt: new Date(breaker.openedAt + breaker.cooldownMs).toISOString() }) },
      paused: record?.paused !== undefined,
      driver: manifest.spec.driver,
      command: programArgv(manifest),
      labels: manifest.metadata.labels,
      source: (proc?.source ?? (record as ProcessRecord).source).file,
    };
    if (instance?.handle.pid !== undefined) status.pid = instance.handle.pid;
    if (record?.startedAt) status.startedAt = record.startedAt;
    if (record?.restartedAt) status.restartedAt = record.restartedAt;
    if (record?.restartHandledAt) status.restartHandledAt = record.restartHandledAt;
    if (record?.restartError) status.restartError = record.restartError;
    if (record?.lastError && record.backoff?.lastFailureAt !== undefined) status.lastErrorAt = new Date(record.backoff.lastFailureAt).toISOString();
    if (record?.lastError) status.lastError = record.lastError;
    if (record?.lastExit) status.lastExit = record.lastExit;
    return status;
  }

  list(): ProcessStatus[] {
    const names = new Set([...this.#sources.names(), ...this.#records.keys()]);
    return [...names].sort().flatMap((n) => this.status(n) ?? []);
  }

  failing(): { process: string; error: string }[] {
    return [...this.#failing].map(([process, error]) => ({ process, error }));
  }

  get storeError(): string | undefined {
    return this.#storeError;
  }

  #phase(name: string, record: ProcessRecord | undefined, instance: Instance | undefined): Waiting {
    if (instance) {
      if (instance.stopping) return { phase: 'Stopping', detail: describeHandle(instance.handle) };
      if (record?.paused) return { phase: 'Stopping', detail: 'paused' };
      const waiting = this.#waiting.get(name);
      if (instance.ready) return { phase: 'Ready', detail: waiting?.detail ?? describeHandle(instance.handle) };
      return { phase: waiting?.phase === 'Running' ? 'Running' : 'Starting', detail: waiting?.detail ?? describeHandle(instance.handle) };
    }
    if (record?.paused) return { phase: 'Paused', detail: `paused by ${record.paused.by} at ${record.paused.at}` };
    const waiting = this.#waiting.get(name);
    if (waiting) return waiting;
    if (!record?.handle) return record?.lastError ? { phase: 'Failed', detail: record.lastError } : { phase: 'Pending', detail: 'not started yet' };
    if (record.lastExit && exitVerdict(record.lastExit) === 'succeeded' && record.manifest.spec.type === 'oneshot') return { phase: 'Completed', detail: describeExit(record.lastExit) };
    return { phase: 'Failed', detail: record.lastExit ? describeExit(record.lastExit) : 'not running' };
  }

  // ---- control (API) -------------------------------------------------------------------------

  async control(verb: ControlVerb, name: string, actor: string): Promise<ControlResult> {
    const proc = this.#sources.get(name);
    const record = this.#records.get(name);
    if (!proc) throw new NotFoundError(name);
    const now = this.#now();
    const iso = new Date(now).toISOString();
    const begin = now;
    let result: ControlResult;
    switch (verb) {
      case 'restart': {
        if (!record) return { name, changed: false, message: `${name} has not been started yet` };
        this.#put({ ...record, restartRequestedAt: iso });
        result = { name, changed: true, message: `restart of ${name} requested` };
        break;
      }
      case 'pause': {
        if (record?.paused) return { name, changed: false, message: `${name} is already paused` };
        const base = record ?? newRecord(proc, iso);
        this.#put({ ...base, paused: { at: iso, by: actor } });
        this.#event(name, 'Paused', 'normal', `paused by ${actor}: held stopped until pm resume`);
        result = { name, changed: true, message: `${name} paused: held stopped until pm resume` };
        break;
      }
      case 'resume': {
        if (!record?.paused) return { name, changed: false, message: `${name} is not paused` };
        const { paused: _paused, ...rest } = record;
        // Resume starts it whatever its restart policy says: it was running before the pause, or
        // was declared and never started. A paused process never started has no handle to restart.
        this.#put({ ...rest, ...(rest.handle && { restartRequestedAt: iso }) });
        this.#event(name, 'Resumed', 'normal', `resumed by ${actor}`);
        result = { name, changed: true, message: `${name} resumed` };
        break;
      }
      case 'reset': {
        if (!record) return { name, changed: false, message: `${name} has no failures to forget` };
        const update = resetBreaker(record.breaker ?? closedBreaker(), now);
        const changed = update.transition !== undefined || (record.backoff?.failures ?? 0) > 0;
        this.#put({ ...record, breaker: update.state, backoff: emptyBackoff() });
        if (update.transition) this.#breakerEvent(name, update.transition);
        result = { name, changed, message: changed ? `${name}: circuit breaker closed and backoff forgotten` : `${name}: breaker already closed, no backoff` };
        break;
      }
    }
    await this.#audit(verb, name, `requested by ${actor}`, 'ok', begin, undefined, actor);
    this.enqueue([name]);
    return result;
  }

  // ---- reconcile -----------------------------------------------------------------------------

  async #timedReconcile(name: string): Promise<ReconcileResult> {
    const begin = performance.now();
    try {
      const result = await this.#reconcile(name);
      this.#failing.delete(name);
      this.#metrics.onReconcile?.((performance.now() - begin) / 1000, result.requeueAfterMs ? 'requeue' : 'ok');
      return result;
    } catch (error) {
      this.#metrics.onReconcile?.((performance.now() - begin) / 1000, 'error');
      throw error;
    }
  }

  async #reconcile(name: string): Promise<ReconcileResult> {
    const proc = this.#sources.get(name);
    const record = this.#records.get(name);
    if (!proc) {
      if (record) await this.#forget(name, record);
      return {};
    }
    const observation = await this.#observe(name, record);
    const now = this.#now();
    const awaitedBy = (this.#dependents.get(name) ?? []).find((d) => this.#sources.get(d)?.manifest.spec.dependsOn.some((x) => x.name === name && x.condition === 'completed'));
    const { decision, breaker } = supervise({
      ...(awaitedBy !== undefined && { awaitedBy }),
      proc,
      record: this.#records.get(name),
      observation,
      dependencies: this.#dependencyViews(proc),
      now,
    });
    if (breaker) this.#applyBreaker(name, breaker);
    await this.#recordQuietChanges(name, proc, decision);
    return this.#carryOut(name, proc, decision);
  }

  async #carryOut(name: string, proc: DesiredProcess, decision: Decision): Promise<ReconcileResult> {
    switch (decision.kind) {
      case 'none':
      case 'update':
        this.#waiting.delete(name);
        return {};
      case 'stop':
        await this.#stopInstance(name, 'paused');
        return {};
      case 'wait':
        return this.#wait(name, decision);
      case 'start':
        return this.#start(name, proc, decision.reason, { trial: decision.trial, deliberate: !decision.automatic && decision.reason.code !== 'NotStarted', automatic: decision.automatic });
      case 'restart':
        if (decision.strategy === 'script' && proc.manifest.spec.restartPolicy.script) {
          await this.#runRestartScript(name, proc, proc.manifest.spec.restartPolicy.script, decision.reason);
          return {};
        }
        this.#event(name, 'Restarting', 'normal', describeReason(decision.reason, decision.changes));
        this.#history(name, 'restart', { strategy: 'stop-start', reason: describeReason(decision.reason, decision.changes) });
        await this.#stopInstance(name, describeReason(decision.reason, decision.changes));
        return this.#start(name, proc, decision.reason, { trial: false, deliberate: true, automatic: false, changes: decision.changes });
    }
  }

  #wait(name: string, decision: Extract<Decision, { kind: 'wait' }>): ReconcileResult {
    switch (decision.gate) {
      case 'dependencies': {
        const what = decision.unmet.map((d) => `${d.name} (${d.condition}${this.#sources.get(d.name) ? '' : ': not declared'})`).join(', ');
        const detail = decision.for === 'restart' ? `restart waits for ${what}` : `waiting for ${what}`;
        if (this.#instances.has(name)) this.#waiting.set(name, { phase: 'Running', detail });
        else this.#waiting.set(name, { phase: 'Waiting', detail });
        return {};
      }
      case 'backoff': {
        const record = this.#records.get(name);
        const at = new Date(this.#now() + decision.retryInMs).toISOString();
        const cause = record?.lastError ? `start failed: ${record.lastError}` : record?.lastExit ? describeExit(record.lastExit) : 'failed';
        const detail = `${cause}; next start in ${formatMs(decision.retryInMs)} (at ${at}), ${record?.backoff?.failures ?? 0} failures counted`;
        const before = this.#waiting.get(name);
        this.#waiting.set(name, { phase: 'BackOff', detail });
        // Once per wait, not on every reconcile that finds the gate still shut.
        if (before?.phase !== 'BackOff' || !before.detail.includes(' next start in ')) this.#event(name, 'BackOff', 'warning', detail);
        return { requeueAfterMs: Math.max(1, decision.retryInMs) };
      }
      case 'breaker': {
        this.#waiting.set(name, { phase: 'CircuitOpen', detail: `circuit breaker open: a trial start in ${formatMs(decision.retryInMs)}; pm reset ${name} to retry now` });
        return { requeueAfterMs: Math.max(1, decision.retryInMs) };
      }
      case 'trial-running':
        return {};
    }
  }

  /** What the driver says now; a running process without an instance (after a restart of pm) is adopted. */
  async #observe(name: string, record: ProcessRecord | undefined): Promise<Observation> {
    const instance = this.#instances.get(name);
    if (instance) return { state: 'running', pid: instance.handle.pid ?? 0 };
    if (!record?.handle) return { state: 'missing' };
    // An exit this daemon saw and recorded for this very instance needs no second look.
    const startedAt = record.startedAt ? Date.parse(record.startedAt) : Number.NaN;
    if (record.lastExit?.known && record.lastExit.at >= startedAt) return { state: 'exited', exit: record.lastExit };
    const seen = withRecordedExit(await this.#driver.inspect(record.handle), record);
    // Adoption looks again: a process that ended in between is seen as ended.
    return seen.state === 'running' ? this.#adopt(record) : seen;
  }

  /** Writes manifest changes that need no restart (labels, probes, policies) as soon as they are seen. */
  async #recordQuietChanges(name: string, proc: DesiredProcess, decision: Decision): Promise<void> {
    if (decision.kind === 'start' || decision.kind === 'restart') return;
    const record = this.#records.get(name);
    if (!record || decision.changes.length === 0 || decision.changes.some((c) => c.needsRestart)) return;
    const begin = this.#now();
    this.#put({ ...record, manifest: proc.manifest, source: proc.source, appliedAt: new Date(begin).toISOString() });
    const paths = decision.changes.map((c) => c.path).join(', ');
    this.#event(name, 'Updated', 'normal', `changed without restart: ${paths}`);
    await this.#audit('update', name, `changed without restart: ${paths}`, 'ok', begin);
    // The instance's probes were built from the old manifest: rebuild its watch.
    const instance = this.#instances.get(name);
    if (instance && decision.changes.some((c) => c.pointer.startsWith('/spec/probes') || c.pointer.startsWith('/spec/minReadySeconds'))) {
      instance.close();
      this.#instances.delete(name);
      if ((await this.#adopt(this.#records.get(name) as ProcessRecord)).state !== 'running') this.enqueue([name]);
    }
  }

  // ---- actions -------------------------------------------------------------------------------

  async #start(name: string, proc: DesiredProcess, reason: Reason, how: { trial: boolean; deliberate: boolean; automatic: boolean; changes?: readonly FieldChange[] }): Promise<ReconcileResult> {
    // A restart for a changed manifest names the fields that changed (events, history, audit).
    const why = describeReason(reason, how.changes);
    const begin = this.#now();
    this.#waiting.set(name, { phase: 'Starting', detail: 'starting' });
    let prepared: Prepared | undefined;
    let startedAt: number;
    let handle;
    try {
      // The driver's check gives a clearer error than a failed spawn; a crash restart of what just
      // ran, unchanged, skips it (a program gone since still fails the spawn, with its reason).
      const previous = this.#records.get(name);
      const rerun = how.automatic && previous?.handle !== undefined && previous.lastError === undefined && manifestDigest(previous.manifest) === manifestDigest(proc.manifest);
      prepared = await prepareStart(proc, this.#driver, this.#env, this.#store, { check: !rerun });
      for (const value of secretValues(proc, prepared.env)) this.#redactor.add(value);
      if (previous?.handle && !this.#instances.has(name)) await this.#reapLeftovers(name, previous, previous.handle);
      const preStart = proc.manifest.spec.hooks.preStart;
      if (preStart) await this.#hookOrThrow(name, 'preStart', preStart, prepared, {});
      // Noted before the spawn, so a daemon killed before it records the handle is not followed
      // by a second copy (see #recoverUnrecorded).
      const instance = randomBytes(16).toString('hex');
      this.#store.writeIntent({ name, instance, manifest: proc.manifest, source: proc.source, at: new Date(this.#now()).toISOString() });
      startedAt = this.#now();
      handle = await this.#driver.start({ name, manifest: proc.manifest, env: prepared.env, declaredEnv: prepared.declaredEnv, logs: prepared.logs, instance, ...ids(prepared), ...(prepared.readyFile !== undefined && { readyFile: prepared.readyFile }) });
    } catch (error) {
      return this.#startFailed(name, proc, why, begin, error);
    }
    const previous = this.#records.get(name);
    const iso = new Date(startedAt).toISOString();
    let breaker = previous?.breaker;
    if (how.trial) breaker = recordStart(breaker ?? closedBreaker(), proc.manifest.spec.restartPolicy.circuitBreaker, startedAt).state;
    const { lastError: _lastError, failedManifest: _failedManifest, ...kept } = previous ?? newRecord(proc, iso);
    const record: ProcessRecord = {
      ...kept,
      manifest: proc.manifest,
      source: proc.source,
      appliedAt: iso,
      handle,
      startedAt: iso,
      starts: (previous?.starts ?? 0) + 1,
      ...(how.deliberate && { restartedAt: iso }),
      ...(breaker && { breaker }),
    };
    // In memory at once, so a probe that passes at once sees this record (the trial); on disk in
    // the background, and the instance is not reported ready before it is there (#watchInstance: a
    // restarted daemon then knows the run, and counts its exit). Not awaited here: the write waits
    // for an fsync, and held a worker 10–20 ms per start with 100 starting (bench:coldstart); a
    // daemon killed before it lands finds the process by the intent written before the spawn.
    void this.#put(record);
    this.#event(name, 'Started', 'normal', `${describeHandle(handle)}: ${why}${how.trial ? ' (circuit breaker trial)' : ''}`);
    this.#history(name, 'start', { result: 'ok', ...(handle.pid !== undefined && { pid: handle.pid }), reason: why, trial: how.trial });
    const postStart = proc.manifest.spec.hooks.postStart;
    this.#waiting.delete(name);
    const instance = this.#watchInstance(proc, record, startedAt, identityOf(prepared), postStart ? 'postStart hook' : undefined);
    // Dependents waiting for it to be `started` can go now.
    this.enqueue(this.#dependents.get(name) ?? []);
    // Not awaited either: the journal keeps the order, and flush() waits for it at shutdown.
    void this.#audit(previous?.handle ? 'restart' : 'start', name, why, 'ok', begin);
    if (postStart) {
      try {
        await this.#hookOrThrow(name, 'postStart', postStart, prepared, pidEnv(handle));
        instance.release();
      } catch {
        // Reported by #hookOrThrow. Kubernetes kills a container whose postStart fails; the exit
        // then counts as a failure.
        if (this.#instances.get(name) === instance) await this.#driver.stop(handle, stopOptions(proc)).catch(() => undefined);
      }
    }
    return {};
  }

  /**
   * The leader of an ended instance may have left children in its process group; they would
   * outlive the handle about to be replaced, out of pm's reach (and may hold its port). The driver
   * ends only what provably belongs to that instance.
   */
  async #reapLeftovers(name: string, record: ProcessRecord, handle: ProcessHandle): Promise<void> {
    const result = await this.#driver.stop(handle, stopOptions(record));
    if (result.wasRunning) this.#event(name, 'Stopped', 'warning', `stopped what the previous instance left running in its process group${result.forced ? ' (SIGKILL after the grace period)' : ''}`);
  }

  async #startFailed(name: string, proc: DesiredProcess, why: string, begin: number, error: unknown): Promise<ReconcileResult> {
    const now = this.#now();
    const message = describeStartFailure(error);
    const previous = this.#records.get(name) ?? newRecord(proc, new Date(begin).toISOString());
    const cfg = proc.manifest.spec.restartPolicy;
    const backoff = backoffFailure(previous.backoff ?? emptyBackoff(), cfg.backoff, { endedAt: now, jitter01: this.#random() });
    const breaker = breakerFailure(previous.breaker ?? closedBreaker(), cfg.circuitBreaker, now);
    // The manifest is not recorded as applied: the last one that ran stays what a diff compares to.
    this.#put({ ...previous, lastError: message, failedManifest: manifestDigest(proc.manifest), backoff, breaker: breaker.state });
    if (breaker.transition) this.#breakerEvent(name, breaker.transition);
    this.#event(name, 'StartFailed', 'warning', message);
    this.#history(name, 'start', { result: 'failed', reason: why, error: message });
    await this.#audit('start', name, why, 'failed', begin, error);
    const wait = remainingMs(backoff, cfg.backoff, now);
    this.#waiting.set(name, { phase: 'BackOff', detail: `start failed: ${message}; next start in ${formatMs(wait)}` });
    return { requeueAfterMs: Math.max(1, wait) };
  }

  #watchInstance(proc: DesiredProcess, record: ProcessRecord, startedAt: number, identity: InstanceIdentity, holdReadiness?: string): Instance {
    const name = proc.name;
    const handle = record.handle;
    if (!handle) throw new Error(`internal: ${name} has no handle to watch`);
    const instance: Instance = new Instance(proc, handle, startedAt, identity, this.#driver, {
      exited: (exit) => this.#exited(name, instance, exit),
      readiness: (ready, detail) => this.#readiness(name, instance, ready, detail),
      unhealthy: (kind, detail) => this.#unhealthy(name, instance, kind, detail),
      note: (detail) => {
        if (this.#instances.get(name) === instance) this.#waiting.set(name, { phase: this.#waiting.get(name)?.phase ?? 'Starting', detail });
      },
    }, this.#now());
    this.#instances.set(name, instance);
    if (holdReadiness) instance.hold(holdReadiness);
    // A process is reported ready only once its record is on disk: a start's write, or one still
    // under way when an instance is rebuilt (a probe changed).
    const recording = this.#writes.get(name);
    if (recording) instance.readyOnceRecorded(recording);
    instance.watch();
    return instance;
  }

  /**
   * A daemon killed between a spawn and the record of its handle left a process no record names:
   * the intent written before the spawn names its marker, and the driver finds it by that.
   */
  async #recoverUnrecorded(): Promise<void> {
    for (const intent of this.#store.listIntents()) {
      const record = this.#records.get(intent.name);
      if (record?.handle && 'instance' in record.handle && record.handle.instance === intent.instance) continue;
      let handle: ProcessHandle | undefined;
      try {
        handle = this.#driver.recoverFor ? await this.#driver.recoverFor(intent.manifest.spec.driver, intent.instance) : await this.#driver.recover?.(intent.instance);
      } catch (error) {
        // The engine may be down: the intent stays, and the next daemon start looks again.
        this.#processLog(intent.name).warn({ err: error }, `could not look for an unrecorded start (instance ${intent.instance}): ${(error as Error).message}`);
        continue;
      }
      if (!handle) {
        this.#store.deleteIntent(intent.name);
        continue;
      }
      const base = record ?? { name: intent.name, manifest: intent.manifest, source: intent.source, appliedAt: intent.at, starts: 0 };
      const { lastError: _lastError, failedManifest: _failedManifest, ...kept } = base;
      await this.#put({ ...kept, manifest: intent.manifest, source: intent.source, appliedAt: intent.at, handle, startedAt: intent.at, starts: base.starts + 1 });
      this.#processLog(intent.name).warn({ pid: handle.pid }, `recovered: ${describeHandle(handle)} was started by a pm daemon that stopped before recording it`);
    }
  }

  /** A running process found at start (or by a reconcile) that this daemon did not spawn. */
  async #adopt(record: ProcessRecord): Promise<Observation> {
    const instance = this.#instances.get(record.name);
    if (instance) return { state: 'running', pid: instance.handle.pid ?? 0 };
    if (!record.handle) return { state: 'missing' };
    const seen = withRecordedExit(await this.#driver.inspect(record.handle), record);
    if (seen.state !== 'running') {
      if (seen.state === 'exited' && this.#noteExitWhileAway(record, seen.exit)) this.enqueue([record.name, ...(this.#dependents.get(record.name) ?? [])]);
      return seen;
    }
    if (this.#instances.has(record.name)) return seen;
    // Probes and minReadySeconds follow the manifest in force, which may be newer than the record.
    const proc = this.#sources.get(record.name) ?? { name: record.name, manifest: record.manifest, source: record.source };
    // A notify probe reads the run's file, which outlives the daemon that started it.
    const identity = { ...(await this.#identity({ name: record.name, manifest: record.manifest, source: record.source })), readyFile: this.#store.readyPath(record.name) };
    const startedAt = record.startedAt ? Date.parse(record.startedAt) : this.#now();
    this.#watchInstance(proc, record, startedAt, identity);
    this.enqueue(this.#dependents.get(record.name) ?? []);
    this.#processLog(record.name).info({ pid: record.handle.pid }, `adopted: ${describeHandle(record.handle)} still runs (started ${record.startedAt ?? 'earlier'})`);
    return seen;
  }

  /** The environment and user a process runs with, for its hooks and probes; its secret values are learnt for redaction. */
  async #identity(proc: DesiredProcess): Promise<InstanceIdentity> {
    const identity = await probeIdentity(proc, this.#env);
    for (const value of secretValues(proc, identity.env)) this.#redactor.add(value);
    return identity;
  }

  /** An exit that happened while no daemon watched: counted once, as the watcher would have. True when it was new. */
  #noteExitWhileAway(record: ProcessRecord, exit: ExitStatus): boolean {
    const startedAt = record.startedAt ? Date.parse(record.startedAt) : 0;
    if (record.lastExit && record.lastExit.at >= startedAt) return false;
    this.#countExit(record.name, record, exit, startedAt);
    return true;
  }

  #exited(name: string, instance: Instance, exit: ExitStatus): void {
    if (this.#instances.get(name) !== instance) return;
    this.#instances.delete(name);
    this.#driver.forget?.(instance.handle);
    const record = this.#records.get(name);
    if (!record) return;
    if (instance.stopping) {
      this.#put({ ...record, lastExit: exit });
    } else {
      this.#countExit(name, record, exit, instance.startedAt);
    }
    this.enqueue([name, ...(this.#dependents.get(name) ?? [])]);
  }

  /** Records an exit nobody asked for: a failure for backoff and breaker when the policy restarts it. */
  #countExit(name: string, record: ProcessRecord, exit: ExitStatus, startedAt: number): void {
    const manifest = this.#sources.get(name)?.manifest ?? record.manifest;
    const cfg = manifest.spec.restartPolicy;
    const verdict = exitVerdict(exit);
    const restarts = policyRestarts(manifest, exit);
    let next: ProcessRecord = { ...record, lastExit: exit };
    // Told after the exit that caused it.
    let transition: BreakerTransition | undefined;
    if (restarts) {
      const backoff = backoffFailure(record.backoff ?? emptyBackoff(), cfg.backoff, { startedAt, endedAt: exit.at, jitter01: this.#random() });
      const breaker = breakerFailure(record.breaker ?? closedBreaker(), cfg.circuitBreaker, exit.at);
      next = { ...next, backoff, breaker: breaker.state };
      transition = breaker.transition;
    } else if (verdict === 'succeeded' && manifest.spec.type === 'oneshot') {
      this.#applyBreaker(name, recordSuccess(record.breaker ?? closedBreaker(), cfg.circuitBreaker, exit.at), next);
      next = this.#records.get(name) ?? next;
      next = { ...next, lastExit: exit };
    }
    this.#put(next);
    // Until the reconcile this exit triggers has run, say what is coming rather than "Failed".
    if (restarts) this.#waiting.set(name, { phase: 'BackOff', detail: `${describeExit(exit)}; restarting (restartPolicy ${cfg.policy})` });
    const completed = verdict === 'succeeded' && manifest.spec.type === 'oneshot';
    this.#event(name, completed ? 'Completed' : 'Exited', completed || !restarts ? 'normal' : 'warning', `${describeExit(exit)}${restarts ? `; restartPolicy ${cfg.policy}` : ''}`);
    this.#history(name, 'exit', { code: exit.code, signal: exit.signal, known: exit.known, verdict, restart: restarts, ...(startedAt > 0 && { ranMs: Math.max(0, exit.at - startedAt) }) });
    if (transition) this.#breakerEvent(name, transition);
  }

  #readiness(name: string, instance: Instance, ready: boolean, detail: string): void {
    if (this.#instances.get(name) !== instance) return;
    const record = this.#records.get(name);
    if (ready) {
      this.#waiting.delete(name);
      this.#event(name, 'Ready', 'normal', detail);
      if (record) this.#applyBreaker(name, recordSuccess(record.breaker ?? closedBreaker(), record.manifest.spec.restartPolicy.circuitBreaker, this.#now()));
    } else {
      this.#waiting.set(name, { phase: 'Running', detail });
      this.#event(name, 'NotReady', 'warning', detail);
    }
    this.enqueue(this.#dependents.get(name) ?? []);
  }

  #unhealthy(name: string, instance: Instance, kind: 'startup' | 'liveness', detail: string): void {
    if (this.#instances.get(name) !== instance) return;
    this.#event(name, kind === 'startup' ? 'StartupFailed' : 'LivenessFailed', 'warning', `${detail}: stopping it (the exit counts as a failure)`);
    const manifest = this.#records.get(name)?.manifest;
    if (!manifest) return;
    // Not a deliberate stop: the exit this causes is a failure, and the restart policy answers it.
    this.#driver.stop(instance.handle, stopOptions({ manifest })).catch((error: unknown) => {
      this.#log.error({ process: name, err: error }, `could not stop the unhealthy instance: ${(error as Error).message}`);
    });
  }

  /** A deliberate stop: preStop hook, signal, grace, SIGKILL. Its exit is not a failure. */
  async #stopInstance(name: string, why: string): Promise<void> {
    const record = this.#records.get(name);
    if (!record?.handle) return;
    const instance = this.#instances.get(name);
    if (instance) instance.stopping = true;
    const begin = this.#now();
    const options = stopOptions(record);
    const preStop = record.manifest.spec.hooks.preStop;
    if (preStop && instance) {
      // The hook's time counts against the grace period (as in Kubernetes), so a slow hook cannot
      // stretch a stop beyond what the manifest allows.
      const identity = await this.#identity({ name, manifest: record.manifest, source: record.source });
      const hook = { ...preStop, timeoutSeconds: Math.max(0.001, Math.min(preStop.timeoutSeconds, options.gracePeriodMs / 1000)) };
      const result = await runHook(hook, { name, kind: 'preStop', env: identity.env, extraEnv: pidEnv(record.handle), ...optionalCwd(record.manifest), ...ids2(identity) });
      if (!result.ok) this.#hookFailed(name, 'preStop', result);
      options.gracePeriodMs = Math.max(0, options.gracePeriodMs - result.durationMs);
    }
    let exit: ExitStatus | undefined;
    try {
      const result = await this.#driver.stop(record.handle, options);
      exit = result.exit ?? (result.wasRunning ? { code: null, signal: result.forced ? 'SIGKILL' : record.manifest.spec.stop.signal, at: this.#now(), known: false } : undefined);
    } catch (error) {
      if (instance) instance.stopping = false;
      await this.#audit('stop', name, why, 'failed', begin, error);
      throw error;
    }
    if (instance) {
      instance.close();
      if (this.#instances.get(name) === instance) this.#instances.delete(name);
      this.#driver.forget?.(record.handle);
    }
    const latest = this.#records.get(name) ?? record;
    this.#put({ ...latest, ...(exit && { lastExit: exit }) });
    this.#event(name, 'Stopped', 'normal', why);
    this.#history(name, 'stop', { reason: why, ...(exit && { code: exit.code, signal: exit.signal, known: exit.known }) });
    await this.#audit('stop', name, why, 'ok', begin);
    this.enqueue(this.#dependents.get(name) ?? []);
  }

  async #forget(name: string, record: ProcessRecord): Promise<void> {
    const why = this.#sources.isWatched(record.source.file) ? `no manifest declares it any more (was in ${record.source.file})` : 'deleted';
    await this.#stopInstance(name, why);
    if (record.handle) {
      const handle = record.handle;
      await this.#driver.remove?.(handle).catch((error: unknown) => this.#processLog(name).warn({ err: error }, `stopped, but not removed from its engine: ${(error as Error).message}`));
    }
    this.#records.delete(name);
    this.#waiting.delete(name);
    this.#failing.delete(name);
    this.#persist(name);
    await this.flushOne(name);
    this.#store.deleteIntent(name);
    this.events.forget(name);
    this.#event(name, 'Deleted', 'normal', why, { daemonWide: true });
    this.#processLogs.delete(name);
    await this.#audit('delete', name, why, 'ok', this.#now());
  }

  async flushOne(name: string): Promise<void> {
    await this.#writes.get(name);
  }

  async #runRestartScript(name: string, proc: DesiredProcess, script: Hook, reason: Reason): Promise<void> {
    const record = this.#records.get(name) as ProcessRecord;
    const begin = this.#now();
    const identity = await this.#identity(proc);
    const result = await runHook(script, {
      signal: this.#stopping.signal,
      name,
      kind: 'restartScript',
      env: identity.env,
      extraEnv: { PM_REASON: describeReason(reason), ...(record.handle && pidEnv(record.handle)) },
      ...optionalCwd(proc.manifest),
      ...ids2(identity),
    });
    const iso = new Date(this.#now()).toISOString();
    // Handled either way, so a failing script is not re-run in a loop; the failure is counted, and
    // only a success is a restart (restartedAt: it cascades, and pm restart waits for it).
    const { restartError: _restartError, ...current } = this.#records.get(name) ?? record;
    let next: ProcessRecord = { ...current, restartHandledAt: iso };
    if (result.ok) {
      next = { ...next, restartedAt: iso, starts: next.starts + 1 };
      this.#put(next);
      this.#event(name, 'ScriptRan', 'normal', `restart script succeeded in ${result.durationMs} ms: ${describeReason(reason)}`);
      this.#history(name, 'restart', { strategy: 'script', reason: describeReason(reason), result: 'ok', durationMs: result.durationMs });
      await this.#audit('restart-script', name, describeReason(reason), 'ok', begin);
    } else {
      const cfg = proc.manifest.spec.restartPolicy;
      const breaker = breakerFailure(next.breaker ?? closedBreaker(), cfg.circuitBreaker, this.#now());
      next = { ...next, backoff: backoffFailure(next.backoff ?? emptyBackoff(), cfg.backoff, { endedAt: this.#now(), jitter01: this.#random() }), breaker: breaker.state };
      if (breaker.transition) this.#breakerEvent(name, breaker.transition);
      const message = this.#redactor.redact(describeHookFailure('restartScript', result));
      next = { ...next, restartError: message };
      this.#event(name, 'ScriptFailed', 'warning', message);
      this.#history(name, 'restart', { strategy: 'script', reason: describeReason(reason), result: 'failed', error: message });
      await this.#audit('restart-script', name, describeReason(reason), 'failed', begin, new Error(message));
    }
    this.#put(next);
    this.enqueue(this.#dependents.get(name) ?? []);
  }

  async #hookOrThrow(name: string, kind: 'preStart' | 'postStart', hook: Hook, prepared: Prepared, extraEnv: Record<string, string>): Promise<void> {
    const proc = this.#sources.get(name);
    const result = await runHook(hook, { name, kind, env: prepared.env, extraEnv, signal: this.#stopping.signal, ...(proc && optionalCwd(proc.manifest)), ...ids(prepared) });
    if (result.ok) return;
    this.#hookFailed(name, kind, result);
    throw new PmError('E_HOOK', this.#redactor.redact(describeHookFailure(kind, result)));
  }

  #hookFailed(name: string, kind: HookKind, result: HookResult): void {
    const message = this.#redactor.redact(describeHookFailure(kind, result));
    this.#event(name, 'HookFailed', 'warning', message);
    this.#processLog(name).debug({ hook: kind, output: this.#redactor.redact(result.output) }, 'hook output');
  }

  #applyBreaker(name: string, update: BreakerUpdate, base?: ProcessRecord): void {
    const record = base ?? this.#records.get(name);
    if (!record) return;
    if (update.transition) this.#breakerEvent(name, update.transition);
    if (update.transition || JSON.stringify(update.state) !== JSON.stringify(record.breaker ?? closedBreaker())) this.#put({ ...record, breaker: update.state });
  }

  #breakerEvent(name: string, t: BreakerTransition): void {
    const type: EventType = t.to === 'open' ? 'BreakerOpened' : t.to === 'half-open' ? 'BreakerHalfOpen' : 'BreakerClosed';
    const retry = t.retryAt !== undefined ? `; a trial start at ${new Date(t.retryAt).toISOString()}` : '';
    this.#event(name, type, t.to === 'open' ? 'warning' : 'normal', `circuit breaker ${t.from} → ${t.to} (${t.reason}, ${t.failures} failures in the window)${retry}`);
    this.#history(name, 'breaker', { from: t.from, to: t.to, reason: t.reason, failures: t.failures, ...(t.retryAt !== undefined && { retryAt: new Date(t.retryAt).toISOString() }) });
    void this.#audit('breaker', name, `${t.from} → ${t.to}: ${t.reason}`, 'ok', t.at);
  }

  // ---- bookkeeping ---------------------------------------------------------------------------

  #dependencyViews(proc: DesiredProcess): Map<string, DependencyView> {
    const views = new Map<string, DependencyView>();
    for (const dep of proc.manifest.spec.dependsOn) {
      const declared = this.#sources.get(dep.name);
      const record = this.#records.get(dep.name);
      const instance = this.#instances.get(dep.name);
      const exit = record?.lastExit;
      const completed = !instance && declared !== undefined && record?.handle !== undefined && exit !== undefined && exitVerdict(exit) === 'succeeded' && declared.manifest.spec.restartPolicy.policy !== 'always';
      views.set(dep.name, {
        declared: declared !== undefined,
        started: (instance !== undefined && !instance.stopping) || completed,
        ready: (instance?.ready ?? false) && !instance?.stopping,
        completed,
        ...(record?.restartedAt && { restartedAt: record.restartedAt }),
      });
    }
    return views;
  }

  #indexDependents(): void {
    const index = new Map<string, string[]>();
    for (const proc of this.#sources.all().values()) {
      for (const dep of proc.manifest.spec.dependsOn) {
        const list = index.get(dep.name) ?? [];
        list.push(proc.name);
        index.set(dep.name, list);
      }
    }
    this.#dependents = index;
  }

  /** Updates the record in memory at once and writes it in the background. */
  #put(record: ProcessRecord): Promise<void> {
    // Callers build records with spreads, which in V8 11 (Node 20) give almost every object a hidden
    // class of its own; a copy by Object.assign shares one (about 260 bytes less per process).
    record = Object.assign({}, record);
    this.#records.set(record.name, record);
    return this.#persist(record.name);
  }

  /** One write chain per process; a write not yet begun takes the newest record when it runs. */
  #persist(name: string): Promise<void> {
    if (this.#pendingWrites.has(name)) return this.#writes.get(name) as Promise<void>;
    this.#pendingWrites.add(name);
    const previous = this.#writes.get(name) ?? Promise.resolve();
    const write = previous.then(async () => {
      this.#pendingWrites.delete(name);
      const record = this.#records.get(name);
      try {
        if (record) await this.#store.putRecord(record);
        else await this.#store.deleteRecord(name);
        this.#storeError = undefined;
      } catch (error) {
        this.#storeError = `cannot write the state of ${name}: ${(error as Error).message}`;
        this.#log.error({ process: name, err: error }, this.#storeError);
      }
    });
    this.#writes.set(name, write);
    void write.then(() => {
      if (this.#writes.get(name) === write) this.#writes.delete(name);
    });
    return write;
  }

  /** Every event is also logged once, by the process's own child logger. */
  #event(process: string | undefined, type: EventType, severity: DaemonEvent['severity'], message: string, options: { daemonWide?: boolean } = {}): void {
    this.events.add({ time: new Date(this.#now()).toISOString(), type, severity, message, ...(process !== undefined && { process }) }, options);
    const log = process === undefined ? this.#log : this.#processLog(process);
    log[severity === 'warning' ? 'warn' : 'info']({ event: type }, `${type}: ${message}`);
  }

  #processLog(name: string): Logger {
    let log = this.#processLogs.get(name);
    if (!log) this.#processLogs.set(name, (log = processLogger(this.#log, name)));
    return log;
  }

  /** Audits an API request that changed desired state (apply, delete). */
  auditRequest(action: string, process: string, reason: string, actor: string): Promise<void> {
    return this.#audit(action, process, reason, 'ok', this.#now(), undefined, actor);
  }

  /** An event about one process from the daemon's other parts (database flags). */
  processEvent(process: string, type: EventType, severity: DaemonEvent['severity'], message: string): void {
    this.#event(process, type, severity, message);
  }

  /** The names the manifests declare now (watched directory and API applies). */
  declaredNames(): string[] {
    return this.#sources.names();
  }

  /** Told the declared names whenever they change (a manifest added or removed, an API apply or delete). */
  onDeclaredChange(listener: (names: string[]) => void): () => void {
    return this.#sources.onNamesChange(listener);
  }

  /** A history entry from the daemon's other parts (database flags). */
  recordHistory(process: string, kind: HistoryKind, detail: HistoryEntry['detail']): void {
    this.#history(process, kind, detail);
  }

  #history(process: string, kind: HistoryKind, detail: HistoryEntry['detail']): void {
    // Error texts quote what a process printed or was given: no secret may reach the history.
    const redacted = Object.fromEntries(Object.entries(detail).map(([key, value]) => [key, typeof value === 'string' ? this.#redactor.redact(value) : value]));
    this.history.record({ time: new Date(this.#now()).toISOString(), process, kind, detail: redacted });
  }

  /** Daemon-wide events (manifests, config) from the daemon's other parts. */
  daemonEvent(type: EventType, severity: DaemonEvent['severity'], message: string): void {
    this.#event(undefined, type, severity, message);
  }

  /** Appends to the audit log; never rejects (a failure is reported once). */
  #audit(action: string, process: string, reason: string, result: AuditEntry['result'], begin: number, error?: unknown, actor = DAEMON_ACTOR): Promise<void> {
    this.#metrics.onAction?.(action, result);
    const entry: AuditEntry = { time: new Date(begin).toISOString(), actor, command: 'daemon', action, process, reason, result, durationMs: Math.max(0, this.#now() - begin) };
    if (error !== undefined) entry.error = (error as Error).message;
    const append = this.#store.appendAudit(entry).catch((failure: unknown) => {
      this.#storeError = `cannot append to the audit log: ${(failure as Error).message}`;
      this.#log.error({ err: failure }, this.#storeError);
    });
    this.#audits.add(append);
    void append.then(() => this.#audits.delete(append));
    return append;
  }
}

/** Values a process gets from pm's environment, files or env files: secrets, as far as pm can tell. */
function secretValues(proc: DesiredProcess, env: Record<string, string>): string[] {
  const literal = new Set(Object.entries(runtimeOf(proc.manifest).env).filter(([, v]) => typeof v !== 'object').map(([k]) => k));
  const plain = new Set(['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'USER', 'LOGNAME']);
  return Object.entries(env)
    .filter(([key]) => !literal.has(key) && !plain.has(key))
    .map(([, value]) => value);
}

function newRecord(proc: DesiredProcess, iso: string): ProcessRecord {
  return { name: proc.name, manifest: proc.manifest, source: proc.source, appliedAt: iso, starts: 0 };
}

function stopOptions(record: { manifest: DesiredProcess['manifest'] }): { signal: NodeJS.Signals; gracePeriodMs: number } {
  const stop = record.manifest.spec.stop;
  return { signal: stop.signal, gracePeriodMs: stop.gracePeriodSeconds * 1000 };
}

function ids({ runAs }: Prepared): { uid?: number; gid?: number } {
  return { ...(runAs.uid !== undefined && { uid: runAs.uid }), ...(runAs.gid !== undefined && { gid: runAs.gid }) };
}

function ids2(identity: InstanceIdentity): { uid?: number; gid?: number } {
  return { ...(identity.uid !== undefined && { uid: identity.uid }), ...(identity.gid !== undefined && { gid: identity.gid }) };
}

function identityOf(prepared: Prepared): InstanceIdentity {
  return { env: prepared.env, ...ids(prepared), ...(prepared.readyFile !== undefined && { readyFile: prepared.readyFile }) };
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** Dependents before their dependencies, over what has a record. */
function stopOrder(records: ReadonlyMap<string, ProcessRecord>, sources: DesiredSources): string[][] {
  const names = [...records.keys()];
  const depsOf = (n: string): string[] => (sources.get(n)?.manifest ?? records.get(n)?.manifest)?.spec.dependsOn.map((d) => d.name).filter((d) => records.has(d)) ?? [];
  const level = new Map<string, number>();
  const visit = (n: string, seen: Set<string>): number => {
    const known = level.get(n);
    if (known !== undefined) return known;
    if (seen.has(n)) return 0;
    seen.add(n);
    const l = Math.max(-1, ...depsOf(n).map((d) => visit(d, seen))) + 1;
    level.set(n, l);
    return l;
  };
  for (const n of names) visit(n, new Set());
  const levels: string[][] = [];
  for (const [n, l] of level) (levels[l] ??= []).push(n);
  return levels.filter(Boolean).reverse();
}

export function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
