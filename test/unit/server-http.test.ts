// The daemon's HTTP server over real loopback TCP and a real unix socket, against a hand-written
// DaemonApi stub (the daemon itself is tested elsewhere): auth, routes, status codes, the actor,
// request logging, socket files, and start-up failures.
import assert from 'node:assert/strict';
import { link, lstat, stat, writeFile, readFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { once } from 'node:events';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ApplyRequest, ApplyResponse, ControlResult, ControlVerb, DaemonApi, DaemonEvent, ProcessStatus, ReadinessReport } from '../../src/daemon/api.js';
import { NotFoundError, PmError } from '../../src/errors.js';
import { parseListen, startServer, type RunningServer, type ServerOptions } from '../../src/server/http.js';
import { DaemonMetrics } from '../../src/server/metrics.js';
import { tempDir } from '../support/tmp.js';

const TOKEN = 'test-token-0123456789';

function status(name: string, extra: Partial<ProcessStatus> = {}): ProcessStatus {
  return {
    name,
    phase: 'Ready',
    detail: 'ready',
    up: true,
    ready: true,
    restarts: 0,
    backoff: { failures: 0, delayMs: 0 },
    breaker: { phase: 'closed', failures: 0 },
    paused: false,
    driver: 'exec',
    command: ['/bin/web', '--port=8080'],
    labels: {},
    source: '/m/web.yaml',
    ...extra,
  };
}

/** Stands for the daemon: fixed processes and events, and a record of every mutating call. */
class StubApi implements DaemonApi {
  processes = [status('web', { restarts: 3, phase: 'BackOff', up: false, ready: false }), status('db')];
  eventLog: DaemonEvent[] = [
    { time: '2026-01-01T00:00:00.000Z', type: 'Started', process: 'web', severity: 'normal', message: 'started' },
    { time: '2026-01-01T00:00:01.000Z', type: 'Exited', process: 'web', severity: 'warning', message: 'exit 1' },
    { time: '2026-01-01T00:00:02.000Z', type: 'Started', process: 'db', severity: 'normal', message: 'started' },
  ];
  readinessReport: ReadinessReport = { ready: true, reasons: [], manifests: { source: '/m', accepted: true }, failing: [] };
  applyResponse: ApplyResponse = { ok: true, actions: [{ kind: 'start', name: 'web', reason: 'not running' }], unchanged: ['db'] };
  calls: { method: string; args: unknown[] }[] = [];
  /** When set, control() waits for it: lets a test hold a request in flight. */
  controlGate: Promise<void> | undefined;
  failWith: unknown;

  info() {
    return { version: '0.1.0', pid: 4242, startedAt: '2026-01-01T00:00:00.000Z' };
  }
  list() {
    if (this.failWith) throw this.failWith;
    return this.processes;
  }
  get(name: string) {
    return this.processes.find((p) => p.name === name);
  }
  events(process?: string, limit = 100) {
    this.calls.push({ method: 'events', args: [process, limit] });
    return this.eventLog.filter((e) => process === undefined || e.process === process).slice(-limit);
  }
  readiness() {
    return this.readinessReport;
  }
  async apply(request: ApplyRequest, actor: string) {
    this.calls.push({ method: 'apply', args: [request, actor] });
    return this.applyResponse;
  }
  async control(verb: ControlVerb, name: string, actor: string): Promise<ControlResult> {
    this.calls.push({ method: 'control', args: [verb, name, actor] });
    await this.controlGate;
    if (!this.get(name)) throw new NotFoundError(name);
    return { name, changed: true, message: `${verb} requested` };
  }
  async delete(names: string[], actor: string) {
    this.calls.push({ method: 'delete', args: [names, actor] });
    return names.map((name) => ({ name, changed: true, message: 'deleted' }));
  }
  queueDepth() {
    return 0;
  }
}

interface Logged {
  level: 'info' | 'warn';
  obj: object;
  msg: string | undefined;
}

async function serve(t: TestContext, extra: Partial<ServerOptions> = {}) {
  const api = new StubApi();
  const logs: Logged[] = [];
  let waiters: (() => void)[] = [];
  const log = (entry: Logged) => {
    logs.push(entry);
    for (const wake of waiters) wake();
    waiters = [];
  };
  const logger = {
    info: (obj: object, msg?: string) => log({ level: 'info', obj, msg }),
    warn: (obj: object, msg?: string) => log({ level: 'warn', obj, msg }),
  };
  /** Resolves at the next log entry: the server logs after answering, so a test waits for it. */
  const nextLog = (): Promise<void> => new Promise((resolve) => waiters.push(resolve));
  const server = await startServer({ api, metrics: new DaemonMetrics(api), token: TOKEN, listen: '127.0.0.1:0', logger, ...extra });
  t.after(() => server.close());
  return { api, server, logs, nextLog };
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test responses are read field by field
  json: any;
}

interface CallOptions {
  token?: string | null;
  body?: unknown;
  /** Sent as is, instead of JSON of `body`. */
  raw?: string;
  headers?: Record<string, string | number>;
}

/** One request on its own connection; `token: null` sends no Authorization header. */
function call(target: Pick<RunningServer, 'url' | 'socket'>, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const { token = TOKEN } = options;
  const payload = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const where = target.url ? { host: new URL(target.url).hostname.replace(/^\[|\]$/g, ''), port: Number(new URL(target.url).port) } : { socketPath: target.socket as string };
  return new Promise((resolve, reject) => {
    const req = request({
      ...where,
      method,
      path,
      agent: false,
      headers: { ...(token !== null && { authorization: `Bearer ${token}` }), ...(payload !== undefined && { 'content-type': 'application/json' }), ...options.headers },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.end(payload);
  });
}

test('healthz, readyz and metrics answer without a token', async (t) => {
  const { api, server } = await serve(t);
  const health = await call(server, 'GET', '/healthz', { token: null });
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, { status: 'ok', version: '0.1.0', pid: 4242, startedAt: '2026-01-01T00:00:00.000Z' });
  assert.match(health.headers['content-type'] ?? '', /^application\/json/);

  assert.equal((await call(server, 'GET', '/readyz', { token: null })).status, 200);
  api.readinessReport = { ready: false, reasons: ['manifests rejected'], manifests: { source: '/m', accepted: false, errors: ['x.yaml:1:1: bad'] }, failing: [] };
  const notReady = await call(server, 'GET', '/readyz', { token: null });
  assert.equal(notReady.status, 503);
  assert.deepEqual(notReady.json, api.readinessReport);

  const metrics = await call(server, 'GET', '/metrics', { token: null });
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers['content-type'] ?? '', /^text\/plain/);
  assert.match(metrics.text, /^pm_process_restarts_total\{process="web"\} 3$/m);
  assert.match(metrics.text, /^pm_process_state\{process="web",state="BackOff"\} 1$/m);

  const head = await call(server, 'HEAD', '/healthz', { token: null });
  assert.equal(head.status, 200);
  assert.equal(head.text, '', 'HEAD has no body');
});

test('/api/ needs the bearer token: missing or wrong → 401 with the same message; right → 200', async (t) => {
  const { api, server } = await serve(t);
  const missing = await call(server, 'GET', '/api/v1/processes', { token: null });
  assert.equal(missing.status, 401);
  assert.equal(missing.headers['www-authenticate'], 'Bearer realm="pm"');
  assert.equal(missing.json.error.code, 'E_AUTH');
  const wrong = await call(server, 'GET', '/api/v1/processes', { token: 'nope' });
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.json, missing.json, 'nothing tells a missing token from a wrong one');
  assert.equal((await call(server, 'GET', '/api/v1/processes', { token: `${TOKEN}x` })).status, 401);
  assert.equal((await call(server, 'GET', '/api/v1/processes', { headers: { authorization: `Basic ${TOKEN}` }, token: null })).status, 401);
  assert.equal((await call(server, 'GET', '/api/v1/no-such-thing', { token: null })).status, 401, 'unknown API paths are not revealed without a token');
  assert.equal((await call(server, 'POST', '/api/v1/processes/web/restart', { token: null })).status, 401);
  assert.deepEqual(api.calls.filter((c) => c.method === 'control'), [], 'nothing was done');

  const ok = await call(server, 'GET', '/api/v1/processes');
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, { items: api.processes });
});

test('process detail with its events (newest last), 404 for an unknown one, events with filters', async (t) => {
  const { api, server } = await serve(t);
  const web = await call(server, 'GET', '/api/v1/processes/web');
  assert.equal(web.status, 200);
  assert.deepEqual(web.json.process, api.processes[0]);
  assert.deepEqual(
    web.json.events.map((e: DaemonEvent) => e.type),
    ['Started', 'Exited'],
  );
  const missing = await call(server, 'GET', '/api/v1/processes/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'E_NOT_FOUND');
  assert.match(missing.json.error.message, /no process named "nope"/);
  assert.equal(typeof missing.json.error.hint, 'string');

  const events = await call(server, 'GET', '/api/v1/events?process=web&limit=1');
  assert.equal(events.status, 200);
  assert.deepEqual(events.json, { items: [api.eventLog[1]] });
  assert.deepEqual(api.calls.at(-1), { method: 'events', args: ['web', 1] });
  assert.equal((await call(server, 'GET', '/api/v1/events')).json.items.length, 3);
  assert.deepEqual(api.calls.at(-1), { method: 'events', args: [undefined, 100] }, 'no limit: the daemon default');
  for (const bad of ['limit=0', 'limit=-1', 'limit=1.5', 'limit=abc', 'limit=10001', 'process=Web']) {
    const reply = await call(server, 'GET', `/api/v1/events?${bad}`);
    assert.equal(reply.status, 400, bad);
    assert.equal(typeof reply.json.error.message, 'string');
  }
});

test('unknown path 404, wrong method 405 with Allow', async (t) => {
  const { server } = await serve(t);
  for (const path of ['/', '/nope', '/healthz/', '/api/v2/processes', '/api/v1/processes/web/kill', '/api/v1/processes/web/restart/now', '/api/v1/events/web', '/api/v1/apply/x']) {
    const reply = await call(server, 'GET', path);
    assert.equal(reply.status, 404, path);
    assert.equal(reply.json.error.code, 'E_NO_ROUTE', path);
  }
  const cases: [string, string, string][] = [
    ['POST', '/healthz', 'GET, HEAD'],
    ['DELETE', '/metrics', 'GET, HEAD'],
    ['GET', '/api/v1/apply', 'POST'],
    ['GET', '/api/v1/processes/web/restart', 'POST'],
    ['POST', '/api/v1/processes/web', 'GET, HEAD'],
    ['PUT', '/api/v1/delete', 'POST'],
  ];
  for (const [method, path, allow] of cases) {
    const reply = await call(server, method, path);
    assert.equal(reply.status, 405, `${method} ${path}`);
    assert.equal(reply.headers.allow, allow, `${method} ${path}`);
    assert.equal(reply.json.error.code, 'E_METHOD');
  }
});

test('names in the path are URL-decoded and must follow the manifest name rule', async (t) => {
  const { api, server } = await serve(t);
  api.processes.push(status('web-2'));
  assert.equal((await call(server, 'GET', '/api/v1/processes/web%2D2')).status, 200, 'percent-encoded, then decoded');
  const bad = ['Web', 'web_2', '-web', 'web-', 'a%2Fb', '..', '%2E%2E', 'a'.repeat(64), '%E0%A4%A', 'we%20b'];
  for (const name of bad) {
    for (const [method, path] of [
      ['GET', `/api/v1/processes/${name}`],
      ['POST', `/api/v1/processes/${name}/restart`],
    ] as const) {
      const reply = await call(server, method, path);
      assert.equal(reply.status, 400, `${method} ${path}`);
      assert.ok(['E_BAD_NAME', 'E_BAD_REQUEST'].includes(reply.json.error.code), path);
    }
  }
  assert.equal((await call(server, 'GET', `/api/v1/processes/${'a'.repeat(63)}`)).status, 404, '63 characters is a valid name');
  assert.deepEqual(api.calls.filter((c) => c.method === 'control'), []);
});

test('control: the stub gets the verb, the name and the actor (X-PM-Actor, cleaned, and the remote)', async (t) => {
  const { api, server } = await serve(t);
  for (const verb of ['restart', 'pause', 'resume', 'reset']) {
    const reply = await call(server, 'POST', `/api/v1/processes/web/${verb}`, { headers: { 'x-pm-actor': 'alice' } });
    assert.equal(reply.status, 200, verb);
    assert.deepEqual(reply.json, { name: 'web', changed: true, message: `${verb} requested` });
    assert.deepEqual(api.calls.at(-1), { method: 'control', args: [verb, 'web', 'alice (127.0.0.1)'] });
  }
  await call(server, 'POST', '/api/v1/processes/web/restart', { token: TOKEN });
  assert.deepEqual(api.calls.at(-1)?.args[2], 'unknown (127.0.0.1)', 'no X-PM-Actor');
  await call(server, 'POST', '/api/v1/processes/web/restart', { headers: { 'x-pm-actor': `  b\u00e9ob\t${'x'.repeat(200)}` } });
  assert.deepEqual(api.calls.at(-1)?.args[2], `bob${'x'.repeat(97)} (127.0.0.1)`, 'printable ASCII only, at most 100 characters');

  const missing = await call(server, 'POST', '/api/v1/processes/nope/restart');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'E_NOT_FOUND');
});

test('apply: 200 with the plan, 422 with every error and the error envelope, 400 for bad JSON or shape', async (t) => {
  const { api, server } = await serve(t);
  const body: ApplyRequest = { files: [{ path: '/m/web.yaml', text: 'kind: Process' }], roots: ['/m'], prune: true, pruneSelector: { tier: 'web' }, dryRun: false };
  const ok = await call(server, 'POST', '/api/v1/apply', { body: { ...body, extra: 'dropped' }, headers: { 'x-pm-actor': 'ci' } });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, api.applyResponse);
  assert.deepEqual(api.calls.at(-1), { method: 'apply', args: [body, 'ci (127.0.0.1)'] });

  api.applyResponse = { ok: false, errors: ['web.yaml:1:1: bad', 'db.yaml:2:3: worse'] };
  const rejected = await call(server, 'POST', '/api/v1/apply', { body });
  assert.equal(rejected.status, 422);
  assert.equal(rejected.json.ok, false);
  assert.deepEqual(rejected.json.errors, api.applyResponse.errors);
  assert.equal(rejected.json.error.code, 'E_MANIFEST');
  assert.equal(rejected.json.error.message, '2 problems in the manifests; nothing was changed\nweb.yaml:1:1: bad\ndb.yaml:2:3: worse');

  const calls = api.calls.length;
  const malformed = await call(server, 'POST', '/api/v1/apply', { raw: '{"files": [' });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.error.code, 'E_BAD_JSON');
  for (const shape of [[], 'x', { ...body, files: 'x' }, { ...body, files: [{ path: 1, text: '' }] }, { ...body, roots: [1] }, { ...body, prune: 'yes' }, { ...body, dryRun: undefined }, { ...body, pruneSelector: { a: 1 } }]) {
    const reply = await call(server, 'POST', '/api/v1/apply', { body: shape });
    assert.equal(reply.status, 400, JSON.stringify(shape));
    assert.equal(reply.json.error.code, 'E_BAD_REQUEST');
  }
  assert.equal(api.calls.length, calls, 'nothing reached the daemon');
});

test('delete: names checked, results returned, actor passed', async (t) => {
  const { api, server } = await serve(t);
  const reply = await call(server, 'POST', '/api/v1/delete', { body: { names: ['web', 'db'] }, headers: { 'x-pm-actor': 'alice' } });
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.json, { results: [{ name: 'web', changed: true, message: 'deleted' }, { name: 'db', changed: true, message: 'deleted' }] });
  assert.deepEqual(api.calls.at(-1), { method: 'delete', args: [['web', 'db'], 'alice (127.0.0.1)'] });
  for (const body of [{ names: ['Web'] }, { names: 'web' }, {}, [], null]) {
    assert.equal((await call(server, 'POST', '/api/v1/delete', { body })).status, 400, JSON.stringify(body));
  }
});

test('bodies over the limit get 413, declared or streamed', async (t) => {
  const { api, server } = await serve(t, { maxBodyBytes: 1024 });
  const declared = await call(server, 'POST', '/api/v1/apply', { raw: '', headers: { 'content-length': 0 } });
  assert.equal(declared.status, 400, 'an empty body is not JSON');
  // Content-Length says too much: refused before a byte of the body is read.
  const big = await new Promise<number>((resolve, reject) => {
    const url = new URL(server.url as string);
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/api/v1/apply', agent: false, headers: { authorization: `Bearer ${TOKEN}`, 'content-length': 1025 } });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.flushHeaders();
  });
  assert.equal(big, 413);
  const streamed = await call(server, 'POST', '/api/v1/apply', { raw: JSON.stringify({ pad: 'x'.repeat(2000) }), headers: { 'transfer-encoding': 'chunked' } });
  assert.equal(streamed.status, 413);
  assert.equal(streamed.json.error.code, 'E_TOO_LARGE');
  assert.deepEqual(api.calls, []);
});

test('an unexpected failure is a 500 that shows nothing of it, and is logged', async (t) => {
  const { api, server, logs } = await serve(t);
  api.failWith = new Error('secret internals');
  const reply = await call(server, 'GET', '/api/v1/processes');
  assert.equal(reply.status, 500);
  assert.equal(reply.json.error.code, 'E_INTERNAL');
  assert.doesNotMatch(reply.text, /secret internals/);
  assert.equal(logs.filter((l) => l.level === 'warn').length, 1);
  assert.match(JSON.stringify(logs), /secret internals/);
  api.failWith = new PmError('E_LOCK_BUSY', 'busy', { exitCode: 3, hint: 'wait' });
  const busy = await call(server, 'GET', '/api/v1/processes');
  assert.equal(busy.status, 409);
  assert.deepEqual(busy.json, { error: { code: 'E_LOCK_BUSY', message: 'busy', hint: 'wait' } });
});

test('each mutating request is logged once, without the token or the body; reads are not logged', async (t) => {
  const { server, logs, nextLog } = await serve(t);
  const logged = nextLog();
  await call(server, 'GET', '/api/v1/processes');
  await call(server, 'POST', '/api/v1/apply', { body: { files: [{ path: 'a', text: 'body-secret' }], roots: [], prune: false, dryRun: true }, headers: { 'x-pm-actor': 'alice' } });
  await logged;
  assert.equal(logs.length, 1);
  const [entry] = logs;
  assert.equal(entry?.level, 'info');
  assert.equal(entry?.msg, 'api request');
  assert.deepEqual({ ...entry?.obj, ms: 0 }, { method: 'POST', path: '/api/v1/apply', status: 200, ms: 0, actor: 'alice (127.0.0.1)' });
  assert.doesNotMatch(JSON.stringify(logs), new RegExp(`${TOKEN}|body-secret`));
});

test('unix socket: serves the API with actor "via unix socket", mode 0600, removed on close', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'pm.sock');
  const { api, server } = await serve(t, { listen: undefined, socket: path });
  assert.equal(server.url, undefined);
  assert.equal(server.socket, path);
  assert.ok((await lstat(path)).isSocket());
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal((await call({ socket: path }, 'GET', '/healthz', { token: null })).status, 200);
  assert.equal((await call({ socket: path }, 'GET', '/api/v1/processes', { token: null })).status, 401);
  const reply = await call({ socket: path }, 'POST', '/api/v1/processes/web/pause', { headers: { 'x-pm-actor': 'alice' } });
  assert.equal(reply.status, 200);
  assert.deepEqual(api.calls.at(-1)?.args, ['pause', 'web', 'alice (via unix socket)']);
  const closing = server.close();
  assert.equal(server.close(), closing, 'close() is idempotent');
  await closing;
  await assert.rejects(lstat(path), { code: 'ENOENT' });
});

test('TCP and socket together; a stale socket file is replaced, a live one or a non-socket is not', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'pm.sock');
  // A stale socket: a second name of a socket file whose listener has gone.
  const live = await listenNet(t, createNetServer(), { path: join(dir, 'first.sock') });
  await link(join(dir, 'first.sock'), path);
  live.close();
  await once(live, 'close');

  const { server } = await serve(t, { socket: path });
  assert.match(server.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await call(server, 'GET', '/healthz')).status, 200);
  assert.equal((await call({ socket: path }, 'GET', '/healthz')).status, 200);

  // Now something answers on it: a second server must not take it over.
  await assert.rejects(
    startServer({ api: new StubApi(), metrics: new DaemonMetrics(new StubApi()), token: TOKEN, socket: path }),
    (error: PmError) => error.code === 'E_LISTEN' && error.message === `cannot listen on the unix socket ${path}: another process is listening on it (is another pm daemon running?)` && /--socket/.test(error.hint ?? ''),
  );
  assert.equal((await call({ socket: path }, 'GET', '/healthz')).status, 200, 'the first server still serves');

  const file = join(dir, 'regular');
  await writeFile(file, 'keep me');
  await assert.rejects(startServer({ api: new StubApi(), metrics: new DaemonMetrics(new StubApi()), token: TOKEN, socket: file }), /the path exists and is not a socket/);
  assert.equal(await readFile(file, 'utf8'), 'keep me');
});

test('a port in use is an error naming the address and the setting; nothing stays open', async (t) => {
  const taken = await listenNet(t, createNetServer(), { host: '127.0.0.1', port: 0 });
  const { port } = taken.address() as AddressInfo;
  const dir = await tempDir(t);
  const socket = join(dir, 'pm.sock');
  await assert.rejects(startServer({ api: new StubApi(), metrics: new DaemonMetrics(new StubApi()), token: TOKEN, listen: `127.0.0.1:${port}`, socket }), (error: PmError) => {
    assert.equal(error.code, 'E_LISTEN');
    assert.equal(error.message, `cannot listen on address 127.0.0.1:${port}: it is already in use (another pm daemon, or another program)`);
    assert.equal(error.hint, 'choose another with listen (--listen, PM_LISTEN)');
    return true;
  });
  await assert.rejects(lstat(socket), { code: 'ENOENT' }, 'the socket was not created');
});

test('IPv6 listen address in brackets; wildcard addresses give a loopback URL', async (t) => {
  const v6 = await startServer({ api: new StubApi(), metrics: new DaemonMetrics(new StubApi()), token: TOKEN, listen: '[::1]:0' }).catch((error: PmError) => error);
  if (v6 instanceof Error) {
    t.skip(`no IPv6 loopback here: ${v6.message}`);
    return;
  }
  t.after(() => v6.close());
  assert.match(v6.url ?? '', /^http:\/\/\[::1\]:\d+$/);
  assert.equal((await call(v6, 'GET', '/healthz')).status, 200);
  const { server: any } = await serve(t, { listen: '0.0.0.0:0' });
  assert.match(any.url ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
});

test('parseListen accepts host:port forms and rejects the rest with the expected shape', () => {
  assert.deepEqual(parseListen('127.0.0.1:7070'), { host: '127.0.0.1', port: 7070 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('localhost:65535'), { host: 'localhost', port: 65535 });
  for (const bad of ['7070', '::1:7070', 'host:65536', 'host:', ':7070', 'a b:1', '[::1]7070']) {
    assert.throws(() => parseListen(bad), (error: PmError) => error.code === 'E_LISTEN' && error.message.includes(JSON.stringify(bad)), bad);
  }
});

test('close() lets a request in flight finish, then returns without waiting out keep-alive', { timeout: 15_000 }, async (t) => {
  const { api, server } = await serve(t, { closeGraceMs: 60_000 });
  let release!: () => void;
  api.controlGate = new Promise((resolve) => (release = resolve));
  let reached!: () => void;
  const inFlight = new Promise<void>((resolve) => (reached = resolve));
  const control = api.control.bind(api);
  api.control = (...args) => {
    reached();
    return control(...args);
  };
  const url = new URL(server.url as string);
  const reply = new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
    // A keep-alive agent: the connection would stay open after the answer were it not closed.
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path: '/api/v1/processes/web/restart', headers: { authorization: `Bearer ${TOKEN}`, connection: 'keep-alive' } });
    req.once('error', reject);
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
    });
    req.end();
  });
  await inFlight;
  const closed = server.close();
  release();
  assert.deepEqual(await reply, { status: 200, connection: 'close' }, 'answered, and the connection is not kept');
  await closed;
  await assert.rejects(call(server, 'GET', '/healthz'), { code: 'ECONNREFUSED' });
});

async function listenNet(t: TestContext, server: NetServer, where: { path: string } | { host: string; port: number }): Promise<NetServer> {
  server.listen(where);
  await once(server, 'listening');
  t.after(() => {
    if (server.listening) server.close();
  });
  return server;
}
