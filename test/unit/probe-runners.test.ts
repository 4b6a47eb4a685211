// Probe runners against real servers and real commands: http, tcp, exec, named ports, timeouts
// and aborts, and that no socket or process is left behind.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Port, Probe } from '../../src/manifest/types.js';
import { runProbe } from '../../src/probes/runners.js';
import { isAlive } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const timing = { initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 5, successThreshold: 1, failureThreshold: 3 };

function httpProbe(port: number | string, extra: Partial<NonNullable<Probe['http']>> = {}, timeoutSeconds = 5): Probe {
  return { ...timing, timeoutSeconds, http: { port, host: '127.0.0.1', path: '/', scheme: 'http', headers: {}, ...extra } };
}
function tcpProbe(port: number | string, timeoutSeconds = 5): Probe {
  return { ...timing, timeoutSeconds, tcp: { port, host: '127.0.0.1' } };
}
function execProbe(script: string, timeoutSeconds = 5): Probe {
  return { ...timing, timeoutSeconds, exec: { command: [process.execPath, '-e', script] } };
}

async function listen<S extends HttpServer | TcpServer>(t: TestContext, server: S): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    if ('closeAllConnections' in server) server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

async function httpServer(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: HttpServer; port: number }> {
  const server = createServer(handler);
  return { server, port: await listen(t, server) };
}

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

async function connectionCount(server: HttpServer | TcpServer): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

test('http: 200 succeeds, and the request carries path and headers', async (t) => {
  const seen: { url?: string; header?: string | string[] } = {};
  const { port } = await httpServer(t, (req, res) => {
    seen.url = req.url;
    seen.header = req.headers['x-probe'];
    res.end('fine');
  });
  const result = await runProbe(httpProbe(port, { path: '/healthz?deep=1', headers: { 'X-Probe': 'yes' } }), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: true, message: 'HTTP 200' });
  assert.deepEqual(seen, { url: '/healthz?deep=1', header: 'yes' });
  assert.ok(result.durationMs >= 0);
});

test('http: 3xx succeeds and is not followed', async (t) => {
  const urls: string[] = [];
  const { port } = await httpServer(t, (req, res) => {
    urls.push(req.url ?? '');
    if (req.url === '/') res.writeHead(302, { location: '/broken' }).end();
    else res.writeHead(500).end();
  });
  const result = await runProbe(httpProbe(port), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: true, message: 'HTTP 302' });
  assert.deepEqual(urls, ['/']);
});

test('http: 503 fails with the status in the message; the connection is closed', async (t) => {
  const { server, port } = await httpServer(t, (_req, res) => res.writeHead(503).end('x'.repeat(100_000)));
  const result = await runProbe(httpProbe(port), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: false, message: 'HTTP 503 Service Unavailable' });
  await waitFor(async () => (await connectionCount(server)) === 0, { message: 'server sees the connection closed' });
});

test('http: connection refused', async () => {
  const port = await closedPort();
  const result = await runProbe(httpProbe(port), { ports: [] });
  assert.equal(result.ok, false);
  assert.equal(result.message, `connect ECONNREFUSED 127.0.0.1:${port}`);
});

test('http: a server that never answers times out, and the socket is closed', async (t) => {
  const { server, port } = await httpServer(t, () => undefined);
  const result = await runProbe(httpProbe(port, {}, 0.2), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: false, message: 'timed out after 0.2s' });
  await waitFor(async () => (await connectionCount(server)) === 0, { message: 'server sees the connection closed' });
});

test('http: an abort ends the probe at once, and the socket is closed', async (t) => {
  const controller = new AbortController();
  const { server, port } = await httpServer(t, () => controller.abort());
  const result = await runProbe(httpProbe(port), { ports: [], signal: controller.signal });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: false, message: 'aborted' });
  await waitFor(async () => (await connectionCount(server)) === 0, { message: 'server sees the connection closed' });
  const again = await runProbe(httpProbe(port), { ports: [], signal: controller.signal });
  assert.equal(again.message, 'aborted', 'an already aborted signal does not start a probe');
});

test('named ports resolve through spec.ports; an unknown name fails', async (t) => {
  const { port } = await httpServer(t, (_req, res) => res.end());
  const tcp = createTcpServer((socket) => socket.destroy());
  const tcpPort = await listen(t, tcp);
  const ports: Port[] = [
    { name: 'web', port, protocol: 'tcp' },
    { name: 'raw', port: tcpPort, protocol: 'tcp' },
  ];

  assert.equal((await runProbe(httpProbe('web'), { ports })).message, 'HTTP 200');
  assert.equal((await runProbe(tcpProbe('raw'), { ports })).ok, true);
  const unknown = await runProbe(httpProbe('admin'), { ports });
  assert.deepEqual({ ok: unknown.ok, message: unknown.message }, { ok: false, message: 'port "admin" is not declared in spec.ports (declared: web, raw)' });
});

test('tcp: succeeds on connect and closes the connection; refused fails', async (t) => {
  const server = createTcpServer(() => undefined);
  const port = await listen(t, server);
  const result = await runProbe(tcpProbe(port), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: true, message: `connected to 127.0.0.1:${port}` });
  await waitFor(async () => (await connectionCount(server)) === 0, { message: 'server sees the connection closed' });

  const refusedPort = await closedPort();
  const refused = await runProbe(tcpProbe(refusedPort), { ports: [] });
  assert.deepEqual({ ok: refused.ok, message: refused.message }, { ok: false, message: `connect ECONNREFUSED 127.0.0.1:${refusedPort}` });
});

test('exec: exit 0 succeeds; a failure reports the code and the first line of stderr', async () => {
  const ok = await runProbe(execProbe('process.exit(0)'), { ports: [] });
  assert.deepEqual({ ok: ok.ok, message: ok.message }, { ok: true, message: 'exit code 0' });

  const failed = await runProbe(execProbe("console.log('on stdout'); console.error('\\ndatabase down\\nsecond line'); process.exit(2)"), { ports: [] });
  assert.deepEqual({ ok: failed.ok, message: failed.message }, { ok: false, message: 'exit code 2: database down' });

  const quiet = await runProbe(execProbe('process.exit(1)'), { ports: [] });
  assert.equal(quiet.message, 'exit code 1');

  const loud = await runProbe(execProbe("process.stdout.write('y'.repeat(1 << 20)); process.exitCode = 1"), { ports: [] });
  assert.equal(loud.ok, false, 'a command writing a lot of output does not block');
  assert.equal(loud.message, `exit code 1: ${'y'.repeat(200)}`);
});

test('exec: runs without a shell, in the given cwd and environment', async (t) => {
  const dir = await tempDir(t);
  const script = 'process.exit(process.cwd() === process.env.WANT_CWD && process.env.WANT_CWD !== undefined ? 0 : 1)';
  const result = await runProbe(execProbe(script), { ports: [], cwd: dir, env: { WANT_CWD: dir } });
  assert.equal(result.message, 'exit code 0');

  const shellish = await runProbe({ ...timing, exec: { command: ['true && false'] } }, { ports: [] });
  assert.deepEqual({ ok: shellish.ok, message: shellish.message }, { ok: false, message: 'command "true && false" not found' });
});

test('exec: a timeout kills the probe command and everything it started', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'pids');
  const script = `
    const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    require('fs').writeFileSync(${JSON.stringify(pidFile)}, process.pid + ' ' + c.pid);
    setInterval(() => {}, 1000);`;
  const result = await runProbe(execProbe(script, 1), { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: false, message: 'timed out after 1s' });

  const pids = (await readFile(pidFile, 'utf8')).split(' ').map(Number);
  assert.equal(pids.length, 2);
  // The probe resolves after its command was reaped; the grandchild was killed with the group.
  assert.equal(isAlive(pids[0]!), false);
  await waitFor(() => !isAlive(pids[1]!), { message: 'grandchild killed' });
});

test('a probe with no kind fails', async () => {
  const result = await runProbe({ ...timing }, { ports: [] });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: false, message: 'probe has none of exec, http, tcp, notify' });
});

test('exec: a background child holding stdout does not outlive the probe, nor hold it open', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'grandchild');
  // The command exits 0 at once; its child inherits stdout and would run for ever.
  const script = `
    const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'inherit', 'inherit'] });
    require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));
    process.exit(0);`;
  const result = await runProbe(execProbe(script, 10), { ports: [] });
  const grandchild = Number(await readFile(pidFile, 'utf8'));
  t.after(() => {
    if (isAlive(grandchild)) process.kill(grandchild, 'SIGKILL');
  });
  assert.deepEqual({ ok: result.ok, message: result.message }, { ok: true, message: 'exit code 0' }, 'the exit code decides, not the timeout');
  // The probe resolved once the grandchild closed stdout, i.e. once it was exiting.
  await waitFor(() => !isAlive(grandchild), { message: 'the grandchild to be gone' });
});

test('exec: runs as the process user and group', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: only root can run a probe as another user');
    return;
  }
  const probe: Probe = { ...timing, exec: { command: ['sh', '-c', 'echo "$(id -u):$(id -g):$(id -G)"; exit 3'] } };
  const result = await runProbe(probe, { ports: [], uid: 65534, gid: 65534 });
  assert.equal(result.message, 'exit code 3: 65534:65534:65534', 'uid, gid, and no supplementary groups of pm');
  const asPm = await runProbe(probe, { ports: [] });
  assert.match(asPm.message, /^exit code 3: 0:0:/);
});
