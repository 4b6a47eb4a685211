// A real, throwaway PostgreSQL cluster for a test (startPostgres) or a test file
// (createPostgresCluster, from before/after): initdb in a fresh folder under /var/tmp, a server on
// a free port of 127.0.0.1 with its socket in that folder, and cleanup that stops it and removes the
// folder whether the test passed or failed. stop() and start() on the same port simulate an outage.
// initdb refuses root, so as root every PostgreSQL binary runs as the `postgres` user
// (../shared/ENVIRONMENT.md). Missing binaries skip the test, or fail it when PM_TEST_STRICT=1.
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import type { Migration } from '../../src/db/migrations.js';
import { isAlive } from './processes.js';
import { waitFor } from './wait.js';

export type PostgresAuth = 'trust' | 'scram';
export type PostgresStopMode = 'smart' | 'fast' | 'immediate';
/** 'running' after creation; stop() and start() move between the first two; destroy() is final. */
export type PostgresClusterState = 'running' | 'stopped' | 'destroyed';

export interface PostgresOptions {
  /** How TCP connections authenticate (the socket is always trust): default 'trust'. */
  auth?: PostgresAuth;
}

export interface PostgresCluster {
  readonly host: '127.0.0.1';
  /** Chosen once: start() after stop() comes back on the same port. */
  readonly port: number;
  /** The server's Unix socket folder (the superuser connects here, trusted). */
  readonly socketDir: string;
  readonly dataDir: string;
  readonly auth: PostgresAuth;
  /** `pm_test`, owned by `user`: what the code under test should use. */
  readonly database: string;
  /** `pm_test`: a login role that is not a superuser. */
  readonly user: string;
  /** Set with auth 'scram'; undefined with 'trust'. */
  readonly password: string | undefined;
  /** `postgres`, with a password over TCP when auth is 'scram'. */
  readonly superuser: { readonly user: string; readonly password: string | undefined };
  /** postgres://user[:password]@127.0.0.1:port/database */
  readonly url: string;
  /** The libpq variables for the same connection (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD). */
  readonly env: Readonly<Record<string, string>>;
  readonly state: PostgresClusterState;
  /** The running server's PID (from postmaster.pid), or undefined when none runs. */
  postmasterPid(): number | undefined;
  /** One statement as the superuser, in `database`, over the socket, on a short-lived client. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Stops the server (default 'immediate', like a crash) and waits until its process is gone. No-op when stopped. */
  stop(mode?: PostgresStopMode): Promise<void>;
  /** Starts it again on the same port. No-op when running. */
  start(): Promise<void>;
  /** The last lines of the server's log, for failure messages. */
  logTail(lines?: number): string;
  /** Stops the server if it runs and removes the folder; idempotent (the same promise every time). */
  destroy(): Promise<void>;
}

/** PostgreSQL is not installed, or cannot be run here. */
export class PostgresUnavailableError extends Error {
  override name = 'PostgresUnavailableError';
}

const PG_ROOT = '/usr/lib/postgresql';
const TMP_ROOT = '/var/tmp';
const DIR_PREFIX = 'pm-pg-';
const OWNER_FILE = 'owner.pid';
const SUPERUSER = 'postgres';
const TEST_ROLE = 'pm_test';
const TEST_DATABASE = 'pm_test';
const INITDB_TIMEOUT_MS = 60_000;
/** pg_ctl's own wait (-t, seconds), and the hard limit on the pg_ctl process itself. */
const PG_CTL_WAIT_S = 30;
const PG_CTL_TIMEOUT_MS = (PG_CTL_WAIT_S + 10) * 1000;
const CONNECT_TIMEOUT_MS = 5_000;
const STATEMENT_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 5;
/** A folder without an owner file this old is a leftover of a run killed during mkdtemp. */
const ORPHAN_AGE_MS = 60 * 60_000;

const strict = process.env.PM_TEST_STRICT === '1';
const missingHint = 'install the postgresql package (apt-get install -y postgresql; .ci/run does this)';

/** The highest-versioned /usr/lib/postgresql/N/bin holding initdb and pg_ctl, or undefined. */
export function postgresBinDir(): string | undefined {
  let versions: string[];
  try {
    versions = readdirSync(PG_ROOT).filter((name) => /^\d+(\.\d+)?$/.test(name));
  } catch {
    return undefined;
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(PG_ROOT, v, 'bin')).find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl')));
}

/** Why PostgreSQL cannot run here, or undefined when it can. */
function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `PostgreSQL tests run on Linux only (this is ${process.platform})`;
  if (!postgresBinDir()) return `PostgreSQL server binaries not found (no ${PG_ROOT}/*/bin/initdb): ${missingHint}`;
  if (process.getuid?.() === 0 && !postgresAccount()) return `running as root, but there is no \`postgres\` user to run initdb as: ${missingHint}`;
  return undefined;
}

/**
 * For test options: `test(name, { skip: postgresSkip() }, …)` or the same on describe(). The reason
 * to skip when PostgreSQL is missing; false when it is present, or under PM_TEST_STRICT=1 (so the
 * test runs and fails with the reason).
 */
export function postgresSkip(): string | false {
  const reason = unavailableReason();
  return reason !== undefined && !strict ? reason : false;
}

/**
 * A cluster for one test, destroyed when the test ends (pass or fail). Undefined when PostgreSQL is
 * missing: the test is then marked skipped and should return (under PM_TEST_STRICT=1 this throws).
 */
export async function startPostgres(t: TestContext, options: PostgresOptions = {}): Promise<PostgresCluster | undefined> {
  const skip = postgresSkip();
  if (skip !== false) {
    t.skip(skip);
    return undefined;
  }
  // Cleanup is registered before any work, so a test that fails or times out during set-up still removes it.
  return ThrowawayCluster.create(options, (cluster) => t.after(() => cluster.destroy()));
}

/**
 * A cluster for a whole file: `before(async () => { pg = await createPostgresCluster(); })` and
 * `after(() => pg?.destroy())`, with `{ skip: postgresSkip() }` on the tests or the describe().
 * Throws PostgresUnavailableError when PostgreSQL is missing.
 */
export function createPostgresCluster(options: PostgresOptions = {}): Promise<PostgresCluster> {
  return ThrowawayCluster.create(options);
}

type InternalState = 'initializing' | PostgresClusterState;

class ThrowawayCluster implements PostgresCluster {
  readonly host = '127.0.0.1';
  readonly database = TEST_DATABASE;
  readonly user = TEST_ROLE;
  readonly password: string | undefined;
  readonly superuser: { readonly user: string; readonly password: string | undefined };
  readonly dataDir: string;
  #port = 0;
  #state: InternalState = 'initializing';
  /** stop / start / destroy run one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();
  #destroyed: Promise<void> | undefined;

  private constructor(
    readonly socketDir: string,
    readonly auth: PostgresAuth,
    private readonly binDir: string,
  ) {
    this.dataDir = join(socketDir, 'data');
    this.password = auth === 'scram' ? randomBytes(12).toString('hex') : undefined;
    this.superuser = { user: SUPERUSER, password: auth === 'scram' ? randomBytes(12).toString('hex') : undefined };
  }

  static async create(options: PostgresOptions, onCreated?: (cluster: ThrowawayCluster) => void): Promise<ThrowawayCluster> {
    const auth = options.auth ?? 'trust';
    if (auth !== 'trust' && auth !== 'scram') throw new TypeError(`auth must be 'trust' or 'scram', not ${JSON.stringify(auth)}`);
    const reason = unavailableReason();
    const binDir = postgresBinDir();
    if (reason !== undefined || binDir === undefined) {
      throw new PostgresUnavailableError(`${reason ?? 'PostgreSQL is not available'}${strict ? ' (PM_TEST_STRICT=1: a failure, not a skip)' : ''}`);
    }
    await sweepLeftovers();
    const dir = await mkdtemp(join(TMP_ROOT, DIR_PREFIX));
    // The server's -k and -o arguments pass through pg_ctl's shell: keep the path plain.
    if (!/^[\w/.-]+$/.test(dir)) throw new Error(`unexpected characters in temp folder ${dir}`);
    const cluster = new ThrowawayCluster(dir, auth, binDir);
    live.add(cluster);
    installExitHook();
    onCreated?.(cluster);
    const init = cluster.#enqueue(() => cluster.#initialize());
    try {
      await init;
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get port(): number {
    return this.#port;
  }

  get state(): PostgresClusterState {
    return this.#state === 'initializing' ? 'stopped' : this.#state;
  }

  get url(): string {
    const credentials = this.password === undefined ? this.user : `${this.user}:${encodeURIComponent(this.password)}`;
    return `postgres://${credentials}@${this.host}:${this.port}/${this.database}`;
  }

  get env(): Record<string, string> {
    const env: Record<string, string> = { PGHOST: this.host, PGPORT: String(this.port), PGUSER: this.user, PGDATABASE: this.database };
    if (this.password !== undefined) env.PGPASSWORD = this.password;
    return env;
  }

  postmasterPid(): number | undefined {
    return runningPostmaster(this.dataDir);
  }

  async query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>> {
    return withSuperuser(this, (client) => client.query<R>(sql, params));
  }

  stop(mode: PostgresStopMode = 'immediate'): Promise<void> {
    if (!['smart', 'fast', 'immediate'].includes(mode)) return Promise.reject(new TypeError(`stop mode must be smart, fast or immediate, not ${JSON.stringify(mode)}`));
    return this.#enqueue(async () => {
      this.#assertUsable('stop');
      if (this.#state !== 'running') return;
      const failure = await this.#stopServer(mode);
      this.#state = 'stopped';
      if (failure && mode !== 'immediate') throw new Error(`PostgreSQL did not stop in ${mode} mode (it was killed instead): ${failure.message}`);
    });
  }

  start(): Promise<void> {
    return this.#enqueue(async () => {
      this.#assertUsable('start');
      if (this.#state === 'running') return;
      const failure = await this.#startServer(this.#port);
      if (failure) throw new Error(`PostgreSQL did not start again on port ${this.#port}: ${failure}`);
      this.#state = 'running';
    });
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(join(this.socketDir, 'log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  destroy(): Promise<void> {
    this.#destroyed ??= this.#enqueue(async () => {
      this.#state = 'destroyed';
      try {
        await this.#stopServer('immediate');
      } finally {
        live.delete(this);
        await rm(this.socketDir, { recursive: true, force: true, maxRetries: 3 });
      }
    });
    return this.#destroyed;
  }

  #enqueue<T>(operation: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(operation, operation);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #assertUsable(verb: string): void {
    if (this.#state === 'destroyed') throw new Error(`cannot ${verb} PostgreSQL: the cluster in ${this.socketDir} was destroyed`);
  }

  async #initialize(): Promise<void> {
    const owner = postgresAccount();
    await writeFile(join(this.socketDir, OWNER_FILE), `${process.pid}\n`);
    if (process.getuid?.() === 0 && owner) await chown(this.socketDir, owner.uid, owner.gid);
    const hostAuth = this.auth === 'scram' ? 'scram-sha-256' : 'trust';
    await this.#run('initdb', ['-D', this.dataDir, '-U', SUPERUSER, '--auth-local=trust', `--auth-host=${hostAuth}`, '-E', 'UTF8', '--locale=C', '--no-sync'], INITDB_TIMEOUT_MS);
    let failure: string | undefined;
    for (let attempt = 1; attempt <= PORT_ATTEMPTS; attempt++) {
      const port = await pickPort();
      failure = await this.#startServer(port);
      if (!failure) {
        this.#port = port;
        break;
      }
      // Another process took the port between our check and the server's bind: try another.
      if (!failure.includes('Address already in use')) break;
    }
    if (failure) throw new Error(`PostgreSQL did not start: ${failure}`);
    this.#state = 'running';
    await withSuperuser(this, async (client) => {
      if (this.superuser.password !== undefined) await client.query(`ALTER ROLE ${SUPERUSER} PASSWORD ${client.escapeLiteral(this.superuser.password)}`);
      const password = this.password === undefined ? '' : ` PASSWORD ${client.escapeLiteral(this.password)}`;
      await client.query(`CREATE ROLE ${TEST_ROLE} LOGIN${password}`);
      await client.query(`CREATE DATABASE ${TEST_DATABASE} OWNER ${TEST_ROLE}`);
    }, 'postgres');
  }

  /** Starts the server on `port`; returns why it failed (with the log's new lines), or undefined. */
  async #startServer(port: number): Promise<string | undefined> {
    const log = join(this.socketDir, 'log');
    const logStart = await stat(log).then((s) => s.size, () => 0);
    const settings = `-p ${port} -k ${this.socketDir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    try {
      await this.#run('pg_ctl', ['-D', this.dataDir, '-l', log, '-w', '-t', String(PG_CTL_WAIT_S), '-o', settings, 'start'], PG_CTL_TIMEOUT_MS);
      return undefined;
    } catch (error) {
      const newLines = await readFile(log, 'utf8').then((text) => text.slice(logStart).trim(), () => '');
      // A pg_ctl that gave up (or was killed) may still have left a server starting: never keep it.
      const pid = runningPostmaster(this.dataDir);
      if (pid !== undefined) await killPostmaster(pid);
      return `${(error as Error).message}\n--- server log ---\n${newLines || '(empty)'}`;
    }
  }

  /**
   * pg_ctl stop, then waits for the postmaster to be gone, killing it when pg_ctl failed or it
   * lingers. Returns pg_ctl's failure, if any; throws only when the process survives SIGKILL.
   */
  async #stopServer(mode: PostgresStopMode): Promise<Error | undefined> {
    const pid = runningPostmaster(this.dataDir);
    if (pid === undefined) return undefined;
    let failure: Error | undefined;
    try {
      await this.#run('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', String(PG_CTL_WAIT_S), 'stop'], PG_CTL_TIMEOUT_MS);
    } catch (error) {
      failure = error as Error;
    }
    if (!(await waitGone(pid, failure ? 0 : EXIT_TIMEOUT_MS))) await killPostmaster(pid);
    if (isAlive(pid)) throw new Error(`PostgreSQL postmaster ${pid} (${this.dataDir}) is still running after stop and SIGKILL`);
    return failure;
  }

  async #run(program: string, args: string[], timeoutMs: number): Promise<void> {
    const [file, argv] = asPostgres(join(this.binDir, program), args);
    await new Promise<void>((resolve, reject) => {
      // cwd: the postgres user may not be allowed into ours (e.g. /root).
      execFile(file, argv, { cwd: this.socketDir, timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
        if (!error) return resolve();
        const why = error.killed ? `timed out after ${timeoutMs} ms` : `exited with ${error.code ?? error.signal}`;
        reject(new Error(`${program} ${args.join(' ')} ${why}\n${`${stderr}${stdout}`.trim()}`));
      });
    });
  }
}

/** Clusters of this process not yet destroyed, for the exit hook. */
const live = new Set<ThrowawayCluster>();
let exitHookInstalled = false;

/**
 * Last resort when the process exits with clusters left (a test that never ran its cleanup):
 * SIGQUIT is PostgreSQL's immediate shutdown, which also ends the server's children.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const cluster of live) {
      const pid = runningPostmaster(cluster.dataDir);
      if (pid !== undefined) signal(pid, 'SIGQUIT');
      try {
        rmSync(cluster.socketDir, { recursive: true, force: true });
      } catch {
        // the next run's sweep removes it
      }
    }
  });
}

/**
 * Removes clusters whose test process is gone (killed by a signal, Ctrl-C: pg_ctl puts the server
 * in its own session, so it outlives the test), including their servers. Best effort.
 */
async function sweepLeftovers(): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(TMP_ROOT)).filter((name) => name.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  await Promise.all(
    names.map(async (name) => {
      const dir = join(TMP_ROOT, name);
      try {
        const owner = Number.parseInt(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''), 10);
        if (Number.isInteger(owner) ? isAlive(owner) : Date.now() - statSync(dir).mtimeMs < ORPHAN_AGE_MS) return;
        const pid = runningPostmaster(join(dir, 'data'));
        if (pid !== undefined) await killPostmaster(pid);
        await rm(dir, { recursive: true, force: true });
      } catch {
        // another process is sweeping it, or it is not ours to remove
      }
    }),
  );
}

/** The PID in DATA/postmaster.pid when that process runs and is this cluster's server (not a reused PID). */
function runningPostmaster(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) return undefined;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(dataDir) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Immediate shutdown by signal; then SIGKILL to the server and its children if it has not exited. */
async function killPostmaster(pid: number): Promise<void> {
  signal(pid, 'SIGQUIT');
  if (await waitGone(pid, 5_000)) return;
  for (const child of childrenOf(pid)) signal(child, 'SIGKILL');
  signal(pid, 'SIGKILL');
  await waitGone(pid, EXIT_TIMEOUT_MS);
}

/** PIDs whose parent is `pid` (Linux /proc). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return children;
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  return waitFor(() => !isAlive(pid), { timeoutMs, intervalMs: 20 }).then(
    () => true,
    () => false,
  );
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}

/** A short-lived superuser client over the socket (trusted), closed whatever happens. */
async function withSuperuser<T>(cluster: PostgresCluster, use: (client: pg.Client) => Promise<T>, database = cluster.database): Promise<T> {
  const client = new pg.Client({
    host: cluster.socketDir,
    port: cluster.port,
    user: SUPERUSER,
    database,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: STATEMENT_TIMEOUT_MS + 2_000,
  });
  // An error on an idle client (the server stopped) must not become an uncaught exception.
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await Promise.race([client.end().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS).unref())]);
  }
}

/** [file, args] that run `program` as the postgres user when we are root (initdb refuses root). */
function asPostgres(program: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', SUPERUSER, '--', program, ...args]] : [program, args];
}

/** The postgres account's uid and gid, from /etc/passwd. */
function postgresAccount(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${SUPERUSER}:`));
    const [, , uid, gid] = line?.split(':') ?? [];
    return uid !== undefined && gid !== undefined ? { uid: Number(uid), gid: Number(gid) } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A free port below the kernel's ephemeral range: a port from there could be taken as the local
 * port of some outgoing connection (or a client's own reconnect attempts) while the server is
 * stopped for an outage test, and start() needs it back.
 */
async function pickPort(): Promise<number> {
  const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  const high = Math.min(ephemeralStart, 32768);
  const low = Math.max(1024, high - 12_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = randomInt(low, high);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found between ${low} and ${high}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// ---- databases for one test -----------------------------------------------------------------

export type Query = (sql: string, params?: unknown[]) => Promise<pg.QueryResult>;

export interface TestDatabase {
  name: string;
  /** Without the password: it comes as PGPASSWORD in `env`, as an operator would pass it. */
  url: string;
  env: Record<string, string>;
  /** One statement on a connection of its own, closed whatever happens. */
  query: Query;
}

let createdDatabases = 0;

/**
 * A fresh database on `cluster`, migrated with pm's migrations (or `migrations`, e.g. a prefix of
 * them): one per test, so tests of one file share a cluster without sharing state.
 */
export async function migratedDatabase(cluster: PostgresCluster, options: { prefix?: string; migrations?: readonly Migration[] } = {}): Promise<TestDatabase> {
  const name = `${options.prefix ?? 'test'}_${process.pid}_${++createdDatabases}`;
  await cluster.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(cluster.user)}`);
  const config = { host: cluster.host, port: cluster.port, user: cluster.user, password: cluster.password, database: name, connectionTimeoutMillis: 5_000 };
  const query: Query = async (sql, params) => {
    const client = new pg.Client(config);
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await client.query(sql, params);
    } finally {
      await client.end();
    }
  };
  const client = new pg.Client(config);
  client.on('error', () => undefined);
  await client.connect();
  try {
    await migrate(client, options.migrations ? { migrations: options.migrations } : {});
  } finally {
    await client.end();
  }
  return { name, url: `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${name}`, env: { PGPASSWORD: cluster.password ?? '' }, query };
}
