// The planner: (desired, observed, history, now) → the minimal ordered plan. Pure: no I/O, no
// clock, no randomness; everything it needs comes in as arguments.
import type { DesiredSet, DesiredProcess, ProcessManifest } from '../manifest/types.js';
import type { Observation } from '../drivers/driver.js';
import type { ProcessRecord } from '../store/records.js';
import { dependencyLevels } from '../graph/levels.js';
import { diffManifests, type FieldChange } from './diff.js';
import { exitVerdict, policyRestarts, restartPending } from './exit.js';
import { matchesSelector, type Selector } from './selector.js';
import type { Action, Plan, Reason } from './types.js';

export interface PlanInput {
  desired: DesiredSet;
  /** What the driver sees now, by name; a name without an entry counts as missing. */
  observed: ReadonlyMap<string, Observation>;
  /** What pm remembers, by name. */
  records: ReadonlyMap<string, ProcessRecord>;
  /** Epoch ms. Reserved for time-based gates (backoff) that the daemon adds. */
  now: number;
  /** Delete managed processes in scope that the set no longer declares. */
  prune?: boolean;
  /** Only records whose labels match all of these are pruned (kubectl apply --prune -l). */
  pruneSelector?: Selector;
  /** Plan only these processes (plus the restarts they cascade to); the rest count as unchanged. */
  only?: ReadonlySet<string>;
}

export function plan(input: PlanInput): Plan {
  const { desired, observed, records } = input;
  const byName = new Map<string, Action>();
  const unchanged: string[] = [];

  for (const proc of desired.processes.values()) {
    if (input.only && !input.only.has(proc.name)) {
      unchanged.push(proc.name);
      continue;
    }
    const action = planDeclared(proc, records.get(proc.name), observed.get(proc.name));
    if (action) byName.set(proc.name, action);
    else unchanged.push(proc.name);
  }

  cascadeRestarts(desired, observed, records, byName);
  rerunUnknownCompletions(desired, observed, byName);
  const acting = new Set(byName.keys());
  const stillUnchanged = unchanged.filter((name) => !acting.has(name));

  const orphans: Plan['orphans'] = [];
  for (const record of records.values()) {
    if (desired.processes.has(record.name) || input.only) continue;
    if (!underRoots(record, desired.roots)) {
      orphans.push({ name: record.name, source: record.source.file, whyKept: 'out-of-scope' });
    } else if (input.prune && !matchesSelector(record.manifest.metadata.labels, input.pruneSelector)) {
      orphans.push({ name: record.name, source: record.source.file, whyKept: 'selector' });
    } else if (!input.prune) {
      orphans.push({ name: record.name, source: record.source.file, whyKept: 'no-prune' });
    } else {
      byName.set(record.name, { kind: 'delete', name: record.name, reason: { code: 'Pruned', source: record.source.file }, changes: [] });
    }
  }

  return assemble(byName, stillUnchanged, orphans, desired, records);
}

/** The last-applied manifests as a desired set: what `pm restart` acts on without the manifest files. */
export function desiredFromRecords(records: ReadonlyMap<string, ProcessRecord>): DesiredSet {
  const processes = new Map(
    [...records.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((r) => [r.name, { name: r.name, manifest: r.manifest, source: r.source }] as const),
  );
  return { processes, roots: [] };
}

/** Plans the deletion of named managed processes (pm delete): stops in reverse dependency order. */
export function planDelete(names: readonly string[], records: ReadonlyMap<string, ProcessRecord>): Plan {
  const byName = new Map<string, Action>();
  for (const name of names) {
    if (records.has(name)) byName.set(name, { kind: 'delete', name, reason: { code: 'DeleteRequested' }, changes: [] });
  }
  const empty: DesiredSet = { processes: new Map(), roots: [] };
  return assemble(byName, [], [], empty, records);
}

function planDeclared(proc: DesiredProcess, record: ProcessRecord | undefined, seen: Observation | undefined): Action | undefined {
  const observation = seen ?? { state: 'missing' };
  const changes = record ? diffManifests(record.manifest, proc.manifest) : [];
  const running = observation.state === 'running';
  const act = (reason: Reason): Action => ({ kind: running ? 'restart' : 'start', name: proc.name, reason, changes });

  if (!record?.handle) {
    const reason: Reason = record?.lastError ? { code: 'NotStarted', lastError: record.lastError } : { code: 'NotStarted' };
    return { kind: 'start', name: proc.name, reason, changes };
  }
  if (changes.some((c) => c.needsRestart)) return act({ code: 'SpecChanged' });
  if (record.restartRequestedAt && restartPending(record)) {
    return act({ code: 'RestartRequested', requestedAt: record.restartRequestedAt });
  }
  // Unknown (its engine did not answer): nothing is restarted on a guess; a change still is planned.
  if (observation.state !== 'running' && observation.state !== 'unknown') {
    const policy = proc.manifest.spec.restartPolicy.policy;
    const exit = observation.state === 'exited' ? observation.exit : record.lastExit;
    // An unwitnessed exit of a oneshot job may have been a success: on-failure leaves it alone
    // rather than re-running a job that finished (rerunUnknownCompletions re-runs one a start
    // depends on). See policyRestarts.
    if (policy !== 'never' && policyRestarts(proc.manifest, exit)) {
      const lastExit = exit ?? { code: null, signal: null, at: 0, known: false };
      return { kind: 'start', name: proc.name, reason: { code: 'Exited', exit: lastExit, policy }, changes };
    }
  }
  if (changes.length > 0) return { kind: 'update', name: proc.name, reason: { code: 'ConfigChanged' }, changes };
  return undefined;
}

/**
 * A restart propagates to dependents that declare `restart: true` on that dependency (systemd
 * PartOf=, Compose depends_on.restart), transitively, in dependency order. Starting a process that
 * had merely exited does not propagate: nothing its dependents hold has changed.
 */
function cascadeRestarts(
  desired: DesiredSet,
  observed: ReadonlyMap<string, Observation>,
  records: ReadonlyMap<string, ProcessRecord>,
  byName: Map<string, Action>,
): void {
  const levels = dependencyLevels(desired.processes.keys(), (n) => dependencyNames(desired.processes.get(n)?.manifest));
  for (const level of levels) {
    for (const name of level) {
      const existing = byName.get(name);
      if (existing && existing.kind !== 'update') continue;
      const proc = desired.processes.get(name);
      if (!proc || observed.get(name)?.state !== 'running') continue;
      const trigger = proc.manifest.spec.dependsOn.find((d) => d.restart && propagatesRestart(byName.get(d.name)));
      if (!trigger) continue;
      const record = records.get(name);
      const changes: FieldChange[] = existing?.changes ?? (record ? diffManifests(record.manifest, proc.manifest) : []);
      byName.set(name, { kind: 'restart', name, reason: { code: 'DependencyRestarted', dependency: trigger.name }, changes });
    }
  }
}

/**
 * A process about to start that waits for a dependency to be `completed` needs to know that it
 * did. When the dependency ended while no pm was watching, its exit code is unknown: run it again
 * (jobs such as migrations are written to be re-run) rather than start on a guess or wait forever.
 */
function rerunUnknownCompletions(desired: DesiredSet, observed: ReadonlyMap<string, Observation>, byName: Map<string, Action>): void {
  const queue = [...byName.values()].filter((a) => a.kind === 'start' || a.kind === 'restart').map((a) => a.name);
  while (queue.length > 0) {
    const name = queue.pop() as string;
    for (const dep of desired.processes.get(name)?.manifest.spec.dependsOn ?? []) {
      const existing = byName.get(dep.name);
      if (dep.condition !== 'completed' || (existing && existing.kind !== 'update')) continue;
      const seen = observed.get(dep.name);
      if (seen?.state !== 'exited' || exitVerdict(seen.exit) !== 'unknown') continue;
      byName.set(dep.name, { kind: 'start', name: dep.name, reason: { code: 'CompletionUnknown', dependent: name }, changes: existing?.changes ?? [] });
      queue.push(dep.name);
    }
  }
}

function propagatesRestart(action: Action | undefined): boolean {
  if (!action) return false;
  if (action.kind === 'restart') return true;
  return action.kind === 'start' && (action.reason.code === 'SpecChanged' || action.reason.code === 'RestartRequested');
}

/** Pruning is scoped to what was applied from under the same -f paths. */
function underRoots(record: ProcessRecord, roots: readonly string[]): boolean {
  const file = record.source.file;
  return roots.some((root) => file === root || (root !== '-' && file.startsWith(root.endsWith('/') ? root : `${root}/`)));
}

function dependencyNames(manifest: ProcessManifest | undefined): string[] {
  return manifest ? manifest.spec.dependsOn.map((d) => d.name) : [];
}

function assemble(
  byName: Map<string, Action>,
  unchanged: string[],
  orphans: Plan['orphans'],
  desired: DesiredSet,
  records: ReadonlyMap<string, ProcessRecord>,
): Plan {
  const manifestOf = (name: string): ProcessManifest | undefined =>
    desired.processes.get(name)?.manifest ?? records.get(name)?.manifest;

  const starting = [...byName.values()].filter((a) => a.kind === 'start' || a.kind === 'restart').map((a) => a.name);
  const startWaves = dependencyLevels(starting, (n) => dependencyNames(manifestOf(n)));

  // Stop order is start order reversed, over what was running: for deletes the last-applied
  // dependencies count, since the manifest is gone.
  const stopping = [...byName.values()].filter((a) => a.kind === 'restart' || a.kind === 'delete').map((a) => a.name);
  const stopWaves = dependencyLevels(stopping, (n) => dependencyNames(records.get(n)?.manifest ?? manifestOf(n))).reverse();

  startWaves.forEach((wave, i) => wave.forEach((n) => ((byName.get(n) as Action).startWave = i)));
  stopWaves.forEach((wave, i) => wave.forEach((n) => ((byName.get(n) as Action).stopWave = i)));

  const actions = [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { actions, stopWaves, startWaves, unchanged: unchanged.sort(), orphans: orphans.sort((a, b) => (a.name < b.name ? -1 : 1)) };
}
