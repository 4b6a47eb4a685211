// pm's way to PostgreSQL: a pool for queries and transactions, a dedicated connection per LISTEN
// channel that comes back by itself after loss, and a health status (up / down, since when, why)
// that a background probe restores once the server answers again. Every reconnect waits an
// exponential backoff with full jitter. Messages and logs name the connection only by
// settings.display: the password stays inside the driver's configuration.
import pg from 'pg';
import { ExitCode, PmError } from '../errors.js';
import { classifyDatabaseError, DatabaseError } from './errors.js';
import { poolOptions, type DatabaseSettings } from './settings.js';

export interface DatabaseLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface DatabaseOptions {
  /** Most pooled connections (the LISTEN connections are extra). */
  poolSize: number;
  /** How long opening a connection, or waiting for a free pooled one, may take. */
  connectTimeoutMs: number;
  /** The server cancels a statement running longer; the client gives up a little later. */
  statementTimeoutMs: number;
  /** Shown in pg_stat_activity: the pool as NAME, each LISTEN connection as NAME-listen. Default 'pm'. */
  applicationName?: string;
  /** How long an unused pooled connection stays open. Default 30 s. */
  idleTimeoutMs?: number;
  /** Reconnect backoff: a random delay up to min(cap, base·2^attempt). Defaults 100 ms and 30 s. */
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  logger?: DatabaseLogger;
  /** [0, 1), for the jitter. Default Math.random. */
  random?: () => number;
  /** Epoch milliseconds, for health().since. Default Date.now. */
  now?: () => number;
}

export interface DatabaseHealth {
  up: boolean;
  /** When `up` last changed (or the Database was made), ISO 8601. */
  since: string;
  /** The last connection-level failure, kept after recovery for diagnosis. */
  lastError?: string;
  /** How many times the database came back after being down. */
  reconnects: number;
}

export type HealthListener = (up: boolean, error?: DatabaseError) => void;

/** A LISTEN subscription; close() ends its connection and any pending reconnect. Idempotent. */
export interface Listener {
  readonly channel: string;
  close(): Promise<void>;
}

/**
 * 'unknown' until the first query or LISTEN connect settles it; 'down' after a connection-level
 * failure, while the probe runs; 'closed' is final.
 */
export type DatabaseState = 'unknown' | 'up' | 'down' | 'closed';

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from [0, min(cap, base·2^attempt)) in
 * whole milliseconds, attempt counting from 0. Spreading retries over the whole window keeps
 * clients that lost the server at the same moment from all coming back at the same moment.
 */
export function backoffDelay(attempt: number, random: () => number, baseMs: number, capMs: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
  return Math.min(ceiling, Math.floor(random() * ceiling));
}

const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN']);
/** The server ended or refused the session: admin command, crash, shutdown, starting up, full. */
const SESSION_CODES = new Set(['57P01', '57P02', '57P03', '53300']);
/** What node-postgres says, with no code, when its socket went away or stopped answering. */
const LOST_MESSAGE = /^(Connection terminated|Query read timeout|Client has encountered a connection error|timeout expired)/;
/** pg-pool's message when no pooled connection came free in time: the server is busy, not gone. */
const POOL_BUSY_MESSAGE = 'timeout exceeded when trying to connect';
/** How much longer than statement_timeout the client waits before it gives up on the server. */
const QUERY_TIMEOUT_MARGIN_MS = 1_000;
/** The first TCP keepalive probe on an idle connection (a LISTEN connection is idle for hours). */
const KEEPALIVE_DELAY_MS = 10_000;
/** A LISTEN channel pm can quote safely: an SQL identifier of at most 63 bytes. */
const CHANNEL = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

/** True when `error` means the connection is gone or the server cannot be reached, not a failed statement. */
export function isConnectionLoss(error: unknown): boolean {
  const cause = error instanceof DatabaseError ? error.cause : error;
  const { code, message } = (cause ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (SOCKET_CODES.has(code) || SESSION_CODES.has(code) || code.startsWith('08'))) return true;
  return typeof message === 'string' && LOST_MESSAGE.test(message);
}

interface CompiledOptions {
  poolSize: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  applicationName: string;
  idleTimeoutMs: number;
  reconnectBaseMs: number;
  reconnectCapMs: number;
  logger: DatabaseLogger;
  random: () => number;
  now: () => number;
}

const silent: DatabaseLogger = { info: () => undefined, warn: () => undefined };

function compileOptions(options: DatabaseOptions): CompiledOptions {
  const compiled: CompiledOptions = {
    poolSize: options.poolSize,
    connectTimeoutMs: options.connectTimeoutMs,
    statementTimeoutMs: options.statementTimeoutMs,
    applicationName: options.applicationName ?? 'pm',
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
    reconnectBaseMs: options.reconnectBaseMs ?? 100,
    reconnectCapMs: options.reconnectCapMs ?? 30_000,
    logger: options.logger ?? silent,
    random: options.random ?? Math.random,
    now: options.now ?? Date.now,
  };
  for (const key of ['poolSize', 'connectTimeoutMs', 'statementTimeoutMs', 'idleTimeoutMs', 'reconnectBaseMs', 'reconnectCapMs'] as const) {
    const value = compiled[key];
    if (!Number.isInteger(value) || value < 1) throw invalidOption(`database option ${key} must be a whole number of at least 1, not ${String(value)}`);
  }
  if (compiled.reconnectCapMs < compiled.reconnectBaseMs) throw invalidOption(`database option reconnectCapMs (${compiled.reconnectCapMs}) is below reconnectBaseMs (${compiled.reconnectBaseMs})`);
  return compiled;
}

function invalidOption(message: string): PmError {
  return new PmError('E_DB_CONFIG', message, { hint: 'fix the value in the database options', exitCode: ExitCode.invalid });
}

/** What a ChannelListener needs from its Database. */
interface ListenerHost {
  readonly display: string;
  readonly logger: DatabaseLogger;
  /** A client that close() waits for until its socket has closed. */
  newClient(): pg.Client;
  /** Counts connection-level failures: an operation that began before the last one proves nothing. */
  epoch(): number;
  up(epoch: number): void;
  down(error: unknown): void;
  delay(attempt: number): number;
  forget(listener: ChannelListener): void;
}

export class Database {
  readonly #display: string;
  readonly #options: CompiledOptions;
  readonly #pool: pg.Pool;
  /** Clients whose socket is not closed yet (failed connects included), so close() can wait for them. */
  readonly #open = new Set<pg.Client>();
  readonly #listeners = new Set<ChannelListener>();
  readonly #healthListeners = new Set<HealthListener>();
  readonly #host: ListenerHost;
  #state: DatabaseState = 'unknown';
  #since: number;
  #lastError: DatabaseError | undefined;
  #reconnects = 0;
  #epoch = 0;
  #probeAttempt = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #probing = false;
  #closed: Promise<void> | undefined;

  constructor(settings: DatabaseSettings, options: DatabaseOptions) {
    this.#display = settings.display;
    const o = (this.#options = compileOptions(options));
    this.#since = o.now();
    const common = {
      ...poolOptions(settings),
      connectionTimeoutMillis: o.connectTimeoutMs,
      statement_timeout: o.statementTimeoutMs,
      query_timeout: o.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    };
    const open = this.#open;
    /** Every client, pooled or listening, is known until its socket has closed ('end'). */
    class TrackedClient extends pg.Client {
      constructor(config?: pg.ClientConfig) {
        super(config);
        open.add(this);
        this.once('end', () => open.delete(this));
      }
    }
    // pg.Pool opens nothing until the first query.
    this.#pool = new pg.Pool({ ...common, max: o.poolSize, idleTimeoutMillis: o.idleTimeoutMs, application_name: o.applicationName, Client: TrackedClient });
    // An idle pooled client whose connection dies is reported here; without a listener the
    // process would crash on it.
    this.#pool.on('error', (error) => this.#failed(error));
    this.#host = {
      display: this.#display,
      logger: o.logger,
      newClient: () => new TrackedClient({ ...common, application_name: `${o.applicationName}-listen` }),
      epoch: () => this.#epoch,
      up: (epoch) => this.#markUp(epoch),
      down: (error) => this.#markDown(classifyDatabaseError(error, this.#display)),
      delay: (attempt) => backoffDelay(attempt, o.random, o.reconnectBaseMs, o.reconnectCapMs),
      forget: (listener) => this.#listeners.delete(listener),
    };
  }

  get state(): DatabaseState {
    return this.#state;
  }

  /**
   * One statement on a pooled connection. Failures are DatabaseErrors; a connection-level one marks
   * the database down. An abort stops the wait (for a connection or the answer) and rejects with the
   * signal's reason; a statement already sent runs on, bounded by statement_timeout.
   */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[], options: { signal?: AbortSignal } = {}): Promise<pg.QueryResult<T>> {
    const { signal } = options;
    if (this.#state === 'closed') return Promise.reject(this.#closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    const work = this.#execute<T>(sql, params, signal);
    return signal ? raceAbort(work, signal) : work;
  }

  /**
   * Runs `fn` between BEGIN and COMMIT on one pooled connection (ROLLBACK when it throws), released
   * on every path. Database failures come out as DatabaseErrors; whatever else `fn` throws, as is.
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#state === 'closed') throw this.#closedError();
    const epoch = this.#epoch;
    const client = await this.#acquire();
    // A checked-out client has no pool listener: an error between statements would crash the process.
    let broken: unknown;
    const onError = (error: unknown): void => void (broken ??= error);
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      this.#markUp(epoch);
      return result;
    } catch (error) {
      if (isConnectionLoss(error)) broken ??= error;
      if (broken === undefined) await client.query('ROLLBACK').catch((rollbackError: unknown) => void (broken = rollbackError));
      if (broken !== undefined) this.#failed(broken);
      throw isDriverError(error) ? classifyDatabaseError(error, this.#display) : error;
    } finally {
      client.off('error', onError);
      release(client, broken);
    }
  }

  /**
   * LISTENs on `channel` over a connection of its own, re-established after any loss with backoff
   * (at once when the probe finds the database back). `onConnected` runs after every (re)connect:
   * notifications sent while disconnected are lost, so the caller polls there for what it missed.
   * The first connect starts now, in the background. Losing a working LISTEN connection marks the
   * database down; a failed attempt to connect does not (the pool and its probe judge that).
   */
  listen(channel: string, onNotify: (payload: string) => void, onConnected: () => void): Listener {
    if (!CHANNEL.test(channel)) throw new PmError('E_DB_CONFIG', `LISTEN channel ${JSON.stringify(channel)} is not a plain identifier`, { hint: 'use letters, digits, _ and $ (not first), at most 63 characters', exitCode: ExitCode.invalid });
    if (this.#state === 'closed') throw this.#closedError();
    const listener = new ChannelListener(channel, this.#host, onNotify, onConnected);
    this.#listeners.add(listener);
    listener.connectNow();
    return listener;
  }

  health(): DatabaseHealth {
    return {
      up: this.#state === 'up',
      since: new Date(this.#since).toISOString(),
      ...(this.#lastError && { lastError: this.#lastError.message }),
      reconnects: this.#reconnects,
    };
  }

  /** Calls `listener` on every change between up and down; returns its unsubscribe. */
  onChange(listener: HealthListener): () => void {
    this.#healthListeners.add(listener);
    return () => this.#healthListeners.delete(listener);
  }

  /**
   * Ends the listeners, the probe and the pool (statements in flight finish first) and resolves
   * once every socket is closed. Idempotent: the same promise every time.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closed';
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    await Promise.all([...this.#listeners].map((listener) => listener.close()));
    // pool.end() resolves once no client is checked out, before their sockets have closed; a
    // refused connect, too, closes its socket a little after it failed.
    await this.#pool.end();
    await Promise.all([...this.#open].map((client) => new Promise((resolve) => client.once('end', resolve))));
    this.#options.logger.info({ database: this.#display }, 'database connections closed');
  }

  async #execute<T extends pg.QueryResultRow>(sql: string, params: unknown[] | undefined, signal: AbortSignal | undefined): Promise<pg.QueryResult<T>> {
    const epoch = this.#epoch;
    const client = await this.#acquire();
    if (signal?.aborted) {
      client.release();
      throw signal.reason;
    }
    let broken: unknown;
    const onError = (error: unknown): void => void (broken ??= error);
    client.on('error', onError);
    try {
      const result = await client.query<T>(sql, params);
      this.#markUp(epoch);
      return result;
    } catch (error) {
      if (broken !== undefined || isConnectionLoss(error)) this.#failed(broken ?? error);
      // A failed statement is reported before the server says whether it left a transaction open
      // (several statements after their own BEGIN): this connection's state is unknown, so it goes,
      // as pg-pool's own query() does it.
      broken ??= error;
      throw classifyDatabaseError(error, this.#display);
    } finally {
      client.off('error', onError);
      release(client, broken);
    }
  }

  /** A pooled client; failing to get one means the database cannot be reached (unless all are just busy). */
  async #acquire(): Promise<pg.PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (error) {
      const classified = classifyDatabaseError(error, this.#display);
      if (this.#state !== 'closed' && (error as Error).message !== POOL_BUSY_MESSAGE) this.#markDown(classified);
      throw classified;
    }
  }

  /** A failure seen on a connection: down when it is connection-level, else only logged. */
  #failed(error: unknown): void {
    const classified = classifyDatabaseError(error, this.#display);
    if (isConnectionLoss(error)) this.#markDown(classified);
    else this.#options.logger.warn({ database: this.#display, code: classified.code, error: classified.message }, 'database connection failed');
  }

  #markDown(error: DatabaseError): void {
    if (this.#state === 'closed') return;
    this.#epoch++;
    this.#lastError = error;
    if (this.#state === 'down') return;
    this.#state = 'down';
    this.#since = this.#options.now();
    this.#probeAttempt = 0;
    this.#options.logger.warn({ database: this.#display, code: error.code, error: error.message }, 'database unavailable; probing until it answers');
    this.#emit(false, error);
    this.#scheduleProbe();
  }

  /** Up, unless a connection-level failure happened after the operation that proves it began. */
  #markUp(epoch: number): void {
    if (this.#state === 'up' || this.#state === 'closed' || epoch !== this.#epoch) return;
    const wasDown = this.#state === 'down';
    this.#state = 'up';
    this.#since = this.#options.now();
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
    if (wasDown) this.#reconnects++;
    this.#options.logger.info({ database: this.#display, reconnects: this.#reconnects }, wasDown ? 'database available again' : 'database connected');
    this.#emit(true);
    // Listeners waiting out a backoff need not: the server answers.
    for (const listener of this.#listeners) listener.connectNow();
  }

  #emit(up: boolean, error?: DatabaseError): void {
    for (const listener of this.#healthListeners) {
      try {
        listener(up, error);
      } catch (thrown) {
        this.#options.logger.warn({ database: this.#display, error: String(thrown) }, 'a database health listener threw');
      }
    }
  }

  #scheduleProbe(): void {
    if (this.#state !== 'down' || this.#probeTimer !== undefined || this.#probing) return;
    const o = this.#options;
    const delay = backoffDelay(this.#probeAttempt++, o.random, o.reconnectBaseMs, o.reconnectCapMs);
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#probe();
    }, delay);
  }

  async #probe(): Promise<void> {
    this.#probing = true;
    try {
      await this.#execute('SELECT 1', undefined, undefined);
    } catch {
      // recorded by #execute
    } finally {
      this.#probing = false;
    }
    // Still down after a failure, or after a success that began before a newer failure.
    this.#scheduleProbe();
  }

  #closedError(): DatabaseError {
    return new DatabaseError('other', `the connection to ${this.#display} is closed`, 'pm is shutting down; nothing more is sent to the database', undefined);
  }
}

/** 'waiting' is a backoff between attempts; 'closed' is final. */
type ListenerState = 'waiting' | 'connecting' | 'listening' | 'closed';

class ChannelListener implements Listener {
  #state: ListenerState = 'waiting';
  /** The current connection; a client no longer here is stale and its events are ignored. */
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed: Promise<void> | undefined;

  constructor(
    readonly channel: string,
    private readonly host: ListenerHost,
    private readonly onNotify: (payload: string) => void,
    private readonly onConnected: () => void,
  ) {}

  /** Connects now when waiting (first start, or the database is back), dropping the backoff. */
  connectNow(): void {
    if (this.#state !== 'waiting') return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#connect();
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#state = 'closed';
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.host.forget(this);
      const client = this.#client;
      this.#client = undefined;
      // Resolves when the socket has closed (at once when it already had).
      await client?.end().catch(() => undefined);
    })();
    return this.#closed;
  }

  async #connect(): Promise<void> {
    this.#state = 'connecting';
    const epoch = this.host.epoch();
    const client = this.host.newClient();
    this.#client = client;
    // Both fire on a loss (an error, then the end); the first one counts.
    client.on('error', (error) => this.#lost(client, error));
    client.on('end', () => this.#lost(client, new Error('Connection terminated unexpectedly')));
    client.on('notification', (message) => {
      if (this.#client === client && message.channel === this.channel) this.#call('onNotify', () => this.onNotify(message.payload ?? ''));
    });
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
    } catch (error) {
      this.#lost(client, error);
      return;
    }
    if (this.#client !== client) return;
    this.#state = 'listening';
    this.#attempt = 0;
    this.host.logger.info({ database: this.host.display, channel: this.channel }, 'listening for notifications');
    this.host.up(epoch);
    if (!this.#closed) this.#call('onConnected', this.onConnected);
  }

  #lost(client: pg.Client, error: unknown): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    void client.end().catch(() => undefined);
    const wasListening = this.#state === 'listening';
    this.#state = 'waiting';
    // Losing a working connection says the database is gone. A failed attempt to reconnect does not
    // (the pool and its probe judge that): else a listener that cannot log in while the pool can
    // would flip health down, the probe up, which retries the listener at once, and so on.
    if (wasListening) this.host.down(error);
    // A health listener may have closed everything meanwhile.
    if (this.#closed) return;
    const delay = this.host.delay(this.#attempt++);
    this.host.logger.warn({ database: this.host.display, channel: this.channel, error: classifyDatabaseError(error, this.host.display).message, retryInMs: delay }, wasListening ? 'LISTEN connection lost; reconnecting' : 'LISTEN connection failed; retrying');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
  }

  #call(name: string, callback: () => void): void {
    try {
      callback();
    } catch (thrown) {
      this.host.logger.warn({ channel: this.channel, error: String(thrown) }, `the LISTEN ${name} callback threw`);
    }
  }
}

/** The work's outcome, or the signal's reason if it aborts first (the work's outcome is then dropped). */
function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    void work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A failure from the driver or the server, as opposed to one thrown by the caller's own code. */
function isDriverError(error: unknown): boolean {
  return error instanceof pg.DatabaseError || error instanceof DatabaseError || isConnectionLoss(error);
}

/**
 * Back to the pool when healthy; destroyed after a failure, or when a statement that succeeded left
 * a transaction open (a bare BEGIN): the next user must find an idle session.
 */
function release(client: pg.PoolClient, broken: unknown): void {
  if (broken !== undefined) client.release(broken instanceof Error ? broken : new Error(String(broken)));
  else if (client.getTransactionStatus() !== 'I') client.release(new Error('connection left inside a transaction'));
  else client.release();
}
