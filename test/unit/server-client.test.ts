// The CLI's client against the real server (over loopback TCP and a unix socket, with a small
// DaemonApi stub) and against servers that misbehave: errors mapped to PmErrors, deadlines,
// cancellation, and the daemon.json / token files it starts from.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ApplyRequest, ApplyResponse, ControlVerb, DaemonApi } from '../../src/daemon/api.js';
import { NotFoundError, PmError } from '../../src/errors.js';
import { DaemonClient, DaemonError, findDaemon, readDaemonToken, removeDaemonFile, writeDaemonFile, type DaemonEndpoint } from '../../src/server/client.js';
import { startServer } from '../../src/server/http.js';
import { DaemonMetrics } from '../../src/server/metrics.js';
import { tempDir } from '../support/tmp.js';

const TOKEN = 'client-test-token';

/** Just enough daemon for the client: one process, apply answers as told, control records the actor. */
function stubApi() {
  const seen: { actor?: string; apply?: ApplyRequest } = {};
  let applyResponse: ApplyResponse = { ok: true, actions: [], unchanged: ['web'] };
  const web = {
    name: 'web',
    phase: 'Ready' as const,
    detail: '',
    up: true,
    ready: true,
    restarts: 0,
    backoff: { failures: 0, delayMs: 0 },
    breaker: { phase: 'closed' as const, failures: 0 },
    paused: false,
    driver: 'exec',
    command: ['/bin/web'],
    labels: {},
    source: '/m/web.yaml',
  };
  const api: DaemonApi = {
    info: () => ({ version: '0.1.0', pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z' }),
    list: () => [web],
    get: (name) => (name === 'web' ? web : undefined),
    events: () => [],
    readiness: () => ({ ready: true, reasons: [], manifests: { source: '/m', accepted: true }, failing: [] }),
    apply: async (request, actor) => {
      Object.assign(seen, { apply: request, actor });
      return applyResponse;
    },
    control: async (verb: ControlVerb, name, actor) => {
      seen.actor = actor;
      if (name !== 'web') throw new NotFoundError(name);
      return { name, changed: true, message: `${verb} requested` };
    },
    delete: async (names) => names.map((name) => ({ name, changed: true, message: 'deleted' })),
    queueDepth: () => 0,
  };
  return { api, seen, answerApply: (response: ApplyResponse) => (applyResponse = response) };
}

async function daemon(t: TestContext) {
  const dir = await tempDir(t);
  const stub = stubApi();
  const socket = join(dir, 'pm.sock');
  const server = await startServer({ api: stub.api, metrics: new DaemonMetrics(stub.api), token: TOKEN, listen: '127.0.0.1:0', socket });
  t.after(() => server.close());
  return { ...stub, dir, url: server.url as string, socket };
}

/** A server that accepts connections and never answers; every connection is cut when the test ends. */
async function silentServer(t: TestContext): Promise<{ server: NetServer; port: number; nextConnection: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const { port } = server.address() as { port: number };
  return { server, port, nextConnection: () => once(server, 'connection').then(() => undefined) };
}

const requestApply: ApplyRequest = { files: [{ path: '/m/web.yaml', text: 'x' }], roots: ['/m'], prune: false, dryRun: true };

test('talks to the daemon over TCP and over the unix socket, preferring the socket, as the OS user', async (t) => {
  const { url, socket, seen } = await daemon(t);
  const overTcp = new DaemonClient({ url }, TOKEN);
  assert.deepEqual((await overTcp.list()).items.map((p) => p.name), ['web']);
  assert.deepEqual(await overTcp.control('restart', 'web'), { name: 'web', changed: true, message: 'restart requested' });
  assert.equal(seen.actor, `${userInfo().username} (127.0.0.1)`);

  // The URL is wrong on purpose: with a socket given, it is never used.
  const overSocket = new DaemonClient({ socket, url: 'http://127.0.0.1:1' }, TOKEN);
  assert.equal(overSocket.where, `unix socket ${socket}`);
  assert.deepEqual(await overSocket.control('pause', 'web'), { name: 'web', changed: true, message: 'pause requested' });
  assert.equal(seen.actor, `${userInfo().username} (via unix socket)`);
  assert.equal((await overSocket.get('web')).process.name, 'web');
  assert.deepEqual(await overSocket.events({ process: 'web', limit: 5 }), { items: [] });
  assert.deepEqual(await overSocket.delete(['web']), { results: [{ name: 'web', changed: true, message: 'deleted' }] });
  assert.deepEqual(await overSocket.request('GET', '/healthz'), { status: 'ok', version: '0.1.0', pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z' });
});

test('errors: 422 is a DaemonError with exitCode 2 and the full body; 404 and 401 keep the server code', async (t) => {
  const { url, seen, answerApply } = await daemon(t);
  const client = new DaemonClient({ url }, TOKEN);
  assert.deepEqual(await client.apply(requestApply), { ok: true, actions: [], unchanged: ['web'] });
  assert.deepEqual(seen.apply, requestApply);

  answerApply({ ok: false, errors: ['web.yaml:1:1: bad'] });
  await assert.rejects(client.apply(requestApply), (error: DaemonError) => {
    assert.ok(error instanceof DaemonError && error instanceof PmError);
    assert.equal(error.status, 422);
    assert.equal(error.exitCode, 2);
    assert.equal(error.code, 'E_MANIFEST');
    assert.equal(error.message, '1 problem in the manifests; nothing was changed\nweb.yaml:1:1: bad');
    assert.equal(error.hint, 'fix the manifests and apply again');
    assert.deepEqual((error.body as { errors: string[] }).errors, ['web.yaml:1:1: bad']);
    return true;
  });
  await assert.rejects(client.control('restart', 'nope'), (error: DaemonError) => error.status === 404 && error.code === 'E_NOT_FOUND' && error.exitCode === 1 && /pm get/.test(error.hint ?? ''));
  await assert.rejects(client.control('restart', 'Bad'), (error: DaemonError) => error.status === 400 && error.code === 'E_BAD_NAME' && error.exitCode === 2);
  await assert.rejects(new DaemonClient({ url }, 'wrong').list(), (error: DaemonError) => error.status === 401 && error.code === 'E_AUTH' && error.exitCode === 1);
});

test('a daemon that never answers: the deadline rejects, and so does the abort signal', async (t) => {
  const silent = await silentServer(t);
  const client = new DaemonClient({ url: `http://127.0.0.1:${silent.port}`, pid: 4242 }, TOKEN);
  await assert.rejects(client.list({ timeoutMs: 100 }), (error: PmError) => {
    assert.equal(error.code, 'E_DAEMON_TIMEOUT');
    assert.equal(error.message, `the pm daemon at http://127.0.0.1:${silent.port} did not answer GET /api/v1/processes within 100 ms`);
    assert.match(error.hint ?? '', /pm daemon` logs/);
    return true;
  });

  const controller = new AbortController();
  const connected = silent.nextConnection();
  const pending = client.control('restart', 'web', { signal: controller.signal, timeoutMs: 60_000 });
  // Aborted once the request is surely on the wire, not before.
  await connected;
  controller.abort();
  await assert.rejects(pending, { name: 'AbortError' });
  await assert.rejects(client.list({ signal: controller.signal }), { name: 'AbortError' }, 'an aborted signal rejects at once');
  const reason = new Error('stop now');
  await assert.rejects(client.list({ signal: AbortSignal.abort(reason) }), reason, "the signal's reason when it has one");
});

test('nobody listening: E_DAEMON_UNREACHABLE with the pid, the address and a hint', async (t) => {
  const dir = await tempDir(t);
  const socket = join(dir, 'gone.sock');
  await assert.rejects(new DaemonClient({ socket, pid: 4242 }, TOKEN).list(), (error: PmError) => {
    assert.equal(error.code, 'E_DAEMON_UNREACHABLE');
    assert.equal(error.message, `the pm daemon (pid 4242) is not answering at unix socket ${socket}: ENOENT`);
    assert.equal(error.hint, 'the daemon named in daemon.json is not answering; check `pm daemon` logs');
    return true;
  });
  const closed = createNetServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const { port } = closed.address() as { port: number };
  closed.close();
  await once(closed, 'close');
  await assert.rejects(new DaemonClient({ url: `http://127.0.0.1:${port}` }, TOKEN).list(), (error: PmError) => error.code === 'E_DAEMON_UNREACHABLE' && error.message.endsWith('ECONNREFUSED'));
});

test('daemon.json: written atomically with mode 0600, found while its pid lives, removed only by its own pid', async (t) => {
  const dir = await tempDir(t);
  assert.equal(await findDaemon(dir), undefined, 'no file, no daemon');
  const info: DaemonEndpoint = { pid: process.pid, url: 'http://127.0.0.1:7070', socket: join(dir, 'pm.sock'), tokenFile: join(dir, 'api-token'), startedAt: '2026-01-01T00:00:00.000Z' };
  await writeDaemonFile(dir, info);
  assert.equal((await stat(join(dir, 'daemon.json'))).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['daemon.json'], 'no temp file is left');
  assert.deepEqual(await findDaemon(dir), info);

  await removeDaemonFile(dir, process.pid + 1);
  assert.deepEqual(await findDaemon(dir), info, "another pid's removal leaves it");
  await removeDaemonFile(dir, process.pid);
  assert.equal(await findDaemon(dir), undefined);
  await removeDaemonFile(dir, process.pid);

  // A pid that has exited: the daemon died without tidying up.
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  await writeDaemonFile(dir, { ...info, pid: dead });
  assert.equal(await findDaemon(dir), undefined);

  await writeFile(join(dir, 'daemon.json'), '{"pid": "x"}');
  await assert.rejects(findDaemon(dir), (error: PmError) => error.code === 'E_DAEMON_FILE' && error.hint === `if no pm daemon is running, remove ${join(dir, 'daemon.json')}`);
});

test('the token file: read and trimmed; unreadable is an error that explains it', async (t) => {
  const dir = await tempDir(t);
  const tokenFile = join(dir, 'api-token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  assert.equal(await readDaemonToken({ tokenFile }), TOKEN);
  const { url } = await daemon(t);
  const client = await DaemonClient.connect({ pid: process.pid, url, tokenFile, startedAt: '' });
  assert.equal((await client.list()).items.length, 1);

  // A daemon whose token is configured as a value names no file: the CLI brings the same setting.
  await writeDaemonFile(dir, { pid: process.pid, url, startedAt: '' });
  const named = await findDaemon(dir);
  assert.ok(named && named.tokenFile === undefined);
  await assert.rejects(DaemonClient.connect(named), (error: PmError) => error.code === 'E_TOKEN' && /PM_API_TOKEN/.test(error.hint ?? ''));
  assert.equal((await (await DaemonClient.connect(named, TOKEN)).list()).items.length, 1);

  const missing = join(dir, 'missing');
  await assert.rejects(readDaemonToken({ tokenFile: missing }), (error: PmError) => error.code === 'E_TOKEN' && error.message === `cannot read the daemon's API token file ${missing}: ENOENT`);
  const directory = join(dir, 'a-directory');
  await mkdir(directory);
  await assert.rejects(readDaemonToken({ tokenFile: directory }), (error: PmError) => error.code === 'E_TOKEN' && error.message.endsWith('EISDIR'));
  if (process.getuid?.() === 0) {
    t.diagnostic('permission denial not checked: root reads any file');
    return;
  }
  await chmod(tokenFile, 0o000);
  await assert.rejects(readDaemonToken({ tokenFile }), (error: PmError) => error.code === 'E_TOKEN' && /EACCES/.test(error.message) && /mode 0600/.test(error.hint ?? ''));
  assert.equal(await readFile(tokenFile, 'utf8').catch(() => 'unreadable'), 'unreadable');
});
