// The daemon's per-process planner, supervise(): one decision from (desired, record, observation,
// dependencies, now). Each test builds the smallest input that reaches one branch and checks the
// whole decision, so a field that appears or disappears is noticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { supervise, unmetDependencies, type DependencyView, type SuperviseInput, type SupervisePlan } from '../../src/plan/supervise.js';
import type { ExitStatus, Observation } from '../../src/drivers/driver.js';
import type { Backoff, CircuitBreaker, DesiredProcess, ProcessManifest } from '../../src/manifest/types.js';
import type { BackoffState } from '../../src/plan/backoff.js';
import type { BreakerState } from '../../src/plan/breaker.js';
import type { ProcessRecord } from '../../src/store/records.js';
import { manifest, type ManifestInput } from '../support/manifests.js';
import { manifestDigest } from '../../src/plan/digest.js';

const ROOT = '/srv/manifests';
const S = 1000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
/** When the recorded instance started. */
const STARTED = iso(T0);
/** The default clock: a minute after that start. */
const NOW = T0 + 60 * S;

// ---- building inputs ---------------------------------------------------------------------------

/** What the shared manifest helper cannot say: the process type and the restart policy's details. */
interface Input extends ManifestInput {
  type?: 'service' | 'oneshot';
  strategy?: 'restart' | 'script';
  backoff?: Partial<Backoff>;
  circuitBreaker?: Partial<CircuitBreaker>;
}

function manifestOf(input: Input): ProcessManifest {
  const { type, strategy, backoff, circuitBreaker, ...base } = input;
  const m = manifest(base);
  if (type) m.spec.type = type;
  const policy = m.spec.restartPolicy;
  if (strategy === 'script') Object.assign(policy, { strategy, script: { command: ['kill', '-HUP', '1'], timeoutSeconds: 30, env: {} } });
  if (strategy === 'restart') policy.strategy = strategy;
  if (backoff) policy.backoff = { ...policy.backoff, ...backoff };
  if (circuitBreaker) policy.circuitBreaker = { ...policy.circuitBreaker, ...circuitBreaker };
  return m;
}

function desiredOf(input: Input): DesiredProcess {
  const m = manifestOf(input);
  return { name: m.metadata.name, manifest: m, source: { file: `${ROOT}/${m.metadata.name}.yaml`, line: 1 } };
}

/** A record as if `input` had been applied and started at STARTED. */
function recordOf(input: Input, extra: Partial<ProcessRecord> = {}): ProcessRecord {
  const m = manifestOf(input);
  return {
    name: m.metadata.name,
    manifest: m,
    source: { file: `${ROOT}/${m.metadata.name}.yaml`, line: 1 },
    appliedAt: STARTED,
    handle: { driver: 'exec', pid: 100, pgid: 100, startTime: '1', bootId: 'b' },
    startedAt: STARTED,
    starts: 1,
    ...extra,
  };
}

/** A record of a process whose every start failed: no handle, no start time. */
function failedStartOf(input: Input, extra: Partial<ProcessRecord> = {}): ProcessRecord {
  // The failure is this manifest's: its retries back off (a new manifest would be tried at once).
  const { handle: _handle, startedAt: _startedAt, ...rest } = recordOf(input, { starts: 0, lastError: 'spawn node ENOENT', failedManifest: manifestDigest(manifestOf(input)), ...extra });
  return rest;
}

const running = (pid = 100): Observation => ({ state: 'running', pid });
const exitOf = (code: number | null, known = true, signal: NodeJS.Signals | null = null): ExitStatus => ({ code, signal, at: NOW - 5 * S, known });
const exited = (code: number | null, known = true): Observation => ({ state: 'exited', exit: exitOf(code, known) });
const killed = (signal: NodeJS.Signals): Observation => ({ state: 'exited', exit: exitOf(null, true, signal) });
const missing: Observation = { state: 'missing' };

const up: DependencyView = { declared: true, started: true, ready: true, completed: false };
const down: DependencyView = { declared: true, started: false, ready: false, completed: false };
const done: DependencyView = { declared: true, started: true, ready: true, completed: true };
const depsOf = (views: Record<string, DependencyView>): ReadonlyMap<string, DependencyView> => new Map(Object.entries(views));

interface Case {
  proc: Input;
  record?: ProcessRecord;
  observation?: Observation;
  dependencies?: ReadonlyMap<string, DependencyView>;
  awaitedBy?: string;
  now?: number;
}

function inputOf(c: Case): SuperviseInput {
  return {
    proc: desiredOf(c.proc),
    record: c.record,
    observation: c.observation ?? (c.record?.handle ? running() : missing),
    dependencies: c.dependencies ?? new Map(),
    ...(c.awaitedBy !== undefined && { awaitedBy: c.awaitedBy }),
    now: c.now ?? NOW,
  };
}

const run = (c: Case): SupervisePlan => supervise(inputOf(c));

/** Backoff counted for `failures` failures, the last ending at `at`, with no jitter drawn. */
const failures = (n: number, at: number, jitter01 = 0): BackoffState => ({ failures: n, lastFailureAt: at, jitter01 });
/** A breaker that opened at `openedAt` and stays open for `cooldownMs`. */
const openBreaker = (openedAt: number, cooldownMs = 300 * S, failed = 5): BreakerState => ({
  phase: 'open',
  failures: Array.from({ length: failed }, (_, i) => openedAt - (failed - 1 - i) * S),
  openedAt,
  cooldownMs,
});

// A recorded crash loop: both gates shut at NOW (backoff for another 3 s, breaker for 5 min).
const CRASHING: Partial<ProcessRecord> = { backoff: failures(3, NOW - 1 * S), breaker: openBreaker(NOW - 1 * S), lastExit: exitOf(1) };

const api: Input = { name: 'api', command: ['node', 'api.js'] };

// ---- never started -----------------------------------------------------------------------------

test('never started: no record is started at once as NotStarted', () => {
  assert.deepEqual(run({ proc: api, record: undefined }), {
    decision: { kind: 'start', reason: { code: 'NotStarted' }, changes: [], trial: false, automatic: false },
  });
});

test('never started: a record whose start failed carries the error in the reason', () => {
  const record = failedStartOf(api);
  assert.deepEqual(run({ proc: api, record }), {
    decision: { kind: 'start', reason: { code: 'NotStarted', lastError: 'spawn node ENOENT' }, changes: [], trial: false, automatic: false },
  });
});

test('dependencies: each condition reads its own flag', () => {
  const cases: ['started' | 'ready' | 'completed', DependencyView, boolean][] = [
    ['started', down, false],
    ['started', { ...down, started: true }, true],
    ['ready', { ...down, started: true }, false],
    ['ready', up, true],
    ['completed', up, false],
    ['completed', done, true],
    // completed reads only `completed`: a job that finished is no longer running or ready.
    ['completed', { ...down, completed: true }, true],
  ];
  for (const [condition, view, met] of cases) {
    const proc: Input = { ...api, dependsOn: [{ name: 'db', condition }] };
    const plan = run({ proc, dependencies: depsOf({ db: view }) });
    const expected = met
      ? { kind: 'start', reason: { code: 'NotStarted' }, changes: [], trial: false, automatic: false }
      : { kind: 'wait', gate: 'dependencies', unmet: [{ name: 'db', condition }], for: 'start', changes: [] };
    assert.deepEqual(plan.decision, expected, `${condition} with ${JSON.stringify(view)}`);
  }
});

test('dependencies: the condition defaults to ready', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  assert.deepEqual(run({ proc, dependencies: depsOf({ db: { ...down, started: true } }) }).decision, {
    kind: 'wait',
    gate: 'dependencies',
    unmet: [{ name: 'db', condition: 'ready' }],
    for: 'start',
    changes: [],
  });
});

test('dependencies: exactly the unmet ones are listed, in declaration order, undeclared ones included', () => {
  const proc: Input = {
    ...api,
    dependsOn: [
      { name: 'zk', condition: 'started' },
      { name: 'cache', condition: 'started' },
      { name: 'migrate', condition: 'completed' },
      { name: 'gone', condition: 'ready' },
      { name: 'db', condition: 'ready' },
      { name: 'stale', condition: 'started' },
    ],
  };
  const dependencies = depsOf({
    zk: down,
    cache: up,
    migrate: up,
    // gone: no view at all
    db: up,
    // A view that says everything holds but is not declared any more still does not count.
    stale: { ...done, declared: false },
  });
  assert.deepEqual(run({ proc, dependencies }).decision, {
    kind: 'wait',
    gate: 'dependencies',
    unmet: [
      { name: 'zk', condition: 'started' },
      { name: 'migrate', condition: 'completed' },
      { name: 'gone', condition: 'ready' },
      { name: 'stale', condition: 'started' },
    ],
    for: 'start',
    changes: [],
  });
  assert.deepEqual(unmetDependencies({ proc: desiredOf(proc), dependencies }).map((d) => d.name), ['zk', 'migrate', 'gone', 'stale']);
});

test('dependencies: all met, the start goes ahead', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db', condition: 'ready' }, { name: 'migrate', condition: 'completed' }] };
  assert.equal(run({ proc, dependencies: depsOf({ db: up, migrate: done }) }).decision.kind, 'start');
});

test('never started: a failed start counted in backoff waits, then starts once nextStartAt passes', () => {
  const proc: Input = { ...api, backoff: { initialSeconds: 1, factor: 2, jitter: 0.2 } };
  const failedAt = NOW - 10 * S;
  const record = failedStartOf(proc, { backoff: failures(2, failedAt) });
  // Two failures: 2 s from the failed start, whatever `now` is.
  assert.deepEqual(run({ proc, record, now: failedAt + 500 }), { decision: { kind: 'wait', gate: 'backoff', retryInMs: 1500, changes: [] } });
  assert.deepEqual(run({ proc, record, now: failedAt + 1999 }).decision, { kind: 'wait', gate: 'backoff', retryInMs: 1, changes: [] });
  for (const now of [failedAt + 2000, failedAt + 60 * S]) {
    assert.deepEqual(run({ proc, record, now }), {
      decision: { kind: 'start', reason: { code: 'NotStarted', lastError: 'spawn node ENOENT' }, changes: [], trial: false, automatic: false },
    });
  }
});

test('never started: dependencies are checked before the backoff', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  const record = failedStartOf(proc, { backoff: failures(1, NOW) });
  assert.deepEqual(run({ proc, record, dependencies: depsOf({ db: down }) }).decision, {
    kind: 'wait',
    gate: 'dependencies',
    unmet: [{ name: 'db', condition: 'ready' }],
    for: 'start',
    changes: [],
  });
});

test('never started: retries of a failed start are held by an open circuit breaker too', () => {
  const record = failedStartOf(api, { breaker: openBreaker(NOW - S) });
  assert.equal(run({ proc: api, record }).decision.kind, 'wait');
  assert.equal((run({ proc: api, record }).decision as { gate?: string }).gate, 'breaker');
});

test('never started: a first start (no failure recorded) is not gated by backoff or breaker', () => {
  const record: ProcessRecord = { ...failedStartOf(api), breaker: openBreaker(NOW - S), backoff: failures(3, NOW) };
  delete record.lastError;
  delete record.failedManifest;
  assert.deepEqual(run({ proc: api, record }).decision, { kind: 'start', reason: { code: 'NotStarted' }, changes: [], trial: false, automatic: false });
});

test('never started: a manifest edited since the failed start is tried at once, with the edit in the changes', () => {
  const record = failedStartOf(api, { backoff: failures(1, NOW - 100) });
  const fixed: Input = { ...api, command: ['node', 'server.js'] };
  const change = { op: 'replace', pointer: '/spec/exec/command/1', path: 'spec.exec.command[1]', from: 'api.js', to: 'server.js', needsRestart: true };
  assert.deepEqual(run({ proc: fixed, record }).decision, {
    kind: 'start',
    reason: { code: 'NotStarted', lastError: 'spawn node ENOENT' },
    changes: [change],
    trial: false,
    automatic: false,
  });
});

// ---- running -----------------------------------------------------------------------------------

test('running: nothing changed, nothing to do', () => {
  assert.deepEqual(run({ proc: api, record: recordOf(api), observation: running() }), { decision: { kind: 'none', changes: [] } });
});

test('running: a label-only change is an update listing it', () => {
  const record = recordOf(api);
  const relabelled: Input = { ...api, labels: { tier: 'web' } };
  assert.deepEqual(run({ proc: relabelled, record }), {
    decision: {
      kind: 'update',
      changes: [{ op: 'add', pointer: '/metadata/labels/tier', path: 'metadata.labels.tier', to: 'web', needsRestart: false }],
    },
  });
});

test('running: changes to pm bookkeeping (stop, restart policy, dependencies) are updates, not restarts', () => {
  const edits: Input[] = [
    { ...api, stopGraceSeconds: 3 },
    { ...api, policy: 'on-failure' },
    { ...api, backoff: { initialSeconds: 5 } },
    { ...api, circuitBreaker: { maxFailures: 9 } },
    { ...api, strategy: 'script' },
  ];
  for (const edit of edits) {
    const plan = run({ proc: edit, record: recordOf(api) });
    assert.equal(plan.decision.kind, 'update', JSON.stringify(edit));
    assert.ok(plan.decision.changes.length > 0 && plan.decision.changes.every((c) => !c.needsRestart));
  }
});

test('running: an exec change restarts by stop and start, even when the strategy is script', () => {
  for (const strategy of ['restart', 'script'] as const) {
    const before: Input = { ...api, strategy };
    const after: Input = { ...before, command: ['node', 'api.js', '--port', '8081'] };
    assert.deepEqual(run({ proc: after, record: recordOf(before) }), {
      decision: {
        kind: 'restart',
        reason: { code: 'SpecChanged' },
        changes: [
          { op: 'add', pointer: '/spec/exec/command/2', path: 'spec.exec.command[2]', to: '--port', needsRestart: true },
          { op: 'add', pointer: '/spec/exec/command/3', path: 'spec.exec.command[3]', to: '8081', needsRestart: true },
        ],
        strategy: 'restart',
      },
    }, strategy);
  }
});

test('running: an env change is a spec change too, and lists every field that differs', () => {
  const before: Input = { ...api, env: { PORT: '8080' } };
  const after: Input = { ...api, env: { PORT: '8081' }, labels: { v: '2' } };
  const plan = run({ proc: after, record: recordOf(before) });
  assert.equal(plan.decision.kind, 'restart');
  assert.deepEqual(plan.decision.changes.map((c) => [c.path, c.needsRestart]), [
    ['metadata.labels.v', false],
    ['spec.exec.env.PORT', true],
  ]);
});

test('running: a restart request newer than the start restarts with the manifest strategy', () => {
  const requestedAt = iso(T0 + 30 * S);
  for (const strategy of ['restart', 'script'] as const) {
    const proc: Input = { ...api, strategy };
    assert.deepEqual(run({ proc, record: recordOf(proc, { restartRequestedAt: requestedAt }) }), {
      decision: { kind: 'restart', reason: { code: 'RestartRequested', requestedAt }, changes: [], strategy },
    }, strategy);
  }
});

test('running: a restart request already honoured is not honoured again', () => {
  const cases: [string, Partial<ProcessRecord>][] = [
    ['older than the start', { restartRequestedAt: iso(T0 - S) }],
    ['the same instant as the start', { restartRequestedAt: STARTED }],
    // Honoured by the restart script: the instance kept running, restartedAt moved on.
    ['older than the last restart', { restartRequestedAt: iso(T0 + 10 * S), restartedAt: iso(T0 + 11 * S) }],
  ];
  for (const [what, extra] of cases) {
    assert.deepEqual(run({ proc: api, record: recordOf(api, extra) }), { decision: { kind: 'none', changes: [] } }, what);
  }
});

test('running: a spec change and a restart request together restart once, as SpecChanged by stop and start', () => {
  const before: Input = { ...api, strategy: 'script' };
  const after: Input = { ...before, command: ['node', 'api2.js'] };
  const plan = run({ proc: after, record: recordOf(before, { restartRequestedAt: iso(T0 + S) }) });
  assert.equal(plan.decision.kind, 'restart');
  assert.deepEqual(plan.decision.kind === 'restart' && [plan.decision.reason, plan.decision.strategy], [{ code: 'SpecChanged' }, 'restart']);
});

test('running: a restart: true dependency restarted after our start cascades, with our strategy', () => {
  for (const strategy of ['restart', 'script'] as const) {
    const proc: Input = { ...api, strategy, dependsOn: [{ name: 'db', restart: true }] };
    const dependencies = depsOf({ db: { ...up, restartedAt: iso(T0 + 30 * S) } });
    assert.deepEqual(run({ proc, record: recordOf(proc), dependencies }), {
      decision: { kind: 'restart', reason: { code: 'DependencyRestarted', dependency: 'db' }, changes: [], strategy },
    }, strategy);
  }
});

test('running: a dependency restart does not cascade without restart: true', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  const dependencies = depsOf({ db: { ...up, restartedAt: iso(T0 + 30 * S) } });
  assert.deepEqual(run({ proc, record: recordOf(proc), dependencies }), { decision: { kind: 'none', changes: [] } });
});

test('running: a dependency restart older than our last start does not cascade', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db', restart: true }] };
  const cases: [string, string, Partial<ProcessRecord>][] = [
    ['before our start', iso(T0 - S), {}],
    ['at our start', STARTED, {}],
    // We were restarted (by our restart script) after it: already followed.
    ['before our last restart', iso(T0 + 10 * S), { restartedAt: iso(T0 + 20 * S) }],
  ];
  for (const [what, restartedAt, extra] of cases) {
    const plan = run({ proc, record: recordOf(proc, extra), dependencies: depsOf({ db: { ...up, restartedAt } }) });
    assert.deepEqual(plan, { decision: { kind: 'none', changes: [] } }, what);
  }
});

test('running: the first restart: true dependency in declaration order is named', () => {
  const proc: Input = {
    ...api,
    dependsOn: [
      { name: 'zk', restart: false },
      { name: 'queue', restart: true },
      { name: 'db', restart: true },
    ],
  };
  const later = iso(T0 + 30 * S);
  const dependencies = depsOf({ zk: { ...up, restartedAt: later }, queue: { ...up, restartedAt: later }, db: { ...up, restartedAt: later } });
  const plan = run({ proc, record: recordOf(proc), dependencies });
  assert.deepEqual(plan.decision.kind === 'restart' && plan.decision.reason, { code: 'DependencyRestarted', dependency: 'queue' });
});

test('running: every restart waits for unmet dependencies, as a wait for restart', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db', restart: true }, { name: 'cache', condition: 'started' }] };
  const cacheDown = { cache: down };
  const cases: [string, Input, ProcessRecord, ReadonlyMap<string, DependencyView>][] = [
    ['spec change', { ...proc, command: ['node', 'api2.js'] }, recordOf(proc), depsOf({ db: up, ...cacheDown })],
    ['restart request', proc, recordOf(proc, { restartRequestedAt: iso(T0 + S) }), depsOf({ db: up, ...cacheDown })],
    // The usual cascade: the dependency restarted and is not ready again yet.
    ['cascade', proc, recordOf(proc), depsOf({ db: { ...up, ready: false, restartedAt: iso(T0 + S) }, cache: up })],
  ];
  for (const [what, desired, record, dependencies] of cases) {
    const plan = run({ proc: desired, record, dependencies });
    assert.equal(plan.decision.kind, 'wait', what);
    assert.deepEqual(plan.decision.kind === 'wait' && plan.decision.gate === 'dependencies' && [plan.decision.for, plan.decision.unmet], [
      'restart',
      what === 'cascade' ? [{ name: 'db', condition: 'ready' }] : [{ name: 'cache', condition: 'started' }],
    ], what);
    assert.deepEqual(plan.decision.changes, what === 'spec change' ? [{ op: 'replace', pointer: '/spec/exec/command/1', path: 'spec.exec.command[1]', from: 'api.js', to: 'api2.js', needsRestart: true }] : [], what);
  }
});

test('running: unmet dependencies alone never stop a running process', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  assert.deepEqual(run({ proc, record: recordOf(proc), dependencies: depsOf({ db: down }) }), { decision: { kind: 'none', changes: [] } });
  assert.deepEqual(run({ proc, record: recordOf(proc), dependencies: new Map() }), { decision: { kind: 'none', changes: [] } });
});

test('running: asked-for restarts are gated by neither backoff nor breaker', () => {
  const plan = run({ proc: api, record: recordOf(api, { ...CRASHING, restartRequestedAt: iso(T0 + S) }) });
  assert.deepEqual(plan, { decision: { kind: 'restart', reason: { code: 'RestartRequested', requestedAt: iso(T0 + S) }, changes: [], strategy: 'restart' } });
});

// ---- paused ------------------------------------------------------------------------------------

const PAUSED: Partial<ProcessRecord> = { paused: { at: iso(T0 + S), by: 'alice' } };

test('paused: a running process is stopped; a stopped one is left alone', () => {
  assert.deepEqual(run({ proc: api, record: recordOf(api, PAUSED), observation: running() }), { decision: { kind: 'stop', changes: [] } });
  assert.deepEqual(run({ proc: api, record: recordOf(api, PAUSED), observation: killed('SIGTERM') }), { decision: { kind: 'none', changes: [] } });
  assert.deepEqual(run({ proc: api, record: failedStartOf(api, PAUSED), observation: missing }), { decision: { kind: 'none', changes: [] } });
});

test('paused: wins over a spec change, a restart request, a cascade and the restart policy', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db', restart: true }] };
  const edited: Input = { ...proc, command: ['node', 'api2.js'] };
  const record = recordOf(proc, { ...PAUSED, restartRequestedAt: iso(T0 + 2 * S) });
  const dependencies = depsOf({ db: { ...up, restartedAt: iso(T0 + 3 * S) } });
  const change = { op: 'replace', pointer: '/spec/exec/command/1', path: 'spec.exec.command[1]', from: 'api.js', to: 'api2.js', needsRestart: true };
  assert.deepEqual(run({ proc: edited, record, dependencies, observation: running() }), { decision: { kind: 'stop', changes: [change] } });
  // Exited with policy always, a spec change and a request: still held stopped.
  assert.deepEqual(run({ proc: edited, record, dependencies, observation: exited(1) }), { decision: { kind: 'none', changes: [change] } });
});

test('paused: a quiet change while held stopped is reported in the changes of a none', () => {
  const record = recordOf(api, PAUSED);
  assert.deepEqual(run({ proc: { ...api, labels: { tier: 'web' } }, record, observation: exited(0) }), {
    decision: { kind: 'none', changes: [{ op: 'add', pointer: '/metadata/labels/tier', path: 'metadata.labels.tier', to: 'web', needsRestart: false }] },
  });
});

// ---- exited ------------------------------------------------------------------------------------

test('exited: the restart policy decides, on the exit as observed', () => {
  const cases: ['always' | 'on-failure' | 'never', Observation, boolean][] = [
    ['always', exited(0), true],
    ['always', exited(1), true],
    ['always', killed('SIGKILL'), true],
    ['always', exited(null, false), true],
    ['on-failure', exited(0), false],
    ['on-failure', exited(1), true],
    ['on-failure', exited(137), true],
    ['on-failure', killed('SIGSEGV'), true],
    // A service that ended while no pm watched (adopted after a restart of pm): a service is
    // meant to run, so it counts as a failure.
    ['on-failure', exited(null, false), true],
    ['never', exited(0), false],
    ['never', exited(1), false],
    ['never', killed('SIGKILL'), false],
  ];
  for (const [policy, observation, restarts] of cases) {
    const proc: Input = { ...api, policy };
    const plan = run({ proc, record: recordOf(proc), observation });
    const what = `${policy} after ${JSON.stringify(observation)}`;
    if (!restarts) {
      assert.deepEqual(plan, { decision: { kind: 'none', changes: [] } }, what);
      continue;
    }
    const exit = observation.state === 'exited' ? observation.exit : undefined;
    assert.deepEqual(plan, {
      decision: { kind: 'start', reason: { code: 'Exited', exit, policy }, changes: [], trial: false, automatic: true },
    }, what);
  }
});

test('exited: with no observed exit the recorded one is used, or an unknown one', () => {
  const proc: Input = { ...api, policy: 'on-failure' };
  const lastExit = exitOf(3);
  assert.deepEqual(run({ proc, record: recordOf(proc, { lastExit }), observation: missing }).decision, {
    kind: 'start',
    reason: { code: 'Exited', exit: lastExit, policy: 'on-failure' },
    changes: [],
    trial: false,
    automatic: true,
  });
  // The observed exit wins over the recorded one.
  assert.equal(run({ proc, record: recordOf(proc, { lastExit }), observation: exited(0) }).decision.kind, 'none');
  const always: Input = { ...api, policy: 'always' };
  assert.deepEqual(run({ proc: always, record: recordOf(always), observation: missing }).decision, {
    kind: 'start',
    reason: { code: 'Exited', exit: { code: null, signal: null, at: 0, known: false }, policy: 'always' },
    changes: [],
    trial: false,
    automatic: true,
  });
});

test('exited: a job whose end nobody witnessed is re-run when something waits for its completion', () => {
  const migrate: Input = { name: 'migrate', command: ['node', 'migrate.js'], type: 'oneshot', policy: 'on-failure' };
  assert.deepEqual(run({ proc: migrate, record: recordOf(migrate), observation: exited(null, false), awaitedBy: 'api' }), {
    decision: { kind: 'start', reason: { code: 'CompletionUnknown', dependent: 'api' }, changes: [], trial: false, automatic: true },
  });
  const left: [string, Case][] = [
    ['nothing waits for it', { proc: migrate, record: recordOf(migrate), observation: exited(null, false) }],
    ['its success was witnessed', { proc: migrate, record: recordOf(migrate), observation: exited(0), awaitedBy: 'api' }],
    ['policy never', { proc: { ...migrate, policy: 'never' }, record: recordOf({ ...migrate, policy: 'never' }), observation: exited(null, false), awaitedBy: 'api' }],
  ];
  for (const [what, c] of left) assert.deepEqual(run(c), { decision: { kind: 'none', changes: [] } }, what);
});

test('exited: a job re-run for its dependent is an automatic start, gated by backoff', () => {
  const migrate: Input = { name: 'migrate', command: ['node', 'migrate.js'], type: 'oneshot', policy: 'on-failure' };
  const record = recordOf(migrate, { backoff: failures(1, NOW - 200) });
  assert.deepEqual(run({ proc: migrate, record, observation: exited(null, false), awaitedBy: 'api' }), {
    decision: { kind: 'wait', gate: 'backoff', retryInMs: 800, changes: [] },
  });
});

test('exited: a quiet change with nothing to restart is an update', () => {
  const proc: Input = { ...api, policy: 'never' };
  const plan = run({ proc: { ...proc, labels: { tier: 'web' } }, record: recordOf(proc), observation: exited(1) });
  assert.equal(plan.decision.kind, 'update');
  assert.deepEqual(plan.decision.changes.map((c) => c.path), ['metadata.labels.tier']);
});

test('exited: an automatic restart waits for unmet dependencies, as a wait for start', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  assert.deepEqual(run({ proc, record: recordOf(proc, CRASHING), observation: exited(1), dependencies: depsOf({ db: down }) }), {
    decision: { kind: 'wait', gate: 'dependencies', unmet: [{ name: 'db', condition: 'ready' }], for: 'start', changes: [] },
  });
});

test('exited: a spec change starts at once, past a pending backoff and an open breaker, whatever the policy', () => {
  for (const policy of ['always', 'on-failure', 'never'] as const) {
    const before: Input = { ...api, policy };
    const after: Input = { ...before, command: ['node', 'api2.js'] };
    assert.deepEqual(run({ proc: after, record: recordOf(before, CRASHING), observation: exited(1) }), {
      decision: {
        kind: 'start',
        reason: { code: 'SpecChanged' },
        changes: [{ op: 'replace', pointer: '/spec/exec/command/1', path: 'spec.exec.command[1]', from: 'api.js', to: 'api2.js', needsRestart: true }],
        trial: false,
        automatic: false,
      },
    }, policy);
  }
});

test('exited: a spec change still waits for unmet dependencies', () => {
  const before: Input = { ...api, dependsOn: [{ name: 'db' }] };
  const plan = run({ proc: { ...before, env: { A: '1' } }, record: recordOf(before), observation: exited(0), dependencies: depsOf({ db: down }) });
  assert.equal(plan.decision.kind === 'wait' && plan.decision.gate === 'dependencies' && plan.decision.for, 'start');
  assert.deepEqual(plan.decision.changes.map((c) => c.path), ['spec.exec.env.A']);
});

test('exited: a restart request starts at once, past backoff, breaker and policy never', () => {
  const requestedAt = iso(T0 + 30 * S);
  const proc: Input = { ...api, policy: 'never' };
  assert.deepEqual(run({ proc, record: recordOf(proc, { ...CRASHING, restartRequestedAt: requestedAt }), observation: exited(0) }), {
    decision: { kind: 'start', reason: { code: 'RestartRequested', requestedAt }, changes: [], trial: false, automatic: false },
  });
  // An old request falls through to the policy.
  assert.deepEqual(run({ proc, record: recordOf(proc, { restartRequestedAt: iso(T0 - S) }), observation: exited(0) }), {
    decision: { kind: 'none', changes: [] },
  });
});

test(
  'exited: a requested restart whose start then failed waits out the backoff like any failed start',
  () => {
    const requestedAt = iso(T0 + 30 * S);
    const failedAt = T0 + 31 * S;
    // pm restart stopped the instance (SIGTERM); the new start failed (say, preStart exited 1):
    // handle and startedAt are the old instance's, lastError and the backoff are the new failure's.
    const record = recordOf(api, { restartRequestedAt: requestedAt, lastError: 'preStart exited with code 1', failedManifest: manifestDigest(manifestOf(api)), lastExit: exitOf(null, true, 'SIGTERM'), backoff: failures(1, failedAt) });
    assert.deepEqual(run({ proc: api, record, observation: killed('SIGTERM'), now: failedAt + 100 }).decision, {
      kind: 'wait',
      gate: 'backoff',
      retryInMs: 900,
      changes: [],
    });
  },
);

test(
  'exited: a new spec whose start failed waits out the backoff like any failed start; a further edit is tried at once',
  () => {
    const failedAt = NOW - 100;
    const broken: Input = { ...api, command: ['nodee', 'api.js'] };
    const record = recordOf(api, { lastError: 'spawn node ENOENT', failedManifest: manifestDigest(manifestOf(broken)), lastExit: exitOf(null, true, 'SIGTERM'), backoff: failures(4, failedAt) });
    const fixed: Input = { ...api, command: ['node', 'api2.js'] };
    assert.equal(run({ proc: fixed, record, observation: killed('SIGTERM') }).decision.kind, 'start');
    assert.deepEqual(run({ proc: broken, record, observation: killed('SIGTERM') }).decision, {
      kind: 'wait',
      gate: 'backoff',
      retryInMs: 7900,
      changes: [{ op: 'replace', pointer: '/spec/exec/command/0', path: 'spec.exec.command[0]', from: 'node', to: 'nodee', needsRestart: true }],
    });
  },
);

// ---- circuit breaker ---------------------------------------------------------------------------

test('breaker: open, cooldown not over: wait for the rest of the cooldown, nothing to store', () => {
  const openedAt = NOW - 100 * S;
  const plan = run({ proc: api, record: recordOf(api, { breaker: openBreaker(openedAt, 300 * S), lastExit: exitOf(1) }), observation: exited(1) });
  assert.deepEqual(plan, { decision: { kind: 'wait', gate: 'breaker', retryInMs: openedAt + 300 * S - NOW, changes: [] } });
  assert.equal(plan.decision.kind === 'wait' && plan.decision.gate === 'breaker' && plan.decision.retryInMs, 200 * S);
});

test('breaker: cooldown over: the trial start, with the open → half-open transition to store', () => {
  const openedAt = T0;
  const breaker = openBreaker(openedAt, 30 * S);
  for (const now of [openedAt + 30 * S, openedAt + 45 * S]) {
    const plan = run({ proc: api, record: recordOf(api, { breaker }), observation: exited(1), now });
    assert.deepEqual(plan, {
      decision: { kind: 'start', reason: { code: 'Exited', exit: exitOf(1), policy: 'always' }, changes: [], trial: true, automatic: true },
      breaker: {
        state: { phase: 'half-open', failures: breaker.failures, openedAt, cooldownMs: 30 * S },
        transition: { from: 'open', to: 'half-open', reason: 'CooldownElapsed', at: now, failures: 5 },
      },
    }, `now = openedAt + ${(now - openedAt) / S} s`);
  }
  // One millisecond earlier it is still open.
  const early = run({ proc: api, record: recordOf(api, { breaker }), observation: exited(1), now: openedAt + 30 * S - 1 });
  assert.deepEqual(early, { decision: { kind: 'wait', gate: 'breaker', retryInMs: 1, changes: [] } });
});

test('breaker: cooldown over but backoff pending: wait for the backoff, and still store half-open', () => {
  const breaker = openBreaker(NOW - 400 * S);
  const plan = run({ proc: api, record: recordOf(api, { breaker, backoff: failures(3, NOW - S) }), observation: exited(1) });
  assert.deepEqual(plan.decision, { kind: 'wait', gate: 'backoff', retryInMs: 3 * S, changes: [] });
  assert.deepEqual(plan.breaker?.transition && [plan.breaker.transition.from, plan.breaker.transition.to], ['open', 'half-open']);
  assert.equal(plan.breaker?.state.phase, 'half-open');
});

test('breaker: half-open with the trial already started: wait for it, nothing to store', () => {
  const breaker: BreakerState = { phase: 'half-open', failures: [NOW - 400 * S], openedAt: NOW - 400 * S, cooldownMs: 300 * S, trialStartedAt: NOW - 10 * S };
  assert.deepEqual(run({ proc: api, record: recordOf(api, { breaker }), observation: exited(1) }), {
    decision: { kind: 'wait', gate: 'trial-running', changes: [] },
  });
});

test('breaker: half-open with no trial taken yet: the trial start, no transition to store', () => {
  const breaker: BreakerState = { phase: 'half-open', failures: [], openedAt: NOW - 400 * S, cooldownMs: 300 * S };
  assert.deepEqual(run({ proc: api, record: recordOf(api, { breaker }), observation: exited(1) }), {
    decision: { kind: 'start', reason: { code: 'Exited', exit: exitOf(1), policy: 'always' }, changes: [], trial: true, automatic: true },
  });
});

test('breaker: closed with failures under the limit does not hold a start', () => {
  const breaker: BreakerState = { phase: 'closed', failures: [NOW - 3 * S, NOW - 2 * S] };
  assert.deepEqual(run({ proc: api, record: recordOf(api, { breaker }), observation: exited(1) }).decision, {
    kind: 'start',
    reason: { code: 'Exited', exit: exitOf(1), policy: 'always' },
    changes: [],
    trial: false,
    automatic: true,
  });
});

test('breaker: disabled in the manifest, an open or half-open state lets the start through and is closed (Disabled)', () => {
  const proc: Input = { ...api, circuitBreaker: { enabled: false } };
  const states: BreakerState[] = [openBreaker(NOW - S), { phase: 'half-open', failures: [NOW - 2 * S], openedAt: NOW - 400 * S, cooldownMs: 300 * S, trialStartedAt: NOW - S }];
  for (const breaker of states) {
    assert.deepEqual(run({ proc, record: recordOf(proc, { breaker }), observation: exited(1) }), {
      decision: { kind: 'start', reason: { code: 'Exited', exit: exitOf(1), policy: 'always' }, changes: [], trial: false, automatic: true },
      breaker: {
        state: { phase: 'closed', failures: breaker.failures },
        transition: { from: breaker.phase, to: 'closed', reason: 'Disabled', at: NOW, failures: breaker.failures.length },
      },
    }, breaker.phase);
  }
});

test('breaker: the gates run dependencies, then breaker, then backoff', () => {
  const proc: Input = { ...api, dependsOn: [{ name: 'db' }] };
  const record = recordOf(proc, CRASHING);
  const kinds = (dependencies: ReadonlyMap<string, DependencyView>, r: ProcessRecord): string => {
    const d = run({ proc, record: r, observation: exited(1), dependencies }).decision;
    return d.kind === 'wait' ? d.gate : d.kind;
  };
  assert.equal(kinds(depsOf({ db: down }), record), 'dependencies');
  assert.equal(kinds(depsOf({ db: up }), record), 'breaker');
  assert.equal(kinds(depsOf({ db: up }), { ...record, breaker: { phase: 'closed', failures: [] } }), 'backoff');
  assert.equal(kinds(depsOf({ db: up }), { ...record, breaker: { phase: 'closed', failures: [] }, backoff: failures(3, NOW - 10 * S) }), 'start');
});

// ---- backoff -----------------------------------------------------------------------------------

test('backoff: 1 s, 2 s, 4 s after the last failure with initialSeconds 1, factor 2 and a zero jitter draw', () => {
  const proc: Input = { ...api, backoff: { initialSeconds: 1, factor: 2, maxSeconds: 300, jitter: 0.2 } };
  const lastFailureAt = NOW - 20 * S;
  const waits = [1, 2, 3].map((n) => {
    const d = run({ proc, record: recordOf(proc, { backoff: failures(n, lastFailureAt) }), observation: exited(1), now: lastFailureAt }).decision;
    return d.kind === 'wait' && d.gate === 'backoff' ? d.retryInMs : d.kind;
  });
  assert.deepEqual(waits, [1000, 2000, 4000]);
  // Measured from the failure, not from now; and it starts once that much time has passed.
  const record = recordOf(proc, { backoff: failures(3, lastFailureAt) });
  assert.deepEqual(run({ proc, record, observation: exited(1), now: lastFailureAt + 2500 }).decision, { kind: 'wait', gate: 'backoff', retryInMs: 1500, changes: [] });
  assert.equal(run({ proc, record, observation: exited(1), now: lastFailureAt + 4000 }).decision.kind, 'start');
});

test('backoff: the stored jitter draw stretches the wait', () => {
  const proc: Input = { ...api, backoff: { initialSeconds: 1, factor: 2, jitter: 0.2 } };
  const d = run({ proc, record: recordOf(proc, { backoff: failures(2, NOW, 0.5) }), observation: exited(1) }).decision;
  assert.deepEqual(d, { kind: 'wait', gate: 'backoff', retryInMs: 2200, changes: [] });
});

test('backoff: initialSeconds 0 starts at once, however many failures', () => {
  const proc: Input = { ...api, backoff: { initialSeconds: 0 }, circuitBreaker: { maxFailures: 100 } };
  for (const n of [1, 5, 50]) {
    assert.equal(run({ proc, record: recordOf(proc, { backoff: failures(n, NOW) }), observation: exited(1) }).decision.kind, 'start', `${n} failures`);
  }
  assert.equal(run({ proc, record: failedStartOf(proc, { backoff: failures(9, NOW) }) }).decision.kind, 'start');
});

test('backoff: no failures counted, no wait', () => {
  assert.equal(run({ proc: api, record: recordOf(api, { backoff: { failures: 0 } }), observation: exited(1) }).decision.kind, 'start');
});

// ---- purity ------------------------------------------------------------------------------------

/** Freezes objects all the way down; a Map's entries are frozen and its mutators throw. */
function deepFreeze<T>(value: T): T {
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k);
      deepFreeze(v);
    }
    for (const method of ['set', 'delete', 'clear']) {
      Object.defineProperty(value, method, {
        value: () => {
          throw new TypeError(`frozen map: ${method}`);
        },
      });
    }
    return Object.freeze(value);
  }
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

const scenarios: [string, Case][] = [
  ['never started', { proc: { ...api, dependsOn: [{ name: 'db' }] }, dependencies: depsOf({ db: up }) }],
  ['failed start in backoff', { proc: api, record: failedStartOf(api, { backoff: failures(2, NOW) }) }],
  ['running, label change', { proc: { ...api, labels: { a: 'b' } }, record: recordOf(api) }],
  ['running, spec change', { proc: { ...api, command: ['x'] }, record: recordOf(api) }],
  ['running, cascade', { proc: { ...api, dependsOn: [{ name: 'db', restart: true }] }, record: recordOf({ ...api, dependsOn: [{ name: 'db', restart: true }] }), dependencies: depsOf({ db: { ...up, restartedAt: iso(NOW) } }) }],
  ['running, restart waits for dependencies', { proc: { ...api, dependsOn: [{ name: 'db' }] }, record: recordOf({ ...api, dependsOn: [{ name: 'db' }] }, { restartRequestedAt: iso(NOW) }), dependencies: depsOf({ db: down }) }],
  ['paused', { proc: api, record: recordOf(api, PAUSED) }],
  ['exited, breaker open', { proc: api, record: recordOf(api, CRASHING), observation: exited(1) }],
  ['exited, breaker cooldown over', { proc: api, record: recordOf(api, { breaker: openBreaker(NOW - 400 * S) }), observation: exited(1) }],
  ['exited, breaker disabled', { proc: { ...api, circuitBreaker: { enabled: false } }, record: recordOf(api, { breaker: openBreaker(NOW) }), observation: exited(1) }],
  ['exited, completion unknown', { proc: { ...api, type: 'oneshot', policy: 'on-failure' }, record: recordOf({ ...api, type: 'oneshot', policy: 'on-failure' }), observation: exited(null, false), awaitedBy: 'web' }],
];

test('purity: the same input gives deep-equal output, every branch', () => {
  for (const [what, c] of scenarios) {
    const input = inputOf(c);
    assert.deepEqual(supervise(input), supervise(input), what);
    // A separately built, equal input gives the same answer too: nothing is remembered between calls.
    assert.deepEqual(supervise(inputOf(c)), supervise(input), what);
  }
});

test('purity: the input is not mutated (deep-frozen input, same answer, same contents)', () => {
  for (const [what, c] of scenarios) {
    const before = supervise(inputOf(c));
    const input = inputOf(c);
    const snapshot = structuredClone({ ...input, dependencies: [...input.dependencies] });
    const after = supervise(deepFreeze(input));
    assert.deepEqual(after, before, what);
    assert.deepEqual({ ...input, dependencies: [...input.dependencies] }, snapshot, what);
  }
});

test('purity: the returned breaker state is a new object, not the record\'s', () => {
  const record = recordOf(api, { breaker: openBreaker(NOW - 400 * S) });
  const plan = supervise(deepFreeze(inputOf({ proc: api, record, observation: exited(1) })));
  assert.ok(plan.breaker);
  assert.notEqual(plan.breaker.state, record.breaker);
  assert.equal(record.breaker?.phase, 'open');
});
