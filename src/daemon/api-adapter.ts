// The DaemonApi the HTTP server serves, over the supervisor: the one place that turns API calls
// into changes of desired state or records, so every writer goes through the same supervisor.
import type { Logger } from 'pino';
import type { Observation } from '../drivers/driver.js';
import { formatManifestIssue, ManifestError, NotFoundError, PmError } from '../errors.js';
import { loadDesiredSetFromFiles, type DesiredSet } from '../manifest/index.js';
import { describeAction } from '../plan/explain.js';
import { plan } from '../plan/planner.js';
import { matchesSelector } from '../plan/selector.js';
import type { ApplyRequest, ApplyResponse, ControlResult, ControlVerb, DaemonApi, DaemonEvent, ProcessStatus, ReadinessReport } from './api.js';
import type { Supervisor } from './supervisor.js';

/** How long a delete waits for the process to be stopped and forgotten. */
const DELETE_WAIT_MS = 120_000;

export interface ApiContext {
  version: string;
  manifests: ReadinessReport['manifests'];
  log: Logger;
  reloadManifests: () => Promise<void>;
  /** Set when a database is configured. */
  database?: () => NonNullable<ReadinessReport['database']>;
  /** The drivers in use and whether their back ends answer. */
  drivers?: () => NonNullable<ReadinessReport['drivers']>;
}

export class DaemonApiAdapter implements DaemonApi {
  readonly #startedAt = new Date().toISOString();
  /** Applies and deletes change the applied set one at a time: each plans against the result of the last. */
  #changes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly supervisor: Supervisor,
    private readonly context: ApiContext,
  ) {}

  info(): { version: string; pid: number; startedAt: string } {
    return { version: this.context.version, pid: process.pid, startedAt: this.#startedAt };
  }

  list(): ProcessStatus[] {
    return this.supervisor.list();
  }

  get(name: string): ProcessStatus | undefined {
    return this.supervisor.status(name);
  }

  events(process?: string, limit?: number): DaemonEvent[] {
    return this.supervisor.events.list(process, limit);
  }

  queueDepth(): number {
    return this.supervisor.controller.queue.len();
  }

  readiness(): ReadinessReport {
    const manifests = { ...this.context.manifests };
    const failing = this.supervisor.failing();
    const reasons: string[] = [];
    if (!manifests.accepted) reasons.push(`the manifests in ${manifests.source} are invalid (the last good set stays in force): ${manifests.errors?.[0] ?? 'not read yet'}`);
    for (const f of failing) reasons.push(`${f.process}: reconcile failed: ${f.error}`);
    const storeError = this.supervisor.storeError;
    if (storeError) reasons.push(`state store: ${storeError}`);
    if (this.supervisor.controller.state !== 'running') reasons.push(`the reconciler is ${this.supervisor.controller.state}`);
    const database = this.context.database?.();
    if (database && !database.up) reasons.push(`database ${database.display} unreachable since ${database.since} (degraded: supervising from the manifests; flags wait)${database.lastError ? `: ${database.lastError}` : ''}`);
    const drivers = this.context.drivers?.();
    for (const d of drivers ?? []) {
      if (!d.up) reasons.push(`driver ${d.driver} degraded since ${d.since} (its processes wait and are retried with backoff; the others are supervised): ${d.lastError ?? 'unreachable'}`);
    }
    return { ready: reasons.length === 0, reasons, manifests, failing, ...(database && { database }), ...(drivers && { drivers }) };
  }

  apply(request: ApplyRequest, actor: string): Promise<ApplyResponse> {
    return this.#oneAtATime(() => this.#apply(request, actor));
  }

  #oneAtATime<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#changes.then(task, task);
    this.#changes = run.catch(() => undefined);
    return run;
  }

  async #apply(request: ApplyRequest, actor: string): Promise<ApplyResponse> {
    let set;
    try {
      set = await loadDesiredSetFromFiles(request.files, request.roots, request.cwd ?? '/');
    } catch (error) {
      if (error instanceof ManifestError) return { ok: false, errors: error.issues.map(formatManifestIssue) };
      if (error instanceof PmError) return { ok: false, errors: [error.hint ? `${error.message} (${error.hint})` : error.message] };
      throw error;
    }
    const sources = this.supervisor.sources;
    if (request.roots.length > 0 && request.roots.every((root) => sources.isWatched(root))) return this.#applyWatched(set, request);
    const conflicts = sources.watchedConflicts(set.processes.keys());
    if (conflicts.length > 0) {
      return { ok: false, errors: conflicts.map((n) => `${n}: the daemon's manifest directory ${sources.watchedRoots.join(', ')} declares it; change it there (the daemon applies that directory on every change)`) };
    }
    const records = this.supervisor.records();
    const outOfWatched = new Map([...records].filter(([, r]) => !sources.isWatched(r.source.file)));
    const observed = new Map<string, Observation>(this.supervisor.list().map((s) => [s.name, observationOf(s)]));
    const planned = plan({ desired: set, observed, records: outOfWatched, now: Date.now(), prune: request.prune, ...(request.pruneSelector && { pruneSelector: request.pruneSelector }) });
    const actions = planned.actions.map((a) => ({ kind: a.kind, name: a.name, reason: describeAction(a) }));
    if (request.dryRun) return { ok: true, actions, unchanged: planned.unchanged };

    const remove = request.prune
      ? sources
          .appliedUnder(request.roots)
          .filter((p) => !set.processes.has(p.name) && matchesSelector(p.manifest.metadata.labels, request.pruneSelector))
          .map((p) => p.name)
      : [];
    const changed = await sources.apply([...set.processes.values()], remove);
    this.supervisor.appliedChanged(changed);
    this.context.log.info({ actor, changed, pruned: remove }, `apply by ${actor}: ${changed.length} changed`);
    for (const name of changed) await this.supervisor.auditRequest('apply', name, remove.includes(name) ? 'pruned by pm apply --prune' : 'applied by pm apply', actor);
    return { ok: true, actions, unchanged: planned.unchanged };
  }

  /**
   * `pm apply -f` of the directory the daemon watches (or files in it): the directory is the source
   * of truth, so the daemon reads it again now instead of waiting for the watcher.
   */
  async #applyWatched(set: DesiredSet, request: ApplyRequest): Promise<ApplyResponse> {
    const records = new Map([...this.supervisor.records()].filter(([, r]) => this.supervisor.sources.isWatched(r.source.file)));
    const observed = new Map<string, Observation>(this.supervisor.list().map((s) => [s.name, observationOf(s)]));
    // The daemon prunes its directory itself: what the directory no longer declares goes.
    const planned = plan({ desired: set, observed, records, now: Date.now(), prune: true });
    const actions = planned.actions.map((a) => ({ kind: a.kind, name: a.name, reason: describeAction(a) }));
    if (!request.dryRun) await this.context.reloadManifests();
    return { ok: true, actions, unchanged: planned.unchanged };
  }

  control(verb: ControlVerb, name: string, actor: string): Promise<ControlResult> {
    return this.supervisor.control(verb, name, actor);
  }

  delete(names: string[], actor: string): Promise<ControlResult[]> {
    return this.#oneAtATime(() => this.#delete(names, actor));
  }

  async #delete(names: string[], actor: string): Promise<ControlResult[]> {
    const sources = this.supervisor.sources;
    const results: ControlResult[] = [];
    const removing: string[] = [];
    for (const name of names) {
      if (!sources.get(name) && !this.supervisor.records().has(name)) throw new NotFoundError(name);
      if (sources.get(name) && !sources.isApplied(name)) {
        results.push({ name, changed: false, message: `${name} is declared in the daemon's manifest directory: remove its manifest there instead` });
      } else {
        removing.push(name);
      }
    }
    // A process others still depend on stays: deleting it would leave them waiting for ever.
    const all = sources.all();
    for (const name of [...removing]) {
      const dependents = [...all.values()].filter((p) => !removing.includes(p.name) && p.manifest.spec.dependsOn.some((d) => d.name === name)).map((p) => p.name);
      if (dependents.length === 0) continue;
      removing.splice(removing.indexOf(name), 1);
      results.push({ name, changed: false, message: `${name} is not deleted: ${dependents.join(', ')} depend${dependents.length === 1 ? 's' : ''} on it (delete ${dependents.length === 1 ? 'it' : 'them'} too, or first change their dependsOn)` });
    }
    const gone = removing.map((name) => this.#deleted(name));
    await sources.apply([], removing);
    this.supervisor.appliedChanged(removing);
    this.context.log.info({ actor, names: removing }, `delete by ${actor}`);
    for (const name of removing) await this.supervisor.auditRequest('delete-request', name, 'pm delete', actor);
    await Promise.all(gone);
    for (const name of removing) results.push({ name, changed: true, message: `${name} stopped and deleted` });
    return results;
  }

  /** Resolves once the supervisor has stopped and forgotten the process. */
  #deleted(name: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        reject(new PmError('E_TIMEOUT', `${name} was not deleted within ${DELETE_WAIT_MS / 1000} s`, { hint: `see pm get ${name} and the daemon's log` }));
      }, DELETE_WAIT_MS);
      const stop = this.supervisor.events.subscribe((event) => {
        if (event.process !== name || event.type !== 'Deleted') return;
        clearTimeout(timer);
        stop();
        resolve();
      });
    });
  }
}

function observationOf(status: ProcessStatus): Observation {
  if (status.up && status.pid !== undefined) return { state: 'running', pid: status.pid };
  if (status.lastExit) return { state: 'exited', exit: status.lastExit };
  return { state: 'missing' };
}
