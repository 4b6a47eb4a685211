// The daemon's HTTP server: the routes of routes.ts on a TCP address, a unix socket, or both
// (one node:http server each, sharing the handler). Start-up failures are the user's to fix, so
// they come back as PmErrors naming the address and the setting that chose it.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { chmod, lstat, unlink } from 'node:fs/promises';
import type { DaemonApi } from '../daemon/api.js';
import { ExitCode, PmError } from '../errors.js';
import type { DaemonMetrics } from './metrics.js';
import { createHandler, type RouteLogger, type Transport } from './routes.js';

export interface ServerOptions {
  api: DaemonApi;
  metrics: DaemonMetrics;
  token: string;
  /** host:port; IPv6 as [::1]:7070; port 0 picks a free one. */
  listen?: string;
  /** Path of a unix socket to listen on too. */
  socket?: string;
  logger?: RouteLogger;
  /** Largest request body, bytes (default 32 MiB): room for thousands of manifests. */
  maxBodyBytes?: number;
  /** How long close() lets requests in flight finish before cutting their connections, ms (default 5000). */
  closeGraceMs?: number;
}

export interface RunningServer {
  /** `http://host:port` to reach the TCP listener (a wildcard address given as loopback). */
  url?: string;
  socket?: string;
  /** Stops listening, lets requests in flight finish (up to closeGraceMs), removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BODY = 32 * 1024 * 1024;
// requestTimeout bounds receiving a request, not answering it: a long apply is not cut short.
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
const SOCKET_PROBE_TIMEOUT_MS = 2_000;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  if (options.listen === undefined && options.socket === undefined) {
    throw new PmError('E_LISTEN', 'the API server has nowhere to listen', { hint: 'set listen (--listen, PM_LISTEN) or socket (--socket, PM_SOCKET)', exitCode: ExitCode.invalid });
  }
  const address = options.listen === undefined ? undefined : parseListen(options.listen);
  let closing = false;
  const handlerOptions = {
    api: options.api,
    metrics: options.metrics,
    token: options.token,
    logger: options.logger,
    maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY,
    // Answers sent while closing end their connection, so close() need not wait out keep-alive.
    closing: () => closing,
  };
  const make = (transport: Transport): Server => {
    const server = createServer(createHandler(handlerOptions, transport));
    server.requestTimeout = REQUEST_TIMEOUT_MS;
    server.headersTimeout = HEADERS_TIMEOUT_MS;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    return server;
  };

  const servers: Server[] = [];
  let url: string | undefined;
  let socketIno: number | undefined;
  try {
    if (address) {
      const server = make('tcp');
      servers.push(server);
      url = urlOf(await listenTcp(server, address.host, address.port));
    }
    if (options.socket !== undefined) {
      await clearStaleSocket(options.socket);
      const server = make('unix');
      servers.push(server);
      await listenOn(server, { path: options.socket }, () => `the unix socket ${options.socket}`, 'socket (--socket, PM_SOCKET)');
      // Anyone who can connect may try tokens; only the owner may connect. (The token is checked
      // regardless, so the instant between listen and chmod exposes nothing.)
      await chmod(options.socket, 0o600);
      socketIno = (await lstat(options.socket)).ino;
    }
  } catch (error) {
    await Promise.all(servers.map((server) => closeServer(server, 0)));
    throw error;
  }

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      await Promise.all(servers.map((server) => closeServer(server, options.closeGraceMs ?? 5_000)));
      if (options.socket !== undefined && socketIno !== undefined) await removeOwnSocket(options.socket, socketIno);
    })();
    return closed;
  };
  return { ...(url !== undefined && { url }), ...(options.socket !== undefined && { socket: options.socket }), close };
}

/** `127.0.0.1:7070`, `[::1]:7070`, `localhost:0` → host and port; a PmError naming the setting for anything else. */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || !(port <= 65_535)) {
    throw new PmError('E_LISTEN', `invalid listen address ${JSON.stringify(listen)}`, { hint: 'write host:port, an IPv6 host in brackets ([::1]:7070), port 0 to 65535', exitCode: ExitCode.invalid });
  }
  return { host, port };
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A URL a client on this machine can use: a wildcard address is reached through loopback. */
function urlOf(address: AddressInfo): string {
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address;
  return `http://${formatAddress(host, address.port)}`;
}

async function listenTcp(server: Server, host: string, port: number): Promise<AddressInfo> {
  await listenOn(server, { host, port }, () => `address ${formatAddress(host, port)}`, 'listen (--listen, PM_LISTEN)');
  return server.address() as AddressInfo;
}

function listenOn(server: Server, where: { host: string; port: number } | { path: string }, describe: () => string, setting: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(listenError(error, describe(), setting));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(where);
  });
}

function listenError(error: NodeJS.ErrnoException, what: string, setting: string): PmError {
  const hint = `choose another with ${setting}`;
  const because =
    error.code === 'EADDRINUSE'
      ? 'it is already in use (another pm daemon, or another program)'
      : error.code === 'EACCES'
        ? 'permission denied (ports below 1024 need privileges)'
        : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND'
          ? 'no network interface of this machine has that address'
          : error.message;
  return new PmError('E_LISTEN', `cannot listen on ${what}: ${because}`, { hint, exitCode: ExitCode.invalid, cause: error });
}

/**
 * A socket file left by a daemon that died is removed, so a restart needs no manual clean-up; one
 * that a live process answers on is left alone (two daemons must not share a socket), as is any
 * file that is not a socket.
 */
async function clearStaleSocket(path: string): Promise<void> {
  const stats = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!stats) return;
  const hint = 'choose another path with socket (--socket, PM_SOCKET)';
  if (!stats.isSocket()) throw new PmError('E_LISTEN', `cannot listen on the unix socket ${path}: the path exists and is not a socket`, { hint, exitCode: ExitCode.invalid });
  const answered = await new Promise<boolean | NodeJS.ErrnoException>((resolve) => {
    const probe = connect({ path });
    probe.setTimeout(SOCKET_PROBE_TIMEOUT_MS, () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED' ? false : error));
  });
  if (answered === false) {
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    return;
  }
  const because = answered === true ? 'another process is listening on it (is another pm daemon running?)' : answered.message;
  throw new PmError('E_LISTEN', `cannot listen on the unix socket ${path}: ${because}`, { hint, exitCode: ExitCode.invalid });
}

/** Stops accepting, closes idle keep-alive connections, and cuts the rest after `graceMs`. */
function closeServer(server: Server, graceMs: number): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Removes the socket file only if it is still the one this server made (libuv usually has already). */
async function removeOwnSocket(path: string, ino: number): Promise<void> {
  const stats = await lstat(path).catch(() => undefined);
  if (stats?.ino === ino) await unlink(path).catch(() => undefined);
}
