// Carries out a plan, in numbered steps (kubelet's SyncPod is the model):
//   1. preflight: resolve every environment, secret and user switch; any failure changes nothing
//   2. stop phase: restarts and deletes, wave by wave, dependents before their dependencies
//   3. record manifest updates that need no restart
//   4. start phase: each start waits for its dependencies' conditions, then spawns (bounded by
//      --parallel), then is followed until it is ready, completed or failed
// The executor never decides what to do; the plan did. It records every step in the store and
// the audit log as it goes, so an interrupted apply leaves an accurate state behind.
import { driverProbeHooks } from '../probes/context.js';
import { userInfo } from 'node:os';
import type { DesiredSet, DesiredProcess } from '../manifest/types.js';
import { describeHandle, type Driver, type Observation, type ExitStatus, type ProcessHandle } from '../drivers/driver.js';
import type { FileStore } from '../store/file-store.js';
import type { AuditEntry, ProcessRecord } from '../store/records.js';
import type { Action, Plan } from '../plan/types.js';
import { describeAction, describeExit } from '../plan/explain.js';
import { completesProcess } from '../plan/exit.js';
import { describeStartFailure } from '../errors.js';
import { limitConcurrency } from '../util/limit.js';
import { preflight, probeIdentity, type Prepared } from './preflight.js';
import { ProcessTracker, ConditionUnmet, type TrackerListener } from './tracker.js';
import { followProbes } from './follow.js';

export { PreflightError } from './preflight.js';

export interface ExecuteContext {
  store: FileStore;
  driver: Driver;
  desired: DesiredSet;
  records: ReadonlyMap<string, ProcessRecord>;
  observed: ReadonlyMap<string, Observation>;
  /** The pm command, for the audit log. */
  command: string;
  env: NodeJS.ProcessEnv;
  now: () => number;
}

export interface ExecuteOptions {
  /** Most actions of a wave run at once. */
  parallel: number;
  /** Give up waiting for convergence after this long. */
  timeoutMs: number;
  /** Aborting stops waiting (Ctrl-C); processes already started keep running. */
  signal?: AbortSignal;
  onProgress?: TrackerListener;
}

export interface ExecuteResult {
  ok: boolean;
  /** Every process the start phase touched or waited on. */
  trackers: Map<string, ProcessTracker>;
  /** One line per action that failed, or per process that did not converge, saying why. */
  failures: string[];
  interrupted: 'timeout' | 'signal' | undefined;
}

export async function execute(plan: Plan, ctx: ExecuteContext, options: ExecuteOptions): Promise<ExecuteResult> {
  const prepared = await preflight(plan, ctx.desired, ctx.driver, ctx.env, ctx.store);
  return new Execution(plan, ctx, options, prepared).execute();
}

class Execution {
  private readonly trackers = new Map<string, ProcessTracker>();
  private readonly actions: Map<string, Action>;
  private readonly failures: string[] = [];
  private readonly actor = safeUser();
  /** Aborted when the apply stops waiting: timeout, signal, or done. */
  private readonly abort = new AbortController();
  private readonly records: Map<string, ProcessRecord>;
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  /** Exit watchers and the record writes they make: settled before execute() returns. */
  private readonly background: Promise<unknown>[] = [];
  /** Restarts whose stop succeeded: they are started again even if the apply is interrupted. */
  private readonly stoppedHere = new Set<string>();
  private interrupted: ExecuteResult['interrupted'];

  constructor(
    private readonly plan: Plan,
    private readonly ctx: ExecuteContext,
    private readonly options: ExecuteOptions,
    private readonly prepared: Map<string, Prepared>,
  ) {
    this.records = new Map(ctx.records);
    this.actions = new Map(plan.actions.map((a) => [a.name, a]));
    this.limit = limitConcurrency(Math.max(1, options.parallel));
  }

  async execute(): Promise<ExecuteResult> {
    const timer = setTimeout(() => this.stopWaiting('timeout'), this.options.timeoutMs);
    const onAbort = (): void => this.stopWaiting('signal');
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.options.signal?.aborted) onAbort();
    try {
      const notStopped = await this.stopPhase();
      await this.updatePhase();
      await this.startPhase(notStopped);
    } finally {
      clearTimeout(timer);
      this.options.signal?.removeEventListener('abort', onAbort);
      // Ends every probe loop and exit watcher still going, then lets their last writes land, so
      // nothing touches the state after the caller releases the lock.
      this.abort.abort(new Error('apply finished'));
      await Promise.allSettled(this.background);
      for (const tracker of this.trackers.values()) tracker.close();
    }
    for (const tracker of this.trackers.values()) {
      const planned = this.actions.get(tracker.name);
      if (!planned || (planned.kind !== 'start' && planned.kind !== 'restart') || tracker.converged) continue;
      this.failures.push(`${tracker.name}: ${tracker.state}${tracker.detail ? ` — ${tracker.detail}` : ''}`);
    }
    return { ok: this.failures.length === 0, trackers: this.trackers, failures: this.failures, interrupted: this.interrupted };
  }

  private stopWaiting(why: 'timeout' | 'signal'): void {
    if (this.abort.signal.aborted) return;
    this.interrupted = why;
    this.abort.abort(new Error(why === 'timeout' ? `timed out after ${this.options.timeoutMs} ms` : 'interrupted'));
  }

  private action(name: string): Action {
    const found = this.actions.get(name);
    if (!found) throw new Error(`internal: no planned action for ${name}`);
    return found;
  }

  // Step 2. Returns the restarts and deletes whose process was not stopped (failed, or skipped
  // because the apply was interrupted): those are still running their old version.
  private async stopPhase(): Promise<Set<string>> {
    const failed = new Set<string>();
    for (const wave of this.plan.stopWaves) {
      if (this.abort.signal.aborted) {
        for (const name of wave) {
          failed.add(name);
          this.failures.push(`${name}: not ${this.action(name).kind === 'delete' ? 'deleted' : 'restarted'}: the ${this.ctx.command} was interrupted (still running as before)`);
        }
        continue;
      }
      await Promise.all(
        wave.map((name) =>
          this.limit(async () => {
            if (await this.stopOne(this.action(name))) {
              if (this.action(name).kind === 'restart') this.stoppedHere.add(name);
            } else {
              failed.add(name);
            }
          }),
        ),
      );
    }
    return failed;
  }

  private async stopOne(action: Action): Promise<boolean> {
    const record = this.records.get(action.name);
    const begin = this.ctx.now();
    const auditAction = action.kind === 'delete' ? 'delete' : 'stop';
    let exit: ExitStatus | undefined;
    try {
      if (record?.handle) exit = await this.stopInstance(record, record.handle);
    } catch (error) {
      this.failures.push(`${action.name}: could not stop: ${(error as Error).message}`);
      await this.audit(auditAction, action, 'failed', begin, error);
      return false;
    }
    // It is stopped now, whatever happens to the bookkeeping below.
    try {
      if (action.kind === 'delete') {
        if (record?.handle) await this.ctx.driver.remove?.(record.handle);
        await this.ctx.store.deleteRecord(action.name);
        this.records.delete(action.name);
      } else if (record) {
        await this.saveRecord({ ...record, lastExit: exit ?? record.lastExit });
      }
      await this.audit(auditAction, action, 'ok', begin);
    } catch (error) {
      this.failures.push(`${action.name}: stopped, but the state could not be written: ${(error as Error).message}`);
    }
    return true;
  }

  /** Stops with the settings the instance was started with (the last-applied ones). */
  private async stopInstance(record: ProcessRecord, handle: ProcessHandle): Promise<ExitStatus | undefined> {
    const stop = record.manifest.spec.stop;
    const result = await this.ctx.driver.stop(handle, { signal: stop.signal, gracePeriodMs: stop.gracePeriodSeconds * 1000 });
    if (result.exit) return result.exit;
    // Not our child, so its code is unknown; but pm knows it ended it, and how.
    if (result.wasRunning) return { code: null, signal: result.forced ? 'SIGKILL' : stop.signal, at: this.ctx.now(), known: false };
    return undefined;
  }

  // Step 3.
  private async updatePhase(): Promise<void> {
    for (const action of this.plan.actions.filter((a) => a.kind === 'update')) {
      const begin = this.ctx.now();
      const proc = this.ctx.desired.processes.get(action.name);
      const record = this.records.get(action.name);
      if (!proc || !record) continue;
      try {
        await this.saveRecord({ ...record, manifest: proc.manifest, source: proc.source, appliedAt: new Date(begin).toISOString() });
        await this.audit('update', action, 'ok', begin);
      } catch (error) {
        this.failures.push(`${action.name}: could not record the new manifest: ${(error as Error).message}`);
      }
    }
  }

  // Step 4.
  private async startPhase(notStopped: Set<string>): Promise<void> {
    // A restart whose stop did not happen is still running its old version: it is not started
    // again, and its dependents see it as it is (like any dependency this apply does not start).
    const starting = this.plan.startWaves.flat().filter((name) => !notStopped.has(name));
    for (const name of starting) this.trackers.set(name, new ProcessTracker(name, this.options.onProgress));
    this.followExternalDependencies(starting);
    await Promise.all(
      starting.map(async (name) => {
        const tracker = this.trackers.get(name) as ProcessTracker;
        await this.startOne(this.action(name), tracker).catch((error: unknown) => {
          if (!tracker.final) tracker.set('failed', (error as Error).message);
        });
      }),
    );
  }

  /** Dependencies that are not being started still gate their dependents: follow what they do now. */
  private followExternalDependencies(starting: string[]): void {
    const needs = new Map<string, Set<string>>();
    for (const name of starting) {
      for (const dep of this.ctx.desired.processes.get(name)?.manifest.spec.dependsOn ?? []) {
        if (this.trackers.has(dep.name)) continue;
        let conditions = needs.get(dep.name);
        if (!conditions) needs.set(dep.name, (conditions = new Set()));
        conditions.add(dep.condition);
      }
    }
    for (const [name, conditions] of needs) {
      const tracker = new ProcessTracker(name, this.options.onProgress);
      this.trackers.set(name, tracker);
      const proc = this.ctx.desired.processes.get(name);
      const record = this.records.get(name);
      const observation = this.ctx.observed.get(name) ?? { state: 'missing' };
      if (!proc) {
        tracker.set('failed', 'not declared');
      } else if (observation.state === 'running') {
        tracker.set('running', `pid ${observation.pid}`);
        const startedAt = record?.startedAt ? Date.parse(record.startedAt) : 0;
        if (conditions.has('ready')) {
          const label = `pid ${observation.pid}`;
          const probeHooks = driverProbeHooks(this.ctx.driver, record?.handle);
          this.background.push(
            probeIdentity(proc, this.ctx.env)
              .then((identity) => followProbes(proc, tracker, this.abort.signal, { label, startedAt, ...identity, probeHooks, readyFile: this.ctx.store.readyPath(name) }))
              .catch(() => undefined),
          );
        }
        // A job still running from an earlier, interrupted apply: its end releases (or fails) its dependents.
        if (record?.handle) this.watchExit(proc, tracker, record.handle, false);
      } else {
        const exit = observation.state === 'exited' ? observation.exit : record?.lastExit;
        if (exit && completesProcess(exit, proc.manifest)) tracker.set('completed', 'completed earlier');
        else tracker.set('failed', exit ? describeExit(exit) : 'not running');
      }
    }
  }

  private async startOne(action: Action, tracker: ProcessTracker): Promise<void> {
    const proc = this.ctx.desired.processes.get(action.name);
    const prepared = this.prepared.get(action.name);
    if (!proc || !prepared) throw new Error(`internal: ${action.name} was not prepared`);
    const signal = this.abort.signal;

    const deps = proc.manifest.spec.dependsOn;
    const trackerOf = (name: string): ProcessTracker => this.trackers.get(name) as ProcessTracker;
    const unmet = deps.filter((d) => !trackerOf(d.name).holds(d.condition));
    if (unmet.length > 0) {
      tracker.set('waiting', `for ${unmet.map((d) => `${d.name} (${d.condition})`).join(', ')}`);
      try {
        await Promise.all(unmet.map((d) => trackerOf(d.name).until(d.condition, signal)));
      } catch (error) {
        // Interrupted: a process this apply stopped is started again rather than left down,
        // whatever its dependencies say.
        const restore = signal.aborted && this.stoppedHere.has(action.name);
        if (!restore && error instanceof ConditionUnmet) {
          tracker.set('skipped', `dependency ${error.process} is not ${error.condition}: ${error.why}`);
          await this.audit('start', action, 'skipped', this.ctx.now(), error);
          return;
        }
        if (!restore) return;
      }
    }
    if (signal.aborted && !this.stoppedHere.has(action.name)) return;

    const begin = this.ctx.now();
    const previous = this.records.get(action.name);
    if (action.kind === 'start' && previous?.handle) await this.reapLeftovers(action, previous, previous.handle);
    let handle: ProcessHandle;
    // Taken before the spawn: a process that exits at once may end before start() returns, and its
    // exit must not look older than its start (see withRecordedExit).
    let startedAt = this.ctx.now();
    try {
      handle = await this.limit(async () => {
        tracker.set('starting');
        startedAt = this.ctx.now();
        return this.ctx.driver.start({ name: proc.name, manifest: proc.manifest, env: prepared.env, declaredEnv: prepared.declaredEnv, logs: prepared.logs, ...userIds(prepared), ...(prepared.readyFile !== undefined && { readyFile: prepared.readyFile }) });
      });
    } catch (error) {
      tracker.set('failed', describeStartFailure(error));
      await this.saveRecord(nextRecord(proc, previous, begin, { lastError: describeStartFailure(error) }));
      await this.audit('start', action, 'failed', begin, error);
      return;
    }
    await this.saveRecord(nextRecord(proc, previous, startedAt, { handle, startedAt: new Date(startedAt).toISOString() }));
    await this.audit(action.kind === 'restart' ? 'restart' : 'start', action, 'ok', begin);
    if (signal.aborted) {
      tracker.set('running', `${describeHandle(handle)}; started again without waiting for readiness: the apply was interrupted`);
      return;
    }
    tracker.set('running', describeHandle(handle));

    const exited = this.watchExit(proc, tracker, handle, true);
    if (proc.manifest.spec.type === 'oneshot') {
      await exited;
      return;
    }
    const probing = followProbes(proc, tracker, signal, { label: describeHandle(handle), startedAt, env: prepared.env, ...userIds(prepared), probeHooks: driverProbeHooks(this.ctx.driver, handle), ...(prepared.readyFile !== undefined && { readyFile: prepared.readyFile }) }).catch(() => undefined);
    // Wait until the process has converged, failed, or the apply stops waiting.
    await Promise.race([exited, probing.then(() => (tracker.final ? undefined : exited))]);
  }

  /** Follows the instance to its exit: records it, and settles the tracker as completed or failed. */
  private watchExit(proc: DesiredProcess, tracker: ProcessTracker, handle: ProcessHandle, ownRecord: boolean): Promise<void> {
    const watching = this.ctx.driver.waitExit(handle, this.abort.signal).then(
      async (exit) => {
        const record = this.records.get(proc.name);
        if (ownRecord && record) await this.saveRecord({ ...record, lastExit: exit });
        const completed = completesProcess(exit, proc.manifest);
        const why = ownRecord
          ? `${describeExit(exit)}; see pm logs ${proc.name}`
          : // Started by an earlier, interrupted apply: this pm is not its parent and cannot tell.
            `${describeExit(exit)}: started by an earlier pm, so whether it succeeded is unknown; the next apply runs it again`;
        tracker.set(completed ? 'completed' : 'failed', completed ? describeExit(exit) : why);
      },
      () => undefined,
    );
    this.background.push(watching);
    return watching;
  }

  /**
   * The leader of an exited instance may have left children in its process group. Stopping the
   * old handle ends those that are provably ours (the driver checks); otherwise they would
   * outlive the handle pm is about to replace, out of its reach.
   */
  private async reapLeftovers(action: Action, previous: ProcessRecord, handle: ProcessHandle): Promise<void> {
    const begin = this.ctx.now();
    try {
      if (await this.stopInstance(previous, handle)) await this.audit('stop', action, 'ok', begin);
    } catch (error) {
      await this.audit('stop', action, 'failed', begin, error);
    }
  }

  private async saveRecord(record: ProcessRecord): Promise<void> {
    await this.ctx.store.putRecord(record);
    this.records.set(record.name, record);
  }

  private async audit(what: string, action: Action, result: AuditEntry['result'], begin: number, error?: unknown): Promise<void> {
    const entry: AuditEntry = {
      time: new Date(begin).toISOString(),
      actor: this.actor,
      command: this.ctx.command,
      action: what,
      process: action.name,
      reason: describeAction(action),
      result,
      durationMs: Math.max(0, this.ctx.now() - begin),
    };
    if (error !== undefined) entry.error = (error as Error).message;
    await this.ctx.store.appendAudit(entry);
  }
}

/** The record after a start attempt: the new manifest, with what is worth keeping of the old one. */
function nextRecord(
  proc: DesiredProcess,
  previous: ProcessRecord | undefined,
  at: number,
  outcome: { handle: ProcessHandle; startedAt: string } | { lastError: string },
): ProcessRecord {
  const started = 'handle' in outcome;
  return {
    name: proc.name,
    manifest: proc.manifest,
    source: proc.source,
    appliedAt: new Date(at).toISOString(),
    starts: (previous?.starts ?? 0) + (started ? 1 : 0),
    ...outcome,
    ...(previous?.lastExit ? { lastExit: previous.lastExit } : {}),
    ...(previous?.restartRequestedAt ? { restartRequestedAt: previous.restartRequestedAt } : {}),
  };
}

function userIds({ runAs }: Prepared): { uid?: number; gid?: number } {
  return { ...(runAs.uid !== undefined && { uid: runAs.uid }), ...(runAs.gid !== undefined && { gid: runAs.gid }) };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
