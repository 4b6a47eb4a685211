// The daemon's planner for one process: (desired, record, observation, dependencies, now) → what
// to do next. Pure, like plan(): the daemon calls it on every reconcile of a key and carries out
// the decision; gates that are not open yet come back as a `wait` with the time to look again, so
// a reconcile never blocks on a dependency or a backoff delay (the work queue requeues it).
//
// Which restarts are gated by what:
//   automatic (an exit the policy answers with a restart): dependencies, circuit breaker, backoff
//   a retry of a start that failed with the same manifest:   dependencies, circuit breaker, backoff
//   asked for (first start, pm restart, spec change,         dependencies only — an operator's
//   cascade):                                                intent, or a new spec, is not a crash loop
import type { Observation } from '../drivers/driver.js';
import type { DesiredProcess } from '../manifest/types.js';
import type { ProcessRecord } from '../store/records.js';
import { remainingMs } from './backoff.js';
import { closedBreaker, mayStart, type BreakerUpdate } from './breaker.js';
import { diffManifests, type FieldChange } from './diff.js';
import { exitVerdict, policyRestarts, restartPending } from './exit.js';
import { manifestDigest } from './digest.js';
import type { Reason } from './types.js';

/** What a dependent needs to know about one of its dependencies. */
export interface DependencyView {
  /** Declared in the desired set. */
  declared: boolean;
  /** Running now, or ran to completion. */
  started: boolean;
  ready: boolean;
  completed: boolean;
  /** Its record's restartedAt: a deliberate restart newer than the dependent's start cascades. */
  restartedAt?: string;
}

export interface SuperviseInput {
  proc: DesiredProcess;
  record: ProcessRecord | undefined;
  observation: Observation;
  dependencies: ReadonlyMap<string, DependencyView>;
  /** A declared process that waits for this one to be `completed`, if any. */
  awaitedBy?: string;
  /** Epoch ms. */
  now: number;
}

export interface UnmetDependency {
  name: string;
  condition: 'started' | 'ready' | 'completed';
}

export type Decision =
  | { kind: 'none'; changes: FieldChange[] }
  /** Record manifest changes that need no restart. */
  | { kind: 'update'; changes: FieldChange[] }
  | { kind: 'start'; reason: Reason; changes: FieldChange[]; /** The circuit breaker's half-open trial. */ trial: boolean; automatic: boolean }
  | { kind: 'restart'; reason: Reason; changes: FieldChange[]; strategy: 'restart' | 'script' }
  /** Held stopped (pm pause). */
  | { kind: 'stop'; changes: FieldChange[] }
  | { kind: 'wait'; gate: 'dependencies'; unmet: UnmetDependency[]; for: 'start' | 'restart'; changes: FieldChange[] }
  | { kind: 'wait'; gate: 'backoff'; retryInMs: number; changes: FieldChange[] }
  | { kind: 'wait'; gate: 'breaker'; retryInMs: number; changes: FieldChange[] }
  | { kind: 'wait'; gate: 'trial-running'; changes: FieldChange[] };

export interface SupervisePlan {
  decision: Decision;
  /** A breaker state to store (the cooldown ended: open → half-open), with its transition. */
  breaker?: BreakerUpdate;
}

export function supervise(input: SuperviseInput): SupervisePlan {
  const { proc, record, observation, now } = input;
  const spec = proc.manifest.spec;
  const changes = record ? diffManifests(record.manifest, proc.manifest) : [];
  const running = observation.state === 'running';
  const quiet = (): SupervisePlan => ({ decision: changes.length > 0 ? { kind: 'update', changes } : { kind: 'none', changes } });

  if (record?.paused) return { decision: running ? { kind: 'stop', changes } : { kind: 'none', changes } };

  const unmet = unmetDependencies(input);
  const gated = (decision: Decision, action: 'start' | 'restart'): SupervisePlan =>
    unmet.length > 0 ? { decision: { kind: 'wait', gate: 'dependencies', unmet, for: action, changes } } : { decision };

  const specChanged = changes.some((c) => c.needsRestart);
  const lastStart = record ? latest(record.startedAt, record.restartedAt) : undefined;
  const requested = record !== undefined && restartPending(record);
  const cascade = running && lastStart !== undefined ? cascadingDependency(input, lastStart) : undefined;

  if (running && record) {
    if (specChanged) return gated({ kind: 'restart', reason: { code: 'SpecChanged' }, changes, strategy: 'restart' }, 'restart');
    if (requested) {
      const reason: Reason = { code: 'RestartRequested', requestedAt: record.restartRequestedAt as string };
      return gated({ kind: 'restart', reason, changes, strategy: spec.restartPolicy.strategy }, 'restart');
    }
    if (cascade) {
      return gated({ kind: 'restart', reason: { code: 'DependencyRestarted', dependency: cascade }, changes, strategy: spec.restartPolicy.strategy }, 'restart');
    }
    return quiet();
  }

  // Not running: never started, exited, stopped, or its last start failed.
  const why = startReason(input, specChanged, requested);
  if (!why) return quiet();
  if (unmet.length > 0) return gated({ kind: 'none', changes }, 'start');
  // A start that failed with this very manifest is retried like a crash (a new manifest is tried at once).
  const retrying = record?.lastError !== undefined && record.failedManifest === manifestDigest(proc.manifest);
  if (!why.automatic && !retrying) return { decision: { kind: 'start', reason: why.reason, changes, trial: false, automatic: false } };

  const verdictOfBreaker = mayStart(record?.breaker ?? closedBreaker(), spec.restartPolicy.circuitBreaker, now);
  const breaker = verdictOfBreaker.transition ? { breaker: { state: verdictOfBreaker.state, transition: verdictOfBreaker.transition } } : {};
  if (!verdictOfBreaker.allowed) {
    const decision: Decision =
      verdictOfBreaker.blockedBy === 'open'
        ? { kind: 'wait', gate: 'breaker', retryInMs: Math.max(0, verdictOfBreaker.retryAt - now), changes }
        : { kind: 'wait', gate: 'trial-running', changes };
    return { decision, ...breaker };
  }
  // The half-open trial still waits out the backoff: the trial is one more start of a crash loop.
  const wait = backoffWait(record, proc, now, changes);
  if (wait) return { ...wait, ...breaker };
  return { decision: { kind: 'start', reason: why.reason, changes, trial: verdictOfBreaker.trial, automatic: why.automatic }, ...breaker };
}

/** Why a process that is not running should start, if it should; automatic: the restart policy asks, not a person or a new spec. */
function startReason(input: SuperviseInput, specChanged: boolean, requested: boolean): { reason: Reason; automatic: boolean } | undefined {
  const { record, observation, proc } = input;
  const spec = proc.manifest.spec;
  if (!record?.handle) return { reason: record?.lastError ? { code: 'NotStarted', lastError: record.lastError } : { code: 'NotStarted' }, automatic: false };
  if (specChanged) return { reason: { code: 'SpecChanged' }, automatic: false };
  if (requested) return { reason: { code: 'RestartRequested', requestedAt: record.restartRequestedAt as string }, automatic: false };
  const exit = observation.state === 'exited' ? observation.exit : record.lastExit;
  const policy = spec.restartPolicy.policy;
  const verdict = exit ? exitVerdict(exit) : 'unknown';
  if (policy !== 'never' && policyRestarts(proc.manifest, exit)) {
    return { reason: { code: 'Exited', exit: exit ?? { code: null, signal: null, at: 0, known: false }, policy }, automatic: true };
  }
  if (policy === 'on-failure' && verdict === 'unknown' && spec.type === 'oneshot' && input.awaitedBy !== undefined) {
    // A job that ended while no pm watched may have failed; what waits for it cannot tell. Jobs
    // are written to be re-run (see README: unwitnessed exits).
    return { reason: { code: 'CompletionUnknown', dependent: input.awaitedBy }, automatic: true };
  }
  return undefined;
}

/** Dependencies whose condition does not hold now, in declaration order. */
export function unmetDependencies(input: Pick<SuperviseInput, 'proc' | 'dependencies'>): UnmetDependency[] {
  const unmet: UnmetDependency[] = [];
  for (const dep of input.proc.manifest.spec.dependsOn) {
    const view = input.dependencies.get(dep.name);
    const holds = view !== undefined && view.declared && (dep.condition === 'started' ? view.started : dep.condition === 'ready' ? view.ready : view.completed);
    if (!holds) unmet.push({ name: dep.name, condition: dep.condition });
  }
  return unmet;
}

/** The first `restart: true` dependency deliberately restarted after this process's last start. */
function cascadingDependency(input: SuperviseInput, lastStart: string): string | undefined {
  for (const dep of input.proc.manifest.spec.dependsOn) {
    if (!dep.restart) continue;
    const restartedAt = input.dependencies.get(dep.name)?.restartedAt;
    if (restartedAt !== undefined && restartedAt > lastStart) return dep.name;
  }
  return undefined;
}

function backoffWait(record: ProcessRecord | undefined, proc: DesiredProcess, now: number, changes: FieldChange[]): SupervisePlan | undefined {
  if (!record?.backoff) return undefined;
  const retryInMs = remainingMs(record.backoff, proc.manifest.spec.restartPolicy.backoff, now);
  return retryInMs > 0 ? { decision: { kind: 'wait', gate: 'backoff', retryInMs, changes } } : undefined;
}

/** ISO timestamps compare as strings. */
function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
