// The daemon's metrics, read back from the Prometheus text: per-process series follow api.list()
// at every scrape (and vanish with their process), daemon counters and the histogram count;
// prom-client itself is loaded at the first scrape, with nothing counted before it lost.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { register as globalRegistry } from 'prom-client';
import type { ProcessStatus } from '../../src/daemon/api.js';
import { DaemonMetrics } from '../../src/server/metrics.js';

function status(name: string, extra: Partial<ProcessStatus> = {}): ProcessStatus {
  return {
    name,
    phase: 'Ready',
    detail: '',
    up: true,
    ready: true,
    restarts: 0,
    backoff: { failures: 0, delayMs: 0 },
    breaker: { phase: 'closed', failures: 0 },
    paused: false,
    driver: 'exec',
    command: ['/bin/web', '--port=8080'],
    labels: {},
    source: '/m/x.yaml',
    ...extra,
  };
}

function setup(initial: ProcessStatus[]) {
  const state = { processes: initial, depth: 0, listCalls: 0 };
  const metrics = new DaemonMetrics({
    list: () => {
      state.listCalls++;
      return state.processes;
    },
    queueDepth: () => state.depth,
  });
  return { state, metrics };
}

/** Every sample of the exposition, keyed `name{labels}` exactly as written. */
async function scrape(metrics: DaemonMetrics): Promise<{ text: string; samples: Map<string, number> }> {
  const { contentType, body } = await metrics.render();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { text: body, samples };
}

test('per-process series come from api.list() at scrape time, with the kube-state-metrics state pattern', async () => {
  const { state, metrics } = setup([
    status('web', { phase: 'BackOff', up: false, ready: false, restarts: 3, backoff: { failures: 3, delayMs: 4000 } }),
    status('db', { breaker: { phase: 'half-open', failures: 5 } }),
  ]);
  state.depth = 7;
  const { text, samples } = await scrape(metrics);
  assert.equal(state.listCalls, 1, 'one list() per scrape, shared by every per-process metric');
  const expected: [string, number][] = [
    ['pm_process_up{process="web"}', 0],
    ['pm_process_up{process="db"}', 1],
    ['pm_process_ready{process="web"}', 0],
    ['pm_process_ready{process="db"}', 1],
    ['pm_process_state{process="web",state="BackOff"}', 1],
    ['pm_process_state{process="web",state="Running"}', 0],
    ['pm_process_state{process="web",state="Ready"}', 0],
    ['pm_process_state{process="db",state="Ready"}', 1],
    ['pm_process_breaker_state{process="web",state="closed"}', 1],
    ['pm_process_breaker_state{process="web",state="open"}', 0],
    ['pm_process_breaker_state{process="db",state="half-open"}', 1],
    ['pm_process_breaker_state{process="db",state="closed"}', 0],
    ['pm_process_backoff_seconds{process="web"}', 4],
    ['pm_process_backoff_seconds{process="db"}', 0],
    ['pm_process_restarts_total{process="web"}', 3],
    ['pm_process_restarts_total{process="db"}', 0],
    ['pm_queue_depth', 7],
  ];
  for (const [series, value] of expected) assert.equal(samples.get(series), value, series);
  const states = [...samples.keys()].filter((k) => k.startsWith('pm_process_state{process="web"'));
  assert.equal(states.length, 11, 'one series per phase');
  assert.equal([...samples.entries()].filter(([k, v]) => k.startsWith('pm_process_state{process="web"') && v === 1).length, 1, 'exactly one phase is 1');
  assert.match(text, /^# TYPE pm_process_restarts_total counter$/m);
  assert.match(text, /^# TYPE pm_process_state gauge$/m);
});

test('a process that disappears loses its series; values follow the latest list', async () => {
  const { state, metrics } = setup([status('web', { restarts: 1 }), status('db')]);
  await scrape(metrics);
  state.processes = [status('db', { restarts: 2, phase: 'Stopping', up: false })];
  const { text, samples } = await scrape(metrics);
  assert.doesNotMatch(text, /process="web"/);
  assert.equal(samples.get('pm_process_restarts_total{process="db"}'), 2);
  assert.equal(samples.get('pm_process_state{process="db",state="Stopping"}'), 1);
  assert.equal(samples.get('pm_process_state{process="db",state="Ready"}'), 0);
  assert.equal(samples.get('pm_process_up{process="db"}'), 0);
});

test('daemon counters and the reconcile histogram; every known label set starts at 0', async () => {
  const { metrics } = setup([]);
  const before = (await scrape(metrics)).samples;
  for (const result of ['ok', 'error', 'requeue']) assert.equal(before.get(`pm_reconcile_duration_seconds_count{result="${result}"}`), 0, result);
  for (const result of ['ok', 'failed', 'skipped']) assert.equal(before.get(`pm_actions_total{kind="restart",result="${result}"}`), 0, result);
  assert.equal(before.get('pm_manifest_reloads_total{result="accepted"}'), 0);
  assert.equal(before.get('pm_manifest_reloads_total{result="rejected"}'), 0);

  metrics.observeReconcile(0.02, 'ok');
  metrics.observeReconcile(2, 'ok');
  metrics.observeReconcile(0.5, 'error');
  metrics.countAction('start', 'ok');
  metrics.countAction('start', 'ok');
  metrics.countAction('start', 'failed');
  metrics.countAction('script', 'skipped');
  metrics.countManifestLoad(true);
  metrics.countManifestLoad(false);
  metrics.countManifestLoad(false);
  const { text, samples } = await scrape(metrics);
  assert.equal(samples.get('pm_reconcile_duration_seconds_count{result="ok"}'), 2);
  assert.equal(samples.get('pm_reconcile_duration_seconds_sum{result="ok"}'), 2.02);
  assert.equal(samples.get('pm_reconcile_duration_seconds_bucket{le="0.05",result="ok"}'), 1);
  assert.equal(samples.get('pm_reconcile_duration_seconds_bucket{le="+Inf",result="ok"}'), 2);
  assert.equal(samples.get('pm_reconcile_duration_seconds_count{result="error"}'), 1);
  assert.equal(samples.get('pm_reconcile_duration_seconds_count{result="requeue"}'), 0);
  assert.equal(samples.get('pm_actions_total{kind="start",result="ok"}'), 2);
  assert.equal(samples.get('pm_actions_total{kind="start",result="failed"}'), 1);
  assert.equal(samples.get('pm_actions_total{kind="script",result="skipped"}'), 1, 'a kind not known in advance is counted too');
  assert.equal(samples.get('pm_manifest_reloads_total{result="accepted"}'), 1);
  assert.equal(samples.get('pm_manifest_reloads_total{result="rejected"}'), 2);
  assert.match(text, /^# TYPE pm_reconcile_duration_seconds histogram$/m);
  assert.match(text, /^# TYPE pm_actions_total counter$/m);
});

test('own registry: default Node metrics carry the pm_daemon_ prefix, two instances coexist, the global registry stays empty', async () => {
  const a = setup([status('web')]).metrics;
  const b = setup([]).metrics;
  const { samples } = await scrape(a);
  assert.ok(samples.has('pm_daemon_process_resident_memory_bytes') || samples.has('pm_daemon_process_cpu_user_seconds_total'), 'default process metrics');
  assert.ok([...samples.keys()].some((k) => k.startsWith('pm_daemon_nodejs_')), 'default Node.js metrics');
  assert.equal([...(await scrape(b)).samples.keys()].filter((k) => k.includes('process="web"')).length, 0, 'instances do not share series');
  assert.equal(globalRegistry.getSingleMetric('pm_process_up'), undefined);
});

test('concurrent scrapes each see a consistent list', async () => {
  const { state, metrics } = setup([status('web', { restarts: 1 })]);
  const first = metrics.render();
  state.processes = [status('web', { restarts: 2 })];
  const second = metrics.render();
  const [one, two] = await Promise.all([first, second]);
  assert.match(one.body, /^pm_process_restarts_total\{process="web"\} 1$/m);
  assert.match(two.body, /^pm_process_restarts_total\{process="web"\} 2$/m);
});

test('prom-client is loaded at the first scrape, not before; what was counted before it is reported', async () => {
  // A process of its own: this one has loaded prom-client already (the import above). prom-client
  // is CommonJS, so whatever loads it, import included, puts its files in require.cache.
  const script = `
    import { createRequire } from 'node:module';
    const cache = createRequire(import.meta.url).cache;
    const promClientFiles = () => Object.keys(cache).filter((file) => file.includes('/node_modules/prom-client/')).length;
    const { DaemonMetrics } = await import(${JSON.stringify(new URL('../../src/server/metrics.ts', import.meta.url).href)});
    const metrics = new DaemonMetrics({ list: () => [], queueDepth: () => 0 });
    metrics.watchDrivers(() => [{ driver: 'exec', up: true }]);
    metrics.observeReconcile(0.002, 'ok');
    metrics.countAction('start', 'ok');
    metrics.countManifestLoad(true);
    const before = promClientFiles();
    const [{ body }] = await Promise.all([metrics.render(), metrics.render()]);
    console.log(JSON.stringify({ before, after: promClientFiles(), body }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 20_000 });
  const { before, after, body } = JSON.parse(stdout) as { before: number; after: number; body: string };
  assert.equal(before, 0, 'no prom-client module before the first render()');
  assert.ok(after > 0, 'loaded by render(), so the check above can see it');
  assert.match(body, /^pm_reconcile_duration_seconds_count\{result="ok"\} 1$/m);
  assert.match(body, /^pm_reconcile_duration_seconds_bucket\{le="0\.005",result="ok"\} 1$/m);
  assert.match(body, /^pm_reconcile_duration_seconds_bucket\{le="0\.001",result="ok"\} 0$/m);
  assert.match(body, /^pm_actions_total\{kind="start",result="ok"\} 1$/m);
  assert.match(body, /^pm_manifest_reloads_total\{result="accepted"\} 1$/m);
  assert.match(body, /^pm_driver_up\{driver="exec"\} 1$/m, 'a gauge asked for before the load is defined at it');
  assert.match(body, /^pm_daemon_process_cpu_user_seconds_total /m, "Node's default metrics start with the registry");
});

test('a gauge asked for after the first scrape is exposed from the next one', async () => {
  const { metrics } = setup([]);
  assert.doesNotMatch((await scrape(metrics)).text, /pm_database_up/);
  metrics.watchDatabase(() => true);
  assert.equal((await scrape(metrics)).samples.get('pm_database_up'), 1);
});

test('histogram buckets: a value on a bound is in it, one above the last bound only in +Inf; a non-finite value is refused', async () => {
  const { metrics } = setup([]);
  metrics.observeReconcile(0.001, 'requeue');
  metrics.observeReconcile(100, 'requeue');
  assert.throws(() => metrics.observeReconcile(Number.NaN, 'requeue'), TypeError);
  const { samples } = await scrape(metrics);
  const bucket = (le: string): number | undefined => samples.get(`pm_reconcile_duration_seconds_bucket{le="${le}",result="requeue"}`);
  assert.equal(bucket('0.001'), 1);
  assert.equal(bucket('60'), 1);
  assert.equal(bucket('+Inf'), 2);
  assert.equal(samples.get('pm_reconcile_duration_seconds_sum{result="requeue"}'), 100.001);
  assert.equal(samples.get('pm_reconcile_duration_seconds_count{result="requeue"}'), 2);
});
