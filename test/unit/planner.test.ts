import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plan } from '../../src/plan/planner.js';
import type { Observation } from '../../src/drivers/driver.js';
import type { DesiredSet } from '../../src/manifest/types.js';
import type { ProcessRecord } from '../../src/store/records.js';
import { manifest, type ManifestInput } from '../support/manifests.js';

const ROOT = '/srv/manifests';
const running = (pid = 100): Observation => ({ state: 'running', pid });
const exited = (code: number | null, known = true): Observation => ({ state: 'exited', exit: { code, signal: null, at: 1, known } });

function desiredOf(inputs: ManifestInput[]): DesiredSet {
  const processes = new Map(
    inputs
      .map((input) => manifest(input))
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
      .map((m) => [m.metadata.name, { name: m.metadata.name, manifest: m, source: { file: `${ROOT}/${m.metadata.name}.yaml`, line: 1 } }] as const),
  );
  return { processes, roots: [ROOT] };
}

/** A record as if `input` had been applied and started. */
function recordOf(input: ManifestInput, extra: Partial<ProcessRecord> = {}): ProcessRecord {
  const m = manifest(input);
  return {
    name: m.metadata.name,
    manifest: m,
    source: { file: `${ROOT}/${m.metadata.name}.yaml`, line: 1 },
    appliedAt: '2026-01-01T00:00:00.000Z',
    handle: { driver: 'exec', pid: 100, pgid: 100, startTime: '1', bootId: 'b' },
    startedAt: '2026-01-01T00:00:00.000Z',
    starts: 1,
    ...extra,
  };
}

const stack: ManifestInput[] = [
  { name: 'migrate', command: ['node', 'migrate.js'], policy: 'on-failure', type: 'oneshot' },
  { name: 'api', command: ['node', 'api.js'], dependsOn: [{ name: 'migrate', condition: 'completed' }] },
  { name: 'worker', command: ['node', 'worker.js'], dependsOn: [{ name: 'api', restart: true }] },
  { name: 'cron', command: ['node', 'cron.js'], dependsOn: [{ name: 'api' }] },
];

test('a fresh set starts everything in dependency waves', () => {
  const result = plan({ desired: desiredOf(stack), observed: new Map(), records: new Map(), now: 0 });
  assert.deepEqual(
    result.actions.map((a) => [a.name, a.kind, a.reason.code]),
    [
      ['api', 'start', 'NotStarted'],
      ['cron', 'start', 'NotStarted'],
      ['migrate', 'start', 'NotStarted'],
      ['worker', 'start', 'NotStarted'],
    ],
  );
  assert.deepEqual(result.startWaves, [['migrate'], ['api'], ['cron', 'worker']]);
  assert.deepEqual(result.stopWaves, []);
});

test('nothing changed and everything running: an empty plan', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s)]));
  const observed = new Map<string, Observation>(stack.map((s) => [s.name, running()]));
  observed.set('migrate', exited(0));
  const result = plan({ desired: desiredOf(stack), observed, records, now: 0 });
  assert.deepEqual(result.actions, []);
  assert.deepEqual(result.unchanged, ['api', 'cron', 'migrate', 'worker']);
});

test('a changed command restarts that process, names the field, and cascades only where asked', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s)]));
  const observed = new Map<string, Observation>(stack.map((s) => [s.name, running()]));
  observed.set('migrate', exited(0));
  const edited = stack.map((s) => (s.name === 'api' ? { ...s, command: ['node', 'api.js', '--port', '8081'] } : s));
  const result = plan({ desired: desiredOf(edited), observed, records, now: 0 });
  assert.deepEqual(
    result.actions.map((a) => [a.name, a.kind, a.reason.code]),
    [
      ['api', 'restart', 'SpecChanged'],
      ['worker', 'restart', 'DependencyRestarted'],
    ],
  );
  const api = result.actions[0];
  assert.deepEqual(
    api?.changes.map((c) => [c.op, c.path, c.to]),
    [
      ['add', 'spec.exec.command[2]', '--port'],
      ['add', 'spec.exec.command[3]', '8081'],
    ],
  );
  // worker stops before api (it depends on api) and starts after it.
  assert.deepEqual(result.stopWaves, [['worker'], ['api']]);
  assert.deepEqual(result.startWaves, [['api'], ['worker']]);
  assert.ok(result.unchanged.includes('cron'), 'cron did not ask to follow api restarts');
});

test('changes that need no restart are an in-place update listing the fields', () => {
  const records = new Map([['api', recordOf({ name: 'api', command: ['x'] })]]);
  const desired = desiredOf([{ name: 'api', command: ['x'], labels: { tier: 'web' }, stopGraceSeconds: 3 }]);
  const result = plan({ desired, observed: new Map([['api', running()]]), records, now: 0 });
  assert.equal(result.actions.length, 1);
  assert.equal(result.actions[0]?.kind, 'update');
  assert.deepEqual(result.actions[0]?.changes.map((c) => [c.path, c.needsRestart]), [
    ['metadata.labels.tier', false],
    ['spec.stop.gracePeriodSeconds', false],
  ]);
  assert.deepEqual(result.startWaves, []);
});

test('an env change is reported with its key', () => {
  const records = new Map([['api', recordOf({ name: 'api', command: ['x'], env: { PORT: '8080' } })]]);
  const desired = desiredOf([{ name: 'api', command: ['x'], env: { PORT: '8081' } }]);
  const result = plan({ desired, observed: new Map([['api', running()]]), records, now: 0 });
  assert.deepEqual(result.actions[0]?.changes.map((c) => [c.op, c.path, c.from, c.to]), [['replace', 'spec.exec.env.PORT', '8080', '8081']]);
});

test('exited processes follow their restart policy', () => {
  const cases: [ManifestInput['policy'], Observation, string | undefined][] = [
    ['always', exited(0), 'Exited'],
    ['always', exited(1), 'Exited'],
    ['on-failure', exited(0), undefined],
    ['on-failure', exited(2), 'Exited'],
    // A service that ended while no pm watched: a service is meant to run, so this is a failure.
    ['on-failure', exited(null, false), 'Exited'],
    ['never', exited(1), undefined],
    ['never', exited(0), undefined],
  ];
  for (const [policy, observation, expected] of cases) {
    const input: ManifestInput = { name: 'job', command: ['x'], policy };
    const result = plan({ desired: desiredOf([input]), observed: new Map([['job', observation]]), records: new Map([['job', recordOf(input)]]), now: 0 });
    assert.equal(result.actions[0]?.reason.code, expected, `${policy} after ${JSON.stringify(observation)}`);
    if (expected) assert.equal(result.actions[0]?.kind, 'start');
  }
  // A oneshot job's unwitnessed end may have been its success: on-failure leaves it.
  const job: ManifestInput = { name: 'job', command: ['x'], policy: 'on-failure', type: 'oneshot' };
  const left = plan({ desired: desiredOf([job]), observed: new Map([['job', exited(null, false)]]), records: new Map([['job', recordOf(job)]]), now: 0 });
  assert.deepEqual(left.actions, []);
});

test('a restart request newer than the last start is honoured once', () => {
  const input: ManifestInput = { name: 'api', command: ['x'] };
  const requested = recordOf(input, { restartRequestedAt: '2026-02-01T00:00:00.000Z' });
  const honoured = recordOf(input, { restartRequestedAt: '2026-02-01T00:00:00.000Z', startedAt: '2026-02-01T00:00:01.000Z' });
  const observed = new Map([['api', running()]]);
  assert.equal(plan({ desired: desiredOf([input]), observed, records: new Map([['api', requested]]), now: 0 }).actions[0]?.reason.code, 'RestartRequested');
  assert.deepEqual(plan({ desired: desiredOf([input]), observed, records: new Map([['api', honoured]]), now: 0 }).actions, []);
});

test('pruning: never without --prune, only in scope, only matching the selector, dependents first', () => {
  const kept: ManifestInput = { name: 'api', command: ['x'] };
  const gone: ManifestInput = { name: 'old', command: ['x'], labels: { team: 'a' } };
  const goneDependent: ManifestInput = { name: 'old-worker', command: ['x'], labels: { team: 'a' }, dependsOn: [{ name: 'old' }] };
  const elsewhere = recordOf({ name: 'other', command: ['x'] }, { source: { file: '/elsewhere/other.yaml', line: 1 } });
  const records = new Map([
    ['api', recordOf(kept)],
    ['old', recordOf(gone)],
    ['old-worker', recordOf(goneDependent)],
    ['other', elsewhere],
  ]);
  const observed = new Map<string, Observation>([...records.keys()].map((n) => [n, running()]));
  const desired = desiredOf([kept]);

  const noPrune = plan({ desired, observed, records, now: 0 });
  assert.deepEqual(noPrune.actions, []);
  assert.deepEqual(noPrune.orphans.map((o) => [o.name, o.whyKept]), [
    ['old', 'no-prune'],
    ['old-worker', 'no-prune'],
    ['other', 'out-of-scope'],
  ]);

  const pruned = plan({ desired, observed, records, now: 0, prune: true });
  assert.deepEqual(pruned.actions.map((a) => [a.name, a.kind]), [
    ['old', 'delete'],
    ['old-worker', 'delete'],
  ]);
  assert.deepEqual(pruned.stopWaves, [['old-worker'], ['old']]);

  const selected = plan({ desired, observed, records, now: 0, prune: true, pruneSelector: { team: 'b' } });
  assert.deepEqual(selected.actions, []);
});

test('only: plans the named processes and the restarts they cascade to', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s, { restartRequestedAt: s.name === 'api' ? '2027-01-01T00:00:00.000Z' : undefined })]));
  const observed = new Map<string, Observation>(stack.map((s) => [s.name, running()]));
  observed.set('migrate', exited(1));
  const result = plan({ desired: desiredOf(stack), observed, records, now: 0, only: new Set(['api']) });
  assert.deepEqual(result.actions.map((a) => [a.name, a.reason.code]), [
    ['api', 'RestartRequested'],
    ['worker', 'DependencyRestarted'],
  ]);
  assert.deepEqual(result.orphans, []);
});

test('the planner is deterministic: the same input gives the same plan', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s)]));
  const observed = new Map<string, Observation>(stack.map((s) => [s.name, exited(1)]));
  const a = plan({ desired: desiredOf(stack), observed, records, now: 0 });
  const b = plan({ desired: desiredOf([...stack].reverse()), observed, records, now: 0 });
  assert.deepEqual(a, b);
});

test('a job whose completion nobody witnessed runs again when a start waits for it', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s)]));
  const observed = new Map<string, Observation>([
    ['migrate', exited(null, false)],
    ['api', exited(1)],
    ['worker', running()],
    ['cron', running()],
  ]);
  const result = plan({ desired: desiredOf(stack), observed, records, now: 0 });
  assert.deepEqual(result.actions.map((a) => [a.name, a.kind, a.reason.code]), [
    ['api', 'start', 'Exited'],
    ['migrate', 'start', 'CompletionUnknown'],
  ]);
  assert.deepEqual(result.startWaves, [['migrate'], ['api']]);
  // Nothing waits for it: an unwitnessed end of an on-failure job is left alone.
  observed.set('api', running());
  assert.deepEqual(plan({ desired: desiredOf(stack), observed, records, now: 0 }).actions, []);
});

test('a label change on a job whose completion is unknown does not stop it being re-run for a dependent', () => {
  const records = new Map(stack.map((s) => [s.name, recordOf(s)]));
  const observed = new Map<string, Observation>([
    ['migrate', exited(null, false)],
    ['api', exited(1)],
    ['worker', running()],
    ['cron', running()],
  ]);
  const relabelled = stack.map((s) => (s.name === 'migrate' ? { ...s, labels: { v: '2' } } : s));
  const result = plan({ desired: desiredOf(relabelled), observed, records, now: 0 });
  const migrate = result.actions.find((a) => a.name === 'migrate');
  assert.equal(migrate?.kind, 'start');
  assert.equal(migrate?.reason.code, 'CompletionUnknown');
  assert.deepEqual(migrate?.changes.map((c) => c.path), ['metadata.labels.v']);
});

test('stop settings: an update in place for exec, a restart for a unit pm writes (they are in its file), an update for an existing unit', async () => {
  const { diffManifests } = await import('../../src/plan/diff.js');
  const base = manifest({ name: 'api', command: ['node', 'server.js'] });
  const withStop = (m: typeof base, driver: 'exec' | 'owned' | 'existing'): typeof base => {
    const spec = { ...m.spec, stop: { ...m.spec.stop, signal: 'SIGINT' as const, gracePeriodSeconds: 30 } };
    if (driver === 'exec') return { ...m, spec };
    const systemd = driver === 'owned' ? { command: ['/usr/bin/node', 'server.js'] as [string, ...string[]], env: {}, envFiles: [] } : { unit: 'api.service', env: {}, envFiles: [] };
    return { ...m, spec: { ...spec, driver: 'systemd', exec: undefined, systemd } };
  };
  for (const [driver, restart] of [['exec', false], ['owned', true], ['existing', false]] as const) {
    const before = withStop(base, driver);
    const after = { ...before, spec: { ...before.spec, stop: { ...before.spec.stop, signal: 'SIGTERM' as const } } };
    assert.deepEqual(
      diffManifests(before, after).map((c) => [c.path, c.needsRestart]),
      [['spec.stop.signal', restart]],
      driver,
    );
  }
});
