// How the CLI reaches a running daemon. The daemon announces itself in <stateDir>/daemon.json
// (where it listens, where its token is); the CLI reads that file, and speaks JSON over the unix
// socket when there is one (no port to guess, and file permissions guard it) or else over TCP.
// Every call has a deadline and can be cancelled, so a stuck daemon never hangs a command.
import { readFile, unlink } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { ApplyRequest, ApplyResponse, ControlResult, ControlVerb, DaemonEvent, ProcessStatus } from '../daemon/api.js';
import { ExitCode, PmError } from '../errors.js';
import { writeFileAtomic } from '../store/atomic.js';

/** The content of daemon.json: written by the daemon once it listens, removed when it stops. */
export interface DaemonEndpoint {
  pid: number;
  url?: string;
  socket?: string;
  /**
   * The file holding the API token, readable by the daemon's user only. Absent when the daemon's
   * token is configured as a value (apiToken / PM_API_TOKEN): a CLI then needs the same setting.
   */
  tokenFile?: string;
  /** ISO time. */
  startedAt: string;
  /** Its hostName: what pm.flags rows for it are addressed to. */
  hostName?: string;
}

export const DAEMON_FILE = 'daemon.json';

export interface RequestOptions {
  /** Deadline for the whole exchange, ms (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A non-2xx answer from the daemon: its error code, message and hint, the HTTP status, and the body as sent (e.g. an ApplyResponse with every error). */
export class DaemonError extends PmError {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, error: { code: string; message: string; hint?: string }, body: unknown) {
    super(error.code, error.message, { hint: error.hint, exitCode: status === 400 || status === 422 ? ExitCode.invalid : ExitCode.failed });
    this.status = status;
    this.body = body;
  }
}

/** The daemon using this state directory, or undefined when none runs (no daemon.json, or its pid is gone). */
export async function findDaemon(stateDir: string): Promise<DaemonEndpoint | undefined> {
  const path = join(stateDir, DAEMON_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PmError('E_DAEMON_FILE', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  const endpoint = parseEndpoint(text);
  if (!endpoint) {
    throw new PmError('E_DAEMON_FILE', `${path} is not a daemon file pm can read`, { hint: `if no pm daemon is running, remove ${path}` });
  }
  return isAlive(endpoint.pid) ? endpoint : undefined;
}

/** For the daemon: announces it. Atomic, so a CLI never reads half a file; 0600, as it names the token file. */
export async function writeDaemonFile(stateDir: string, info: DaemonEndpoint): Promise<void> {
  await writeFileAtomic(join(stateDir, DAEMON_FILE), `${JSON.stringify(info, null, 2)}\n`, 0o600);
}

/** For the daemon, when stopping: removes daemon.json if it still names `pid`, never a successor's. */
export async function removeDaemonFile(stateDir: string, pid: number): Promise<void> {
  const path = join(stateDir, DAEMON_FILE);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  // A successor could only write between this read and the unlink if two daemons ran at once on
  // one state directory, which its lock prevents.
  if (text !== undefined && parseEndpoint(text)?.pid === pid) await unlink(path).catch(() => undefined);
}

/** Reads the daemon's API token from the file daemon.json names. */
export async function readDaemonToken(endpoint: { tokenFile: string }): Promise<string> {
  let text: string;
  try {
    text = await readFile(endpoint.tokenFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PmError('E_TOKEN', `cannot read the daemon's API token file ${endpoint.tokenFile}: ${code ?? (error as Error).message}`, {
      hint:
        code === 'EACCES'
          ? 'the token file is readable only by the user the daemon runs as (mode 0600): run pm as that user'
          : 'the daemon named in daemon.json may have been started with another state directory or token file; check `pm daemon` logs',
      cause: error,
    });
  }
  const token = text.trim();
  if (token === '') throw new PmError('E_TOKEN', `the daemon's API token file ${endpoint.tokenFile} is empty`);
  return token;
}

export class DaemonClient {
  private readonly target: { socketPath: string } | { host: string; port: number };
  /** Where the daemon is, for messages. */
  readonly where: string;
  private readonly actor = currentUser();

  constructor(
    private readonly endpoint: Pick<DaemonEndpoint, 'url' | 'socket'> & { pid?: number },
    private readonly token: string,
  ) {
    if (endpoint.socket !== undefined) {
      this.target = { socketPath: endpoint.socket };
      this.where = `unix socket ${endpoint.socket}`;
    } else if (endpoint.url !== undefined) {
      const url = new URL(endpoint.url);
      if (url.protocol !== 'http:') throw new PmError('E_DAEMON_FILE', `unsupported daemon URL ${endpoint.url}: only http is spoken`);
      this.target = { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) };
      this.where = endpoint.url;
    } else {
      throw new PmError('E_DAEMON_FILE', 'the daemon endpoint names neither a socket nor a URL');
    }
  }

  /**
   * A client for the daemon daemon.json names, with its token read from the token file it names;
   * `configuredToken` (the CLI's own apiToken / PM_API_TOKEN) serves when the daemon names none.
   */
  static async connect(endpoint: DaemonEndpoint, configuredToken?: string): Promise<DaemonClient> {
    if (endpoint.tokenFile !== undefined) return new DaemonClient(endpoint, await readDaemonToken({ tokenFile: endpoint.tokenFile }));
    if (configuredToken !== undefined) return new DaemonClient(endpoint, configuredToken);
    throw new PmError('E_TOKEN', `the pm daemon (pid ${endpoint.pid}) uses a configured API token, and this command has none`, {
      hint: 'set the same apiToken (config file) or PM_API_TOKEN for this command as for the daemon',
    });
  }

  list(options?: RequestOptions): Promise<{ items: ProcessStatus[] }> {
    return this.request('GET', '/api/v1/processes', undefined, options);
  }

  get(name: string, options?: RequestOptions): Promise<{ process: ProcessStatus; events: DaemonEvent[] }> {
    return this.request('GET', `/api/v1/processes/${encodeURIComponent(name)}`, undefined, options);
  }

  events(filter: { process?: string; limit?: number } = {}, options?: RequestOptions): Promise<{ items: DaemonEvent[] }> {
    const query = new URLSearchParams();
    if (filter.process !== undefined) query.set('process', filter.process);
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const suffix = query.size > 0 ? `?${query.toString()}` : '';
    return this.request('GET', `/api/v1/events${suffix}`, undefined, options);
  }

  /** Resolves with the plan when accepted; an invalid set rejects with a DaemonError (exitCode invalid) whose body is the ApplyResponse. */
  apply(body: ApplyRequest, options?: RequestOptions): Promise<ApplyResponse & { ok: true }> {
    return this.request('POST', '/api/v1/apply', body, options);
  }

  control(verb: ControlVerb, name: string, options?: RequestOptions): Promise<ControlResult> {
    return this.request('POST', `/api/v1/processes/${encodeURIComponent(name)}/${verb}`, undefined, options);
  }

  delete(names: string[], options?: RequestOptions): Promise<{ results: ControlResult[] }> {
    return this.request('POST', '/api/v1/delete', { names }, options);
  }

  /** One JSON exchange. Rejects with a DaemonError for a non-2xx answer, a PmError when the daemon cannot be reached or is too slow, and the signal's reason when aborted. */
  request<T>(method: 'GET' | 'POST', path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    const { timeoutMs = 30_000, signal } = options;
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = httpRequest({
        ...this.target,
        method,
        path,
        // One connection per call: a pooled socket would keep the CLI alive after its last request.
        agent: false,
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${this.token}`,
          'x-pm-actor': this.actor,
          ...(payload && { 'content-type': 'application/json', 'content-length': payload.length }),
        },
      });
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        outcome();
      };
      const fail = (error: unknown) => {
        settle(() => reject(error));
        req.destroy();
      };
      const timer = setTimeout(() => {
        fail(new PmError('E_DAEMON_TIMEOUT', `the pm daemon at ${this.where} did not answer ${method} ${path} within ${timeoutMs} ms`, { hint: 'it may be overloaded or stuck; check `pm daemon` logs' }));
      }, timeoutMs);
      const onAbort = () => fail(abortReason(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (error: NodeJS.ErrnoException) => fail(this.unreachable(error)));
      req.once('response', (res) => {
        readBody(res).then(
          (text) =>
            settle(() => {
              try {
                if (isSuccess(res)) resolve(parseSuccess<T>(text, this.where));
                else reject(parseFailure(res.statusCode ?? 0, text));
              } catch (error) {
                reject(error);
              }
            }),
          (error: NodeJS.ErrnoException) => fail(this.unreachable(error)),
        );
      });
      req.end(payload);
    });
  }

  private unreachable(error: NodeJS.ErrnoException): PmError {
    const who = this.endpoint.pid === undefined ? 'the pm daemon' : `the pm daemon (pid ${this.endpoint.pid})`;
    return new PmError('E_DAEMON_UNREACHABLE', `${who} is not answering at ${this.where}: ${error.code ?? error.message}`, {
      hint: 'the daemon named in daemon.json is not answering; check `pm daemon` logs',
      cause: error,
    });
  }
}

function isSuccess(res: IncomingMessage): boolean {
  const status = res.statusCode ?? 0;
  return status >= 200 && status < 300;
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    // A connection cut mid-body ends in 'aborted'/'close' without 'end' on some versions.
    res.once('close', () => {
      if (!res.complete) reject(Object.assign(new Error('the connection closed before the answer was complete'), { code: 'ECONNRESET' }));
    });
  });
}

function parseSuccess<T>(text: string, where: string): T {
  if (text.trim() === '') return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new PmError('E_DAEMON_PROTOCOL', `the answer from ${where} is not JSON`, { hint: 'is something other than pm listening there?' });
  }
}

function parseFailure(status: number, text: string): DaemonError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const error = (body as { error?: unknown } | null)?.error as { code?: unknown; message?: unknown; hint?: unknown } | undefined;
  if (typeof error?.code === 'string' && typeof error.message === 'string') {
    return new DaemonError(status, { code: error.code, message: error.message, ...(typeof error.hint === 'string' && { hint: error.hint }) }, body);
  }
  return new DaemonError(status, { code: `E_HTTP_${status}`, message: `the daemon answered HTTP ${status}${typeof body === 'string' && body.trim() ? `: ${body.trim().slice(0, 200)}` : ''}` }, body);
}

function parseEndpoint(text: string): DaemonEndpoint | undefined {
  try {
    const value = JSON.parse(text) as Partial<DaemonEndpoint> | null;
    if (!value || !Number.isInteger(value.pid) || (value.pid as number) <= 0) return undefined;
    if ((value.tokenFile !== undefined && typeof value.tokenFile !== 'string') || typeof value.startedAt !== 'string') return undefined;
    if (value.url !== undefined && typeof value.url !== 'string') return undefined;
    if (value.socket !== undefined && typeof value.socket !== 'string') return undefined;
    if (value.url === undefined && value.socket === undefined) return undefined;
    if (value.hostName !== undefined && typeof value.hostName !== 'string') return undefined;
    return {
      pid: value.pid as number,
      ...(value.url !== undefined && { url: value.url }),
      ...(value.socket !== undefined && { socket: value.socket }),
      ...(value.tokenFile !== undefined && { tokenFile: value.tokenFile }),
      startedAt: value.startedAt,
      ...(value.hostName !== undefined && { hostName: value.hostName }),
    };
  } catch {
    return undefined;
  }
}

/** Signal 0 checks existence without signalling; EPERM means it exists but belongs to another user. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function abortReason(signal: AbortSignal | undefined): unknown {
  return signal?.reason ?? new DOMException('the request was aborted', 'AbortError');
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry (e.g. an arbitrary uid in a container).
    return process.env.USER ?? `uid ${process.getuid?.() ?? '?'}`;
  }
}
