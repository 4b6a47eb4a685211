// Instance: what the daemon learns about one running instance — its exit, from the real ExecDriver,
// and its readiness, startup and liveness, from real HTTP probes against a node child that answers
// what the test tells it to. Every wait polls (waitFor); nothing asserts how long anything took.
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { isExecHandle, type ExitStatus, type ProcessHandle } from '../../src/drivers/driver.js';
import { ExecDriver } from '../../src/drivers/exec/index.js';
import { Instance, type InstanceListener } from '../../src/daemon/instance.js';
import type { DesiredProcess, Probe, Probes } from '../../src/manifest/types.js';
import { manifest } from '../support/manifests.js';
import { killGroup } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor, waitForValue } from '../support/wait.js';

/**
 * An HTTP server on a free port: it writes the port to ./port, answers each path with the status
 * ./answers.json gives it — a number, or a list used in order whose last entry then repeats; 200
 * when the path is not named — and logs "PATH STATUS" per request to ./requests.log.
 */
const SERVER = `
const http = require('http');
const fs = require('fs');
const answers = () => { try { return JSON.parse(fs.readFileSync('answers.json', 'utf8')); } catch { return {}; } };
const seen = {};
const server = http.createServer((req, res) => {
  const n = (seen[req.url] = (seen[req.url] ?? -1) + 1);
  const answer = answers()[req.url] ?? 200;
  const status = Array.isArray(answer) ? answer[Math.min(n, answer.length - 1)] : answer;
  fs.appendFileSync('requests.log', req.url + ' ' + status + '\\n');
  res.writeHead(status);
  res.end();
});
server.listen(0, '127.0.0.1', () => {
  fs.writeFileSync('port.tmp', String(server.address().port));
  fs.renameSync('port.tmp', 'port');
});
`;

/** Runs until ./exit names an exit code, then exits with it. */
const EXIT_ON_FILE = `
const fs = require('fs');
setInterval(() => { if (fs.existsSync('exit')) process.exit(Number(fs.readFileSync('exit', 'utf8'))); }, 10);
`;

/** Per path: a status, or statuses in order (the last repeats). */
type Answers = Record<string, number | number[]>;

type Report =
  | { kind: 'exited'; exit: ExitStatus }
  | { kind: 'readiness'; ready: boolean; detail: string }
  | { kind: 'unhealthy'; probe: 'startup' | 'liveness'; detail: string }
  | { kind: 'note'; detail: string };

/** Records every listener call, in order. */
class Reports implements InstanceListener {
  readonly all: Report[] = [];
  exited(exit: ExitStatus): void {
    this.all.push({ kind: 'exited', exit });
  }
  readiness(ready: boolean, detail: string): void {
    this.all.push({ kind: 'readiness', ready, detail });
  }
  unhealthy(probe: 'startup' | 'liveness', detail: string): void {
    this.all.push({ kind: 'unhealthy', probe, detail });
  }
  note(detail: string): void {
    this.all.push({ kind: 'note', detail });
  }
  of<K extends Report['kind']>(kind: K): Extract<Report, { kind: K }>[] {
    return this.all.filter((r): r is Extract<Report, { kind: K }> => r.kind === kind);
  }
  /** The readiness flips, as booleans. */
  readinessFlips(): boolean[] {
    return this.of('readiness').map((r) => r.ready);
  }
}

/** An http probe with the schema's defaults filled in, then `fields` (tests shorten the period). */
function httpProbe(port: number, path: string, fields: Partial<Omit<Probe, 'http' | 'exec' | 'tcp'>> = {}): Probe {
  return {
    http: { port, path, host: '127.0.0.1', scheme: 'http', headers: {} },
    initialDelaySeconds: 0,
    periodSeconds: 10,
    timeoutSeconds: 1,
    successThreshold: 1,
    failureThreshold: 3,
    ...fields,
  };
}

/** Fast enough that a test sees several ticks at once; thresholds make the outcome, not the clock. */
const FAST = { periodSeconds: 0.02 };

interface Started {
  dir: string;
  driver: ExecDriver;
  instance: Instance;
  reports: Reports;
  /** Paths of this server's requests so far, in order, with the status it answered. */
  requests(): Promise<string[]>;
}

interface StartOptions {
  script: string;
  minReadySeconds: number;
  /** Built once the child runs (an HTTP child has told its port by then). */
  probes?: (port: number) => Probes;
  /** What the HTTP child answers from its first request on. */
  answers?: Answers;
  type?: 'oneshot';
  /** Epoch ms the instance started, when not now (an instance the daemon adopted). */
  startedAt?: number;
  hold?: string;
}

/**
 * Starts a node child through the ExecDriver and builds (not watches) its Instance. When the test
 * ends, whatever its outcome, the instance is closed and the child's group killed and reaped before
 * its folder is removed (the HTTP child writes there on every request).
 */
async function startInstance(t: TestContext, options: StartOptions): Promise<Started> {
  const driver = new ExecDriver();
  const started: { handle?: ProcessHandle; instance?: Instance } = {};
  t.after(async () => {
    started.instance?.close();
    if (started.handle && isExecHandle(started.handle)) {
      killGroup(started.handle.pgid);
      await driver.waitExit(started.handle);
    }
  });
  const dir = await tempDir(t);
  if (options.answers) await setAnswers(dir, options.answers);
  const spec = manifest({ name: 'web', command: [process.execPath, '-e', options.script], cwd: dir, ...(options.type && { type: options.type }) });
  const log = join(dir, 'child.log');
  const handle = (started.handle = await driver.start({ name: 'web', manifest: spec, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, logs: { stdout: log, stderr: log } }));

  const port = options.probes ? Number(await waitForValue(() => readFile(join(dir, 'port'), 'utf8').catch(() => undefined), { message: 'the port file' })) : 0;
  spec.spec.minReadySeconds = options.minReadySeconds;
  if (options.probes) spec.spec.probes = options.probes(port);
  const proc: DesiredProcess = { name: 'web', manifest: spec, source: { file: join(dir, 'web.yaml'), line: 1 } };

  const reports = new Reports();
  const now = Date.now();
  const instance = (started.instance = new Instance(proc, handle, options.startedAt ?? now, { env: {} }, driver, reports, now));
  if (options.hold !== undefined) instance.hold(options.hold);
  const requests = async (): Promise<string[]> =>
    (await readFile(join(dir, 'requests.log'), 'utf8').catch(() => '')).split('\n').filter((line) => line !== '');
  return { dir, driver, instance, reports, requests };
}

/** Replaces what the HTTP child answers; atomically, so it never reads half a file. */
/** The PID of an exec run (every instance here is one). */
function execPid(handle: ProcessHandle): number {
  assert.ok(isExecHandle(handle));
  return handle.pid;
}

async function setAnswers(dir: string, answers: Answers): Promise<void> {
  await writeFile(join(dir, 'answers.tmp'), JSON.stringify(answers));
  await rename(join(dir, 'answers.tmp'), join(dir, 'answers.json'));
}

/** Timers that keep the process alive (node counts only referenced ones). */
function liveTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Lets pending promise callbacks and I/O callbacks already due run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('exited: an own child exiting reports its exit code, once, and nothing after it', async (t) => {
  const timersBefore = liveTimers();
  const { dir, instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 30 });
  instance.watch();
  assert.equal(liveTimers(), timersBefore + 1, 'the minReadySeconds timer');

  await writeFile(join(dir, 'exit'), '3');
  await waitFor(() => reports.of('exited').length > 0, { message: 'the exit report' });

  const [report] = reports.of('exited');
  assert.equal(report?.exit.code, 3);
  assert.equal(report?.exit.signal, null);
  assert.equal(report?.exit.known, true, 'this process is the parent: the code is known');
  await settle();
  assert.deepEqual(
    reports.all.map((r) => r.kind),
    ['exited'],
    'never ready (it exited before minReadySeconds), and one exit',
  );
  assert.equal(liveTimers(), timersBefore, 'the exit closed the instance: its timer is gone');
  assert.equal(instance.ready, false);
});

test('exited: a child killed by a signal reports the signal', async (t) => {
  const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0 });
  instance.watch();
  process.kill(execPid(instance.handle), 'SIGTERM');
  await waitFor(() => reports.of('exited').length > 0, { message: 'the exit report' });

  assert.deepEqual(
    reports.of('exited').map((r) => [r.exit.code, r.exit.signal, r.exit.known]),
    [[null, 'SIGTERM', true]],
  );
  assert.deepEqual(reports.readinessFlips(), [true], 'ready at once with minReadySeconds 0; the exit reports no readiness');
});

test('readiness without probes: ready at once when minReadySeconds is 0', async (t) => {
  const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0 });
  instance.watch();

  assert.equal(instance.ready, true, 'reported synchronously by watch()');
  assert.deepEqual(reports.all, [{ kind: 'readiness', ready: true, detail: `pid ${instance.handle.pid}` }]);
});

test('readiness without probes: ready once up minReadySeconds', async (t) => {
  const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0.2 });
  instance.watch();
  assert.equal(instance.ready, false, 'not up long enough yet');
  assert.deepEqual(reports.all, [], 'not ready is the initial state: no report for it');

  await waitFor(() => instance.ready, { message: 'ready' });
  assert.deepEqual(reports.all, [{ kind: 'readiness', ready: true, detail: `pid ${instance.handle.pid}` }]);
});

test('readiness without probes: an instance started minReadySeconds ago (adopted) is ready at once', async (t) => {
  const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 30, startedAt: Date.now() - 60_000 });
  const timersBefore = liveTimers();
  instance.watch();

  assert.equal(instance.ready, true);
  assert.deepEqual(reports.readinessFlips(), [true]);
  assert.equal(liveTimers(), timersBefore, 'no minReadySeconds timer is needed');
});

test('a oneshot instance reports its exit but never readiness', async (t) => {
  const { dir, instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0, type: 'oneshot' });
  instance.watch();
  assert.equal(instance.ready, false);

  await writeFile(join(dir, 'exit'), '0');
  await waitFor(() => reports.of('exited').length > 0, { message: 'the exit report' });
  assert.deepEqual(
    reports.all.map((r) => r.kind),
    ['exited'],
  );
  assert.equal(reports.of('exited')[0]?.exit.code, 0);
});

test('readiness probe: failing, then passing, then failing flips readiness; the failure is noted', async (t) => {
  const { dir, instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    answers: { '/ready': 503 },
    probes: (port) => ({ readiness: httpProbe(port, '/ready', { ...FAST, failureThreshold: 2 }) }),
  });
  instance.watch();
  assert.equal(instance.ready, false, 'readiness starts failed');

  await waitFor(() => reports.of('note').length >= 2, { message: 'two failing readiness notes' });
  assert.equal(instance.ready, false);
  assert.deepEqual(reports.readinessFlips(), []);
  assert.equal(reports.of('note')[0]?.detail, 'readiness: HTTP 503 Service Unavailable (1 failed)');
  assert.equal(reports.of('note')[1]?.detail, 'readiness: HTTP 503 Service Unavailable (2 failed)');

  await setAnswers(dir, { '/ready': 200 });
  await waitFor(() => instance.ready, { message: 'ready' });
  assert.deepEqual(reports.of('readiness'), [{ kind: 'readiness', ready: true, detail: `pid ${instance.handle.pid}` }]);
  assert.ok((await requests()).includes('/ready 200'));

  const notesWhileReady = reports.of('note').length;
  await setAnswers(dir, { '/ready': 500 });
  await waitFor(() => !instance.ready, { message: 'not ready again' });
  assert.deepEqual(reports.of('readiness').slice(1), [{ kind: 'readiness', ready: false, detail: 'readiness probe failing' }]);
  const lastNotes = reports.of('note').slice(notesWhileReady);
  assert.deepEqual(
    lastNotes.map((n) => n.detail),
    ['readiness: HTTP 500 Internal Server Error (2 failed)'],
    'a single failure below failureThreshold changes nothing and is not noted; the one that flips it is',
  );
});

test('readiness probe: ready only once it has passed and the instance is up minReadySeconds', async (t) => {
  const { dir, instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0.2,
    answers: { '/ready': 503 },
    probes: (port) => ({ readiness: httpProbe(port, '/ready', FAST) }),
  });
  instance.watch();
  await setAnswers(dir, { '/ready': 200 });
  await waitFor(() => instance.ready, { message: 'ready' });
  assert.deepEqual(reports.readinessFlips(), [true], 'one flip, whichever of the two came last');
  assert.ok((await requests()).includes('/ready 200'), 'not before the probe passed');
});

test('liveness probe: failing reaches unhealthy(liveness) once, and that probe stops', async (t) => {
  const { instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    answers: { '/live': 500 },
    probes: (port) => ({
      liveness: httpProbe(port, '/live', { ...FAST, failureThreshold: 2 }),
      // Keeps ticking after liveness gave up: something to wait on instead of a sleep.
      readiness: httpProbe(port, '/ready', FAST),
    }),
  });
  instance.watch();

  await waitFor(() => reports.of('unhealthy').length > 0, { message: 'unhealthy' });
  const liveRequests = (await requests()).filter((r) => r.startsWith('/live')).length;
  const readyRequests = (await requests()).filter((r) => r.startsWith('/ready')).length;
  await waitFor(async () => (await requests()).filter((r) => r.startsWith('/ready')).length >= readyRequests + 5, {
    message: 'five more readiness probes',
  });

  assert.deepEqual(reports.of('unhealthy'), [{ kind: 'unhealthy', probe: 'liveness', detail: 'liveness probe failed 2 times: HTTP 500 Internal Server Error' }]);
  assert.equal((await requests()).filter((r) => r.startsWith('/live')).length, liveRequests, 'no liveness probe after it gave up');
  assert.equal(instance.ready, true, 'liveness says nothing about readiness');
  assert.equal(
    reports.of('note').some((n) => n.detail.startsWith('liveness')),
    false,
  );
});

test('liveness probe: failures below failureThreshold, then a success, are no failure', async (t) => {
  const { instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    answers: { '/live': [500, 500, 200, 500, 500, 200] },
    probes: (port) => ({ liveness: httpProbe(port, '/live', { ...FAST, failureThreshold: 3 }) }),
  });
  instance.watch();
  await waitFor(async () => (await requests()).filter((r) => r === '/live 200').length >= 5, { message: 'five passing liveness probes' });

  assert.deepEqual((await requests()).slice(0, 6), ['/live 500', '/live 500', '/live 200', '/live 500', '/live 500', '/live 200']);
  assert.deepEqual(reports.of('unhealthy'), []);
  assert.equal(instance.ready, true);
});

test('startup probe: holds readiness and liveness off until it passes', async (t) => {
  const { dir, instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    answers: { '/startup': 503, '/live': 500 },
    probes: (port) => ({
      startup: httpProbe(port, '/startup', { ...FAST, failureThreshold: 100_000 }),
      readiness: httpProbe(port, '/ready', FAST),
      liveness: httpProbe(port, '/live', { ...FAST, failureThreshold: 1 }),
    }),
  });
  instance.watch();
  assert.equal(instance.ready, false);

  await waitFor(async () => (await requests()).filter((r) => r === '/startup 503').length >= 3, { message: 'three failing startup probes' });
  assert.equal(instance.ready, false);
  assert.deepEqual(reports.readinessFlips(), []);
  assert.deepEqual(reports.of('unhealthy'), [], 'liveness does not run yet (it would fail at once)');
  assert.equal(reports.of('note')[0]?.detail, 'startup: HTTP 503 Service Unavailable');
  assert.deepEqual(
    (await requests()).filter((r) => !r.startsWith('/startup')),
    [],
    'neither readiness nor liveness has probed',
  );

  await setAnswers(dir, { '/live': 500 });
  await waitFor(() => instance.ready, { message: 'ready after startup passed' });
  await waitFor(() => reports.of('unhealthy').length > 0, { message: 'liveness runs now' });
  assert.equal(reports.of('unhealthy')[0]?.probe, 'liveness');

  const log = await requests();
  const lastStartup = log.lastIndexOf('/startup 200');
  assert.ok(lastStartup >= 0);
  assert.equal(log.slice(lastStartup + 1).filter((r) => r.startsWith('/startup')).length, 0, 'a passed startup probe is not run again');
  assert.ok(log.findIndex((r) => r.startsWith('/ready')) > lastStartup, 'readiness only after startup passed');
});

test('startup probe: reaching failureThreshold is unhealthy(startup), once; never ready', async (t) => {
  const { instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    answers: { '/startup': 503 },
    probes: (port) => ({
      startup: httpProbe(port, '/startup', { ...FAST, failureThreshold: 2 }),
      readiness: httpProbe(port, '/ready', FAST),
    }),
  });
  instance.watch();
  await waitFor(() => reports.of('unhealthy').length > 0, { message: 'unhealthy' });

  assert.deepEqual(reports.of('unhealthy'), [{ kind: 'unhealthy', probe: 'startup', detail: 'startup probe failed 2 times: HTTP 503 Service Unavailable' }]);
  assert.deepEqual(
    reports.of('note').map((n) => n.detail),
    ['startup: HTTP 503 Service Unavailable'],
    'the failure before the threshold is noted; the one that reaches it is the unhealthy report',
  );
  assert.equal(instance.ready, false);
  assert.deepEqual(
    (await requests()).filter((r) => r.startsWith('/ready')),
    [],
    'readiness never probed',
  );
});

test('hold: not ready until release(), whatever its probes and minReadySeconds say', async (t) => {
  const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0, hold: 'postStart hook running' });
  instance.watch();
  assert.equal(instance.ready, false);
  assert.deepEqual(reports.all, []);

  instance.release();
  assert.equal(instance.ready, true);
  assert.deepEqual(reports.all, [{ kind: 'readiness', ready: true, detail: `pid ${instance.handle.pid}` }]);
});

test('readyOnceRecorded: not ready until the record write settles, landed or failed (reported by its writer)', async (t) => {
  for (const outcome of ['landed', 'failed'] as const) {
    const { instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0 });
    let settleWrite: () => void = () => undefined;
    instance.readyOnceRecorded(new Promise<void>((resolve, reject) => (settleWrite = outcome === 'landed' ? resolve : () => reject(new Error('ENOSPC')))));
    instance.watch();
    await settle();
    assert.equal(instance.ready, false, outcome);
    assert.deepEqual(reports.all, [], outcome);

    settleWrite();
    await waitFor(() => instance.ready, { message: `ready once the write ${outcome}` });
    assert.deepEqual(reports.readinessFlips(), [true], outcome);
  }
});

test('hold: with a passing readiness probe, still not ready until release()', async (t) => {
  const { instance, reports, requests } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 0,
    hold: 'postStart hook running',
    probes: (port) => ({ readiness: httpProbe(port, '/ready', FAST) }),
  });
  instance.watch();
  await waitFor(async () => (await requests()).filter((r) => r === '/ready 200').length >= 3, { message: 'three passing readiness probes' });
  assert.equal(instance.ready, false);
  assert.deepEqual(reports.readinessFlips(), []);

  instance.release();
  assert.deepEqual(reports.readinessFlips(), [true]);
});

test('close: no report after it, even when the process then exits; its timers are gone', async (t) => {
  const timersBefore = liveTimers();
  const { dir, driver, instance, reports } = await startInstance(t, {
    script: SERVER,
    minReadySeconds: 30,
    answers: { '/ready': 503, '/live': 500 },
    probes: (port) => ({
      readiness: httpProbe(port, '/ready', FAST),
      liveness: httpProbe(port, '/live', { ...FAST, failureThreshold: 100_000 }),
    }),
  });
  instance.watch();
  await waitFor(() => reports.of('note').length >= 2, { message: 'readiness notes' });

  instance.close();
  instance.close();
  const reportsAtClose = reports.all.length;
  assert.equal(liveTimers(), timersBefore, 'neither the minReadySeconds timer nor a probe timer is left');

  // The process answers 200 now and then exits: neither may be reported.
  await setAnswers(dir, { '/ready': 200, '/live': 500 });
  process.kill(execPid(instance.handle), 'SIGKILL');
  assert.ok(isExecHandle(instance.handle));
  const exit = await driver.waitExit(instance.handle);
  assert.equal(exit.signal, 'SIGKILL');
  await settle();

  assert.equal(reports.all.length, reportsAtClose, `reports after close: ${JSON.stringify(reports.all.slice(reportsAtClose))}`);
  assert.deepEqual(reports.of('exited'), []);
  instance.release();
  assert.equal(reports.all.length, reportsAtClose, 'release after close reports nothing');
  assert.equal(liveTimers(), timersBefore);
});

test('close: of an instance that is ready, before its exit, leaves no timer and reports nothing more', async (t) => {
  const timersBefore = liveTimers();
  const { dir, driver, instance, reports } = await startInstance(t, { script: EXIT_ON_FILE, minReadySeconds: 0 });
  instance.watch();
  assert.equal(instance.ready, true);
  instance.close();

  await writeFile(join(dir, 'exit'), '0');
  assert.ok(isExecHandle(instance.handle));
  await driver.waitExit(instance.handle);
  await settle();
  assert.deepEqual(reports.readinessFlips(), [true]);
  assert.equal(reports.all.length, 1);
  assert.equal(liveTimers(), timersBefore);
});

test('an exit watch that fails (the engine went away) is not an exit: not ready meanwhile, asked again, and the exit that follows is reported', async () => {
  // A fake driver: a connection to the Docker Engine that breaks mid-wait cannot be caused for real
  // without disturbing the engine every other test shares (the daemon's own use is covered against
  // the real engine in daemon-docker.test.ts).
  let waits = 0;
  let finish: ((exit: ExitStatus) => void) | undefined;
  const exit: ExitStatus = { code: 137, signal: null, at: Date.now(), known: true };
  const driver = {
    check: () => Promise.resolve(),
    start: () => Promise.reject(new Error('not used')),
    stop: () => Promise.reject(new Error('not used')),
    inspect: () => Promise.resolve({ state: 'running' as const, pid: 42 }),
    waitExit: (): Promise<ExitStatus> => {
      waits++;
      if (waits === 1) return Promise.reject(new Error('the engine closed the connection'));
      return new Promise((resolve) => (finish = resolve));
    },
  };
  const handle: ProcessHandle = { driver: 'docker', id: 'c0ffee', name: 'pm-box', instance: 'i1', startedAt: new Date().toISOString(), pid: 42 };
  const proc: DesiredProcess = { name: 'box', manifest: { ...manifest({ name: 'box', command: ['x'] }), spec: { ...manifest({ name: 'box', command: ['x'] }).spec, minReadySeconds: 0 } }, source: { file: '-', line: 1 } };
  const reports = new Reports();
  const instance = new Instance(proc, handle, Date.now(), { env: {} }, driver, reports, Date.now());
  instance.watch();
  try {
    await waitFor(() => reports.of('note').some((n) => /exit watch lost \(the engine closed the connection\)/.test(n.detail)), { message: 'the lost watch noted' });
    await waitFor(() => waits >= 2 && reports.readinessFlips().at(-1) === true, { message: 'asked again, and ready once the driver answers' });
    assert.deepEqual(reports.readinessFlips(), [true, false, true], 'ready, not while the state was unknown, ready again');
    assert.match(reports.of('readiness')[1]?.detail ?? '', /^state unknown: the engine closed the connection$/);
    assert.equal(reports.of('exited').length, 0, 'a failed watch is no exit');
    finish?.(exit);
    await waitFor(() => reports.of('exited').length === 1, { message: 'the exit after the outage reported' });
    assert.deepEqual(reports.of('exited')[0]?.exit, exit);
  } finally {
    instance.close();
  }
});
