// Carries out a plan, in numbered steps (kubelet's SyncPod is the model):
//   1. preflight: resolve every environment, secret and user switch; any failure changes nothing
//   2. stop phase: restarts and deletes, wave by wave, dependents before their dependencies
//   3. record manifest updates that need no restart
//   4. start phase: each start waits for its dependencies' conditions, then spawns (bounded by
//      --parallel), then is followed until it is ready, completed or failed
// The executor never decides what to do; the plan did. It records every step in the store and
// the audit log as it goes, so an interrupted apply leaves an accurate state behind.
import { userInfo } from 'node:os';
import type { DesiredSet, DesiredProcess } from '../manifest/types.js';
import type { Driver, Observation, ExitStatus } from '../drivers/driver.js';
import type { FileStore } from '../store/file-store.js';
import type { AuditEntry, ProcessRecord } from '../store/records.js';
import type { Action, Plan } from '../plan/types.js';
import { describeAction, describeExit } from '../plan/explain.js';
import { PmError, ExitCode, describeStartFailure } from '../errors.js';
import { limitConcurrency } from '../util/limit.js';
import { resolveEnvironment } from './environment.js';
import { resolveRunAs, type RunAs } from './identity.js';
import { ProcessTracker, ConditionUnmet, type TrackerListener } from './tracker.js';
import { followProbes } from './follow.js';

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

interface Prepared {
  env: Record<string, string>;
  runAs: RunAs;
  logs: { stdout: string; stderr: string };
}

export class PreflightError extends PmError {
  constructor(readonly problems: string[]) {
    super('E_PREFLIGHT', `cannot apply; nothing was changed:\n  ${problems.join('\n  ')}`, { exitCode: ExitCode.invalid });
  }
}

export async function execute(plan: Plan, ctx: ExecuteContext, options: ExecuteOptions): Promise<ExecuteResult> {
  const prepared = await preflight(plan, ctx);
  const run = new Execution(plan, ctx, options, prepared);
  return run.execute();
}

async function preflight(plan: Plan, ctx: ExecuteContext): Promise<Map<string, Prepared>> {
  const prepared = new Map<string, Prepared>();
  const problems: string[] = [];
  await Promise.all(
    plan.actions
      .filter((a) => a.kind === 'start' || a.kind === 'restart')
      .map(async (action) => {
        const proc = ctx.desired.processes.get(action.name);
        if (!proc) return;
        try {
          const env = await resolveEnvironment(proc.name, proc.manifest, ctx.env);
          const runAs = await resolveRunAs(proc.name, proc.manifest);
          const request = { env, ...runAs, logs: logPaths(proc, ctx.store) };
          await ctx.driver.check({ name: proc.name, manifest: proc.manifest, ...request });
          prepared.set(proc.name, { env, runAs, logs: request.logs });
        } catch (error) {
          problems.push(error instanceof PmError && error.hint ? `${error.message} (${error.hint})` : (error as Error).message);
        }
      }),
  );
  if (problems.length > 0) throw new PreflightError(problems.sort());
  return prepared;
}

function logPaths(proc: DesiredProcess, store: FileStore): { stdout: string; stderr: string } {
  const logs = proc.manifest.spec.exec.logs;
  const stdout = logs?.stdout ?? store.defaultLogPath(proc.name);
  return { stdout, stderr: logs?.stderr ?? stdout };
}

class Execution {
  private readonly trackers = new Map<string, ProcessTracker>();
  private readonly failures: string[] = [];
  private readonly actor = safeUser();
  private readonly abort = new AbortController();
  private readonly records: Map<string, ProcessRecord>;
  private readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  private interrupted: ExecuteResult['interrupted'];

  constructor(
    private readonly plan: Plan,
    private readonly ctx: ExecuteContext,
    private readonly options: ExecuteOptions,
    private readonly prepared: Map<string, Prepared>,
  ) {
    this.records = new Map(ctx.records);
    this.limit = limitConcurrency(Math.max(1, options.parallel));
  }

  async execute(): Promise<ExecuteResult> {
    const timer = setTimeout(() => this.stopWaiting('timeout'), this.options.timeoutMs);
    const onAbort = (): void => this.stopWaiting('signal');
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.options.signal?.aborted) onAbort();
    try {
      const failedStops = await this.stopPhase();
      await this.updatePhase();
      await this.startPhase(failedStops);
    } finally {
      clearTimeout(timer);
      this.options.signal?.removeEventListener('abort', onAbort);
      // Ends every probe loop and exit watcher that is still going.
      this.abort.abort(new Error('apply finished'));
    }
    for (const tracker of this.trackers.values()) {
      if (!tracker.final && this.isPlanned(tracker.name)) {
        this.failures.push(`${tracker.name}: ${tracker.state}${tracker.detail ? ` — ${tracker.detail}` : ''}`);
      } else if (tracker.state === 'failed' || tracker.state === 'skipped') {
        if (this.isPlanned(tracker.name)) this.failures.push(`${tracker.name}: ${tracker.state} — ${tracker.detail}`);
      }
    }
    return { ok: this.failures.length === 0, trackers: this.trackers, failures: this.failures, interrupted: this.interrupted };
  }

  private stopWaiting(why: 'timeout' | 'signal'): void {
    if (this.abort.signal.aborted) return;
    this.interrupted = why;
    this.abort.abort(new Error(why === 'timeout' ? `timed out after ${this.options.timeoutMs} ms` : 'interrupted'));
  }

  private isPlanned(name: string): boolean {
    return this.plan.actions.some((a) => a.name === name && (a.kind === 'start' || a.kind === 'restart'));
  }

  private action(name: string): Action {
    const found = this.plan.actions.find((a) => a.name === name);
    if (!found) throw new Error(`no planned action for ${name}`);
    return found;
  }

  // Step 2.
  private async stopPhase(): Promise<Set<string>> {
    const failed = new Set<string>();
    for (const wave of this.plan.stopWaves) {
      if (this.abort.signal.aborted) {
        wave.forEach((n) => failed.add(n));
        continue;
      }
      await Promise.all(
        wave.map((name) =>
          this.limit(async () => {
            if (!(await this.stopOne(this.action(name)))) failed.add(name);
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
    try {
      let exit: ExitStatus | undefined;
      if (record?.handle) {
        const stop = record.manifest.spec.stop;
        const result = await this.ctx.driver.stop(record.handle, { signal: stop.signal, gracePeriodMs: stop.gracePeriodSeconds * 1000 });
        exit = result.exit;
      }
      if (action.kind === 'delete') {
        await this.ctx.store.deleteRecord(action.name);
        this.records.delete(action.name);
      } else if (record) {
        const updated: ProcessRecord = { ...record, lastExit: exit ?? record.lastExit };
        await this.ctx.store.putRecord(updated);
        this.records.set(action.name, updated);
      }
      await this.audit(auditAction, action, 'ok', begin);
      return true;
    } catch (error) {
      this.failures.push(`${action.name}: could not stop: ${(error as Error).message}`);
      await this.audit(auditAction, action, 'failed', begin, error);
      return false;
    }
  }

  // Step 3.
  private async updatePhase(): Promise<void> {
    for (const action of this.plan.actions.filter((a) => a.kind === 'update')) {
      const begin = this.ctx.now();
      const proc = this.ctx.desired.processes.get(action.name);
      const record = this.records.get(action.name);
      if (!proc || !record) continue;
      const updated: ProcessRecord = { ...record, manifest: proc.manifest, source: proc.source, appliedAt: new Date(begin).toISOString() };
      await this.ctx.store.putRecord(updated);
      this.records.set(action.name, updated);
      await this.audit('update', action, 'ok', begin);
    }
  }

  // Step 4.
  private async startPhase(failedStops: Set<string>): Promise<void> {
    const starting = this.plan.startWaves.flat();
    for (const name of starting) this.trackers.set(name, new ProcessTracker(name, this.options.onProgress));
    this.followExternalDependencies(starting);
    await Promise.all(
      starting.map(async (name) => {
        const tracker = this.trackers.get(name) as ProcessTracker;
        if (failedStops.has(name)) {
          tracker.set('failed', 'it could not be stopped, so it was not started again');
          return;
        }
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
      const observation = this.ctx.observed.get(name) ?? { state: 'missing' };
      if (!proc) {
        tracker.set('failed', 'not declared');
      } else if (observation.state === 'running') {
        tracker.set('running', `pid ${observation.pid}`);
        if (conditions.has('ready')) {
          void followProbes(proc, observation.pid, tracker, this.abort.signal, { PATH: this.ctx.env.PATH ?? '' }).catch(() => undefined);
        }
        // A job still running from an earlier, interrupted apply: its end releases (or fails) its dependents.
        const handle = this.records.get(name)?.handle;
        if (handle) {
          void this.ctx.driver.waitExit(handle, this.abort.signal).then(
            (exit) => tracker.set(completedOrFailed(exit, proc.manifest.spec.restartPolicy.policy), describeExit(exit)),
            () => undefined,
          );
        }
      } else {
        const exit = observation.state === 'exited' ? observation.exit : this.records.get(name)?.lastExit;
        if (exit && completedOrFailed(exit, proc.manifest.spec.restartPolicy.policy) === 'completed') tracker.set('completed', 'completed earlier');
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
        if (error instanceof ConditionUnmet) {
          tracker.set('skipped', `dependency ${error.process} is not ${error.condition}: ${error.why}`);
          await this.audit('start', action, 'skipped', this.ctx.now(), error);
        }
        return;
      }
    }
    if (signal.aborted) return;

    const begin = this.ctx.now();
    const previous = this.records.get(action.name);
    if (action.kind === 'start' && previous?.handle) await this.reapLeftovers(action, previous);
    let handle;
    try {
      handle = await this.limit(async () => {
        tracker.set('starting');
        return this.ctx.driver.start({ name: proc.name, manifest: proc.manifest, ...prepared, ...prepared.runAs });
      });
    } catch (error) {
      tracker.set('failed', describeStartFailure(error));
      const record: ProcessRecord = {
        name: proc.name,
        manifest: proc.manifest,
        source: proc.source,
        appliedAt: new Date(begin).toISOString(),
        starts: previous?.starts ?? 0,
        lastError: describeStartFailure(error),
        ...(previous?.lastExit ? { lastExit: previous.lastExit } : {}),
        ...(previous?.restartRequestedAt ? { restartRequestedAt: previous.restartRequestedAt } : {}),
      };
      await this.ctx.store.putRecord(record);
      this.records.set(proc.name, record);
      await this.audit('start', action, 'failed', begin, error);
      return;
    }
    const startedAt = new Date(this.ctx.now()).toISOString();
    let record: ProcessRecord = {
      name: proc.name,
      manifest: proc.manifest,
      source: proc.source,
      appliedAt: startedAt,
      handle,
      startedAt,
      starts: (previous?.starts ?? 0) + 1,
      ...(previous?.lastExit ? { lastExit: previous.lastExit } : {}),
      ...(previous?.restartRequestedAt ? { restartRequestedAt: previous.restartRequestedAt } : {}),
    };
    await this.ctx.store.putRecord(record);
    this.records.set(proc.name, record);
    await this.audit(action.kind === 'restart' ? 'restart' : 'start', action, 'ok', begin);
    tracker.set('running', `pid ${handle.pid}`);

    const policy = proc.manifest.spec.restartPolicy.policy;
    const exited = this.ctx.driver.waitExit(handle, signal).then(
      async (exit) => {
        record = { ...record, lastExit: exit };
        await this.ctx.store.putRecord(record);
        this.records.set(proc.name, record);
        const outcome = completedOrFailed(exit, policy);
        tracker.set(outcome, outcome === 'completed' ? describeExit(exit) : `${describeExit(exit)}; see pm logs ${proc.name}`);
      },
      () => undefined,
    );
    const probing = followProbes(proc, handle.pid, tracker, signal, prepared.env).catch(() => undefined);
    // Wait until the process has converged, failed, or the apply stops waiting.
    await Promise.race([exited, probing.then(() => (tracker.final ? undefined : exited))]);
  }

  /**
   * The leader of an exited instance may have left children in its process group. Stopping the
   * old handle ends them (the driver checks identity, so nothing that is not ours is signalled);
   * otherwise they would outlive the handle pm is about to replace, out of its reach.
   */
  private async reapLeftovers(action: Action, previous: ProcessRecord): Promise<void> {
    if (!previous.handle) return;
    const stop = previous.manifest.spec.stop;
    try {
      const result = await this.ctx.driver.stop(previous.handle, { signal: stop.signal, gracePeriodMs: stop.gracePeriodSeconds * 1000 });
      if (result.wasRunning) await this.audit('stop', action, 'ok', this.ctx.now());
    } catch (error) {
      await this.audit('stop', action, 'failed', this.ctx.now(), error);
    }
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

/** How a process that ended during apply counts for `completed` dependencies and convergence. */
function completedOrFailed(exit: ExitStatus, policy: 'always' | 'on-failure' | 'never'): 'completed' | 'failed' {
  // An exit nobody witnessed may have been a failure; a job reaches `completed` only with a known 0.
  return exit.known && exit.code === 0 && policy !== 'always' ? 'completed' : 'failed';
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
