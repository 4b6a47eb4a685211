// The daemon's HTTP routes. Each handler turns a request into a Reply value (or throws an
// HttpError); one place writes replies, so every error has the same JSON shape and status rules.
//
// Authentication: everything under /api/ needs the bearer token, reads included, since a process's
// status reveals its command line and labels. /healthz, /readyz and /metrics are open, as the
// kubelet's are: a load balancer or Prometheus must reach them without a secret, and they say
// nothing a process listing would (metrics carry process names and states, no commands).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ApplyRequest, ControlVerb, DaemonApi } from '../daemon/api.js';
import { ExitCode, NotFoundError, PmError } from '../errors.js';
import { checkBearer } from './auth.js';
import type { DaemonMetrics } from './metrics.js';

export interface RouteLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface HandlerOptions {
  api: DaemonApi;
  metrics: DaemonMetrics;
  token: string;
  /** Largest request body accepted, in bytes; larger ones get 413. */
  maxBodyBytes: number;
  logger?: RouteLogger | undefined;
  /** True once the server is shutting down: answers then close their connection instead of keeping it alive. */
  closing?: () => boolean;
}

/** How the request arrived: named in the actor, since a unix socket has no remote address. */
export type Transport = 'tcp' | 'unix';

/** The manifest's name rule (schemas/process.schema.json, definitions.Name): a DNS-1123 label. */
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME_MAX = 63;
const EVENTS_LIMIT_MAX = 10_000;
const ACTOR_MAX = 100;
const CONTROL_VERBS: readonly ControlVerb[] = ['restart', 'pause', 'resume', 'reset'];

type Reply = ({ status: number; json: unknown } | { status: number; text: string; contentType: string }) & { headers?: Record<string, string> };

/** A failure with its HTTP status; the body is `{"error": {code, message, hint}}`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Request {
  req: IncomingMessage;
  query: URLSearchParams;
  actor: string;
}

type Handler = (request: Request) => Reply | Promise<Reply>;
type Route = Partial<Record<'GET' | 'POST', Handler>>;

export function createHandler(options: HandlerOptions, transport: Transport): (req: IncomingMessage, res: ServerResponse) => void {
  const { api, metrics, logger } = options;
  const readJson = (req: IncomingMessage): Promise<unknown> => readJsonBody(req, options.maxBodyBytes);

  /** The handlers for a path split on '/' (segments still encoded); undefined for an unknown path. Throws for a bad name in the path. */
  function match(segments: string[]): Route | undefined {
    const [first, ...rest] = segments;
    if (rest.length === 0) {
      if (first === 'healthz') return { GET: () => ({ status: 200, json: { status: 'ok', ...api.info() } }) };
      if (first === 'readyz') {
        return {
          GET: () => {
            const report = api.readiness();
            return { status: report.ready ? 200 : 503, json: report };
          },
        };
      }
      if (first === 'metrics') {
        return {
          GET: async () => {
            const { body, contentType } = await metrics.render();
            return { status: 200, text: body, contentType };
          },
        };
      }
      return undefined;
    }
    if (first !== 'api' || rest[0] !== 'v1') return undefined;
    const [resource, segment, verb, ...extra] = rest.slice(1);
    if (extra.length > 0) return undefined;
    if (resource === 'processes') {
      if (segment === undefined) return { GET: () => ({ status: 200, json: { items: api.list() } }) };
      if (verb !== undefined && !CONTROL_VERBS.includes(verb as ControlVerb)) return undefined;
      const name = checkName(decodeSegment(segment));
      if (verb !== undefined) return { POST: async ({ actor }) => ({ status: 200, json: await api.control(verb as ControlVerb, name, actor) }) };
      return {
        GET: () => {
          const process = api.get(name);
          if (!process) throw notFound(name);
          return { status: 200, json: { process, events: api.events(name) } };
        },
      };
    }
    if (segment !== undefined) return undefined;
    if (resource === 'events') {
      return {
        GET: ({ query }) => {
          const process = query.get('process') || undefined;
          if (process !== undefined) checkName(process);
          return { status: 200, json: { items: api.events(process, parseLimit(query.get('limit'))) } };
        },
      };
    }
    if (resource === 'apply') {
      return {
        POST: async ({ req, actor }) => {
          const response = await api.apply(parseApplyRequest(await readJson(req)), actor);
          if (response.ok) return { status: 200, json: response };
          // The body stays an ApplyResponse, errors in full, and also carries the error envelope
          // every client understands.
          const count = `${response.errors.length} problem${response.errors.length === 1 ? '' : 's'}`;
          const error = { code: 'E_MANIFEST', message: [`${count} in the manifests; nothing was changed`, ...response.errors].join('\n'), hint: 'fix the manifests and apply again' };
          return { status: 422, json: { ...response, error } };
        },
      };
    }
    if (resource === 'delete') {
      return { POST: async ({ req, actor }) => ({ status: 200, json: { results: await api.delete(parseNames(await readJson(req)), actor) } }) };
    }
    return undefined;
  }

  async function respond(req: IncomingMessage, path: string, query: string): Promise<Reply> {
    if (path === '/api' || path.startsWith('/api/')) authenticate(req, options.token);
    const route = match(path.split('/').slice(1));
    if (!route) throw new HttpError(404, 'E_NO_ROUTE', `no such endpoint: ${path}`);
    const handler = route[(req.method === 'HEAD' ? 'GET' : req.method) as 'GET' | 'POST'];
    if (!handler) {
      const allow = Object.keys(route).flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m]));
      throw new HttpError(405, 'E_METHOD', `${req.method ?? '?'} is not allowed on ${path}`, `use ${allow.join(' or ')}`, { allow: allow.join(', ') });
    }
    return handler({ req, query: new URLSearchParams(query), actor: actorOf(req, transport) });
  }

  return (req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const split = url.indexOf('?');
    const [path, query] = split === -1 ? [url, ''] : [url.slice(0, split), url.slice(split + 1)];
    if (logger && req.method !== 'GET' && req.method !== 'HEAD') {
      // 'close' comes once, whether the reply was sent or the client went away first.
      res.once('close', () => {
        const entry = { method: req.method, path, status: res.statusCode, ms: Math.round(performance.now() - started), actor: actorOf(req, transport) };
        logger.info(res.writableFinished ? entry : { ...entry, aborted: true }, 'api request');
      });
    }
    respond(req, path, query).then(
      (reply) => send(res, reply, options.closing?.()),
      (error: unknown) => send(res, errorReply(error, logger, req.method ?? '?', path), options.closing?.()),
    );
  };
}

function send(res: ServerResponse, reply: Reply, closing = false): void {
  if (res.headersSent) return;
  if (closing) res.setHeader('connection', 'close');
  const { body, contentType } = 'json' in reply ? { body: `${JSON.stringify(reply.json)}\n`, contentType: 'application/json; charset=utf-8' } : { body: reply.text, contentType: reply.contentType };
  res.writeHead(reply.status, {
    ...reply.headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
  });
  res.end(body);
}

/** The reply for a thrown error: the daemon's own errors keep their code, message and hint; anything else is a 500 that is logged, not shown. */
function errorReply(error: unknown, logger: RouteLogger | undefined, method: string, path: string): Reply {
  const envelope = (status: number, code: string, message: string, hint?: string, headers?: Record<string, string>): Reply => ({ status, json: { error: { code, message, ...(hint !== undefined && { hint }) } }, ...(headers && { headers }) });
  if (error instanceof HttpError) return envelope(error.status, error.code, error.message, error.hint, error.headers);
  if (error instanceof PmError) {
    const status = error instanceof NotFoundError ? 404 : error.exitCode === ExitCode.invalid ? 422 : error.exitCode === ExitCode.busy ? 409 : 500;
    return envelope(status, error.code, error.message, error.hint);
  }
  logger?.warn({ method, path, err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) }, 'api request failed');
  return envelope(500, 'E_INTERNAL', 'the daemon failed to handle the request', "see the daemon's log");
}

function authenticate(req: IncomingMessage, token: string): void {
  if (checkBearer(req.headers.authorization, token)) return;
  // One message whether the header is missing or wrong, so a caller learns nothing about the token.
  throw new HttpError(401, 'E_AUTH', 'missing or invalid API token', 'send Authorization: Bearer <token>, the token being in the daemon\'s token file (apiTokenFile, or api-token in its state directory)', {
    'www-authenticate': 'Bearer realm="pm"',
  });
}

function notFound(name: string): HttpError {
  const error = new NotFoundError(name);
  return new HttpError(404, error.code, error.message, error.hint);
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, 'E_BAD_REQUEST', `malformed percent-encoding in the path: ${segment}`);
  }
}

function checkName(name: string): string {
  if (name.length <= NAME_MAX && NAME.test(name)) return name;
  throw new HttpError(400, 'E_BAD_NAME', `invalid process name ${JSON.stringify(name.slice(0, NAME_MAX + 1))}`, "a name is 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit");
}

function parseLimit(value: string | null): number | undefined {
  if (value === null || value === '') return undefined;
  const limit = Number(value);
  if (Number.isInteger(limit) && limit >= 1 && limit <= EVENTS_LIMIT_MAX) return limit;
  throw new HttpError(400, 'E_BAD_REQUEST', `limit must be an integer from 1 to ${EVENTS_LIMIT_MAX}, got ${JSON.stringify(value)}`);
}

/** `alice (127.0.0.1)`: who the client says it is (X-PM-Actor, cut to printable ASCII), and where it connected from. */
function actorOf(req: IncomingMessage, transport: Transport): string {
  const header = req.headers['x-pm-actor'];
  const claimed = (Array.isArray(header) ? header[0] : header)?.replace(/[^\x20-\x7e]/g, '').trim().slice(0, ACTOR_MAX).trim();
  const remote = transport === 'unix' ? 'via unix socket' : (req.socket.remoteAddress ?? 'unknown address').replace(/^::ffff:(?=\d+\.)/, '');
  return `${claimed || 'unknown'} (${remote})`;
}

/** Reads and parses a JSON body, refusing one larger than `max` bytes before reading it where its length is declared. */
function readJsonBody(req: IncomingMessage, max: number): Promise<unknown> {
  const tooLarge = () => new HttpError(413, 'E_TOO_LARGE', `the request body is larger than ${max} bytes`, 'send fewer or smaller manifests per request', { connection: 'close' });
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > max) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        // Stop buffering; the reply closes the connection, dropping the rest.
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('error', reject);
    req.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        reject(new HttpError(400, 'E_BAD_JSON', `the request body is not valid JSON: ${(error as Error).message}`));
      }
    });
  });
}

function badBody(message: string): HttpError {
  return new HttpError(400, 'E_BAD_REQUEST', message);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === 'string');

/** Checks the shape only; what the manifests say is the daemon's to judge. */
function parseApplyRequest(body: unknown): ApplyRequest {
  if (!isObject(body)) throw badBody('the body must be a JSON object');
  const { files, roots, prune, pruneSelector, dryRun, cwd } = body;
  if (!Array.isArray(files) || !files.every((f) => isObject(f) && typeof f.path === 'string' && typeof f.text === 'string')) {
    throw badBody('files must be an array of {path: string, text: string}');
  }
  if (!isStringArray(roots)) throw badBody('roots must be an array of strings');
  if (typeof prune !== 'boolean') throw badBody('prune must be a boolean');
  if (typeof dryRun !== 'boolean') throw badBody('dryRun must be a boolean');
  if (cwd !== undefined && (typeof cwd !== 'string' || !cwd.startsWith('/'))) throw badBody('cwd must be an absolute path');
  if (pruneSelector !== undefined && !(isObject(pruneSelector) && Object.values(pruneSelector).every((v) => typeof v === 'string'))) {
    throw badBody('pruneSelector must be an object of strings');
  }
  return {
    files: (files as { path: string; text: string }[]).map(({ path, text }) => ({ path, text })),
    roots,
    prune,
    dryRun,
    ...(pruneSelector !== undefined && { pruneSelector: pruneSelector as Record<string, string> }),
    ...(typeof cwd === 'string' && { cwd }),
  };
}

function parseNames(body: unknown): string[] {
  if (!isObject(body) || !isStringArray(body.names)) throw badBody('the body must be {"names": [string, ...]}');
  return body.names.map(checkName);
}
