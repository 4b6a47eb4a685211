// The connection manager against a real PostgreSQL: queries and transactions on the pool, health
// that goes down on a lost connection (never on a failed statement) and comes back through the
// probe alone, a LISTEN connection that re-establishes itself after a restart or a terminated
// backend and calls onConnected so the caller can poll for what it missed, and a close() that
// leaves nothing open. Tests that stop the server have a cluster of their own.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { Database, isConnectionLoss, type DatabaseOptions } from '../../src/db/connection.js';
import { DatabaseError } from '../../src/db/errors.js';
import { resolveDatabaseSettings } from '../../src/db/settings.js';
import { PmError } from '../../src/errors.js';
import { createPostgresCluster, postgresSkip, startPostgres, type PostgresCluster } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let shared: PostgresCluster | undefined;
before(async () => {
  if (!skip) shared = await createPostgresCluster({ auth: 'scram' });
});
after(() => shared?.destroy());

function live(): PostgresCluster {
  assert.ok(shared, 'the cluster started');
  return shared;
}

/** A Database under test with what it reported: log lines and health changes. */
interface Harness {
  db: Database;
  /** application_name of its pool; its LISTEN connections are `${app}-listen`. */
  app: string;
  logs: string[];
  changes: { up: boolean; code?: string }[];
}

let serial = 0;
/** Small backoff (20 ms, capped at 200 ms) so reconnects are quick. */
const QUICK: Partial<DatabaseOptions> = { reconnectBaseMs: 20, reconnectCapMs: 200 };

async function open(t: TestContext, url: string, secrets: (string | undefined)[], options: Partial<DatabaseOptions> = {}): Promise<Harness> {
  const settings = await resolveDatabaseSettings({ url }, {});
  const app = `pm-test-${process.pid}-${++serial}`;
  const logs: string[] = [];
  const record = (level: string) => (fields: object, message: string) => void logs.push(JSON.stringify({ level, message, ...fields }));
  const db = new Database(settings, { poolSize: 2, connectTimeoutMs: 2_000, statementTimeoutMs: 5_000, applicationName: app, logger: { info: record('info'), warn: record('warn') }, ...QUICK, ...options });
  const changes: Harness['changes'] = [];
  db.onChange((up, error) => void changes.push({ up, ...(error && { code: error.code }) }));
  t.after(async () => {
    await db.close();
    assertNoSecret([...logs, JSON.stringify(db.health())], secrets);
  });
  return { db, app, logs, changes };
}

function assertNoSecret(texts: string[], secrets: (string | undefined)[]): void {
  for (const secret of secrets) {
    assert.ok(secret, 'the cluster has a password to leak');
    for (const text of texts) assert.ok(!text.includes(secret), `a password appears in: ${text}`);
  }
}

/** Asserts a DatabaseError with `code`, naming the connection and not its password. */
function dbError(code: string, secret: string | undefined): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof DatabaseError, `not a DatabaseError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, /pm_test@127\.0\.0\.1:\d+\/pm_test/);
    assertNoSecret([error.message, error.hint ?? ''], [secret]);
    return true;
  };
}

/** The backend PID of the Database's LISTEN connection. */
async function listenerPid(cluster: PostgresCluster, app: string): Promise<number> {
  const { rows } = await cluster.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [`${app}-listen`]);
  assert.equal(rows.length, 1, `one LISTEN connection named ${app}-listen`);
  return rows[0]!.pid;
}

test('connection loss is told from failed statements by code and driver message', () => {
  const lost: { code?: string; message?: string }[] = [{ code: 'ECONNREFUSED' }, { code: 'ECONNRESET' }, { code: '57P01' }, { code: '57P02' }, { code: '57P03' }, { code: '08006' }, new Error('Connection terminated unexpectedly'), new Error('Query read timeout')];
  for (const error of lost) assert.equal(isConnectionLoss(error), true, error.code ?? error.message);
  for (const error of [{ code: '42601' }, { code: '23505' }, { code: '57014' }, { code: '28P01' }, new Error('timeout exceeded when trying to connect'), undefined, 'text']) {
    assert.equal(isConnectionLoss(error), false, String(error));
  }
});

test('a query answers; the database is up from then on, reported once', { skip }, async (t) => {
  const c = live();
  const { db, changes } = await open(t, c.url, [c.password]);
  assert.equal(db.health().up, false, 'not up before anything answered');
  const result = await db.query<{ n: number }>('SELECT $1::int AS n', [7]);
  assert.deepEqual(result.rows, [{ n: 7 }]);
  const health = db.health();
  assert.equal(health.up, true);
  assert.equal(health.reconnects, 0);
  assert.equal(new Date(health.since).toISOString(), health.since);
  assert.deepEqual(changes, [{ up: true }]);
});

test('an SQL error is a DatabaseError and leaves the database up', { skip }, async (t) => {
  const c = live();
  const { db, changes } = await open(t, c.url, [c.password]);
  await db.query('CREATE TABLE sql_error_t (id int PRIMARY KEY)');
  await assert.rejects(db.query('SELEC 1'), dbError('E_DB_OTHER', c.password));
  await db.query('INSERT INTO sql_error_t VALUES (1)');
  await assert.rejects(db.query('INSERT INTO sql_error_t VALUES (1)'), dbError('E_DB_OTHER', c.password));
  // Several statements after their own BEGIN, failing: the connection must not go back to the pool
  // inside the aborted transaction (poolSize 2: the next two queries would both find it).
  await assert.rejects(db.query('BEGIN; SELECT 1/0; COMMIT'), dbError('E_DB_OTHER', c.password));
  assert.deepEqual((await Promise.all([db.query('SELECT 1 AS n'), db.query('SELECT 1 AS n')])).map((r) => r.rows), [[{ n: 1 }], [{ n: 1 }]]);
  assert.equal(db.health().up, true);
  assert.deepEqual(changes, [{ up: true }]);
  assert.equal(db.health().lastError, undefined);
});

test('a statement past statement_timeout is cancelled by the server: E_DB_TIMEOUT, and the database stays up', { skip }, async (t) => {
  const c = live();
  const { db, changes } = await open(t, c.url, [c.password], { statementTimeoutMs: 50 });
  await assert.rejects(db.query('SELECT pg_sleep(5)'), dbError('E_DB_TIMEOUT', c.password));
  assert.deepEqual((await db.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
  assert.deepEqual(changes, [{ up: true }]);
});

test('a transaction commits; a throw rolls back and passes through; the connection is released on every path', { skip }, async (t) => {
  const c = live();
  // One pooled connection: a path that kept it would leave the next statement waiting for ever.
  const { db } = await open(t, c.url, [c.password], { poolSize: 1 });
  await db.query('CREATE TABLE tx_t (id int PRIMARY KEY)');
  const value = await db.transaction(async (client) => {
    await client.query('INSERT INTO tx_t VALUES (1)');
    return 'committed';
  });
  assert.equal(value, 'committed');
  class Refused extends Error {}
  await assert.rejects(
    db.transaction(async (client) => {
      await client.query('INSERT INTO tx_t VALUES (2)');
      throw new Refused('the caller changed its mind');
    }),
    Refused,
  );
  await assert.rejects(
    db.transaction(async (client) => {
      await client.query('INSERT INTO tx_t VALUES (3)');
      await client.query('INSERT INTO tx_t VALUES (1)');
    }),
    dbError('E_DB_OTHER', c.password),
  );
  const { rows } = await db.query<{ id: number }>('SELECT id FROM tx_t ORDER BY id');
  assert.deepEqual(rows, [{ id: 1 }]);
  assert.equal(db.health().up, true);
});

test('an abort ends the wait for a busy pool, and the statement is never sent', { skip }, async (t) => {
  const c = live();
  const { db } = await open(t, c.url, [c.password], { poolSize: 1 });
  await db.query('CREATE TABLE abort_t (id int)');
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  const holding = db.transaction(async () => {
    entered();
    await held;
  });
  await inside;
  const controller = new AbortController();
  const waiting = db.query('INSERT INTO abort_t VALUES (1)', [], { signal: controller.signal });
  controller.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  release();
  await holding;
  await assert.rejects(db.query('INSERT INTO abort_t VALUES (2)', [], { signal: AbortSignal.abort() }), { name: 'AbortError' });
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM abort_t');
  assert.deepEqual(rows, [{ n: 0 }]);
});

test('LISTEN hears a NOTIFY on its channel, payload intact, and only its channel', { skip }, async (t) => {
  const c = live();
  const { db } = await open(t, c.url, [c.password]);
  const payloads: string[] = [];
  let connected = 0;
  db.listen('pm_flags', (payload) => payloads.push(payload), () => connected++);
  await waitFor(() => connected === 1, { message: 'the LISTEN connection' });
  assert.equal(db.health().up, true, 'a LISTEN connect counts as the database answering');
  await c.query("SELECT pg_notify('pm_other', 'not for us')");
  await c.query("SELECT pg_notify('pm_flags', $1)", [`it's "quoted"; DROP TABLE x; ☃`]);
  await waitFor(() => payloads.length === 1, { message: 'the notification' });
  assert.deepEqual(payloads, [`it's "quoted"; DROP TABLE x; ☃`]);
});

test('a LISTEN channel that is not a plain identifier is refused before anything connects', { skip }, async (t) => {
  const c = live();
  const { db } = await open(t, c.url, [c.password]);
  for (const channel of ['', '1flags', 'flags-x', 'a"b', 'x; DROP TABLE t', 'a'.repeat(64)]) {
    assert.throws(() => db.listen(channel, () => undefined, () => undefined), (error) => error instanceof PmError && error.code === 'E_DB_CONFIG', channel);
  }
  assert.equal(db.health().up, false, 'nothing connected');
});

test('pg_terminate_backend on the LISTEN connection: it reconnects by itself and hears what follows', { skip }, async (t) => {
  const c = live();
  const { db, app, changes } = await open(t, c.url, [c.password]);
  const payloads: string[] = [];
  let connected = 0;
  db.listen('pm_flags', (payload) => payloads.push(payload), () => connected++);
  await waitFor(() => connected === 1, { message: 'the LISTEN connection' });
  const first = await listenerPid(c, app);
  await c.query('SELECT pg_terminate_backend($1)', [first]);
  await waitFor(() => connected === 2, { message: 'the LISTEN connection to come back' });
  assert.notEqual(await listenerPid(c, app), first);
  await c.query("SELECT pg_notify('pm_flags', 'after terminate')");
  await waitFor(() => payloads.length === 1, { message: 'the notification after the reconnect' });
  assert.deepEqual(payloads, ['after terminate']);
  await waitFor(() => db.health().up, { message: 'health up again' });
  assert.deepEqual(
    changes.map((change) => change.up),
    [true, false, true],
  );
  assert.equal(changes[1]?.code, 'E_DB_OTHER', 'terminated by an administrator (57P01)');
  assert.equal(db.health().reconnects, 1);
  assert.match(db.health().lastError ?? '', /terminating connection due to administrator command/);
});

test('a notification sent while the listener is disconnected is lost; onConnected fires so the caller polls for it', { skip }, async (t) => {
  const c = live();
  const { db, app } = await open(t, c.url, [c.password]);
  await db.query('CREATE TABLE missed_flags (note text)');
  const payloads: string[] = [];
  const polled: number[] = [];
  db.listen(
    'pm_missed',
    (payload) => payloads.push(payload),
    // What a caller does: on every (re)connect, read the table for what the notifications missed.
    () => void db.query<{ n: number }>('SELECT count(*)::int AS n FROM missed_flags').then((result) => polled.push(result.rows[0]?.n ?? -1), () => polled.push(-1)),
  );
  await waitFor(() => polled.length === 1, { message: 'the first connect and poll' });
  await c.query("SELECT pg_notify('pm_missed', 'before')");
  await waitFor(() => payloads.length === 1, { message: 'the first notification' });
  // A role that may not log in keeps its sessions but cannot open new ones: the listener, once
  // terminated, stays disconnected until LOGIN is given back.
  await c.query('ALTER ROLE pm_test NOLOGIN');
  try {
    await c.query('SELECT pg_terminate_backend($1)', [await listenerPid(c, app)]);
    await waitFor(async () => (await c.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [`${app}-listen`])).rowCount === 0, { message: 'the LISTEN backend to be gone' });
    await c.query("INSERT INTO missed_flags VALUES ('written while disconnected')");
    await c.query("SELECT pg_notify('pm_missed', 'missed')");
  } finally {
    await c.query('ALTER ROLE pm_test LOGIN');
  }
  await waitFor(() => polled.length === 2, { message: 'the reconnect and its poll' });
  assert.deepEqual(polled, [0, 1], 'the poll after the reconnect finds the row the notification announced');
  await c.query("SELECT pg_notify('pm_missed', 'after')");
  await waitFor(() => payloads.length === 2, { message: 'the notification after the reconnect' });
  assert.deepEqual(payloads, ['before', 'after']);
});

test('a server that is not there: the query fails with E_DB_REFUSED and health goes down, never showing the password', async (t) => {
  // Nothing listens on port 1. A long backoff keeps the probe from adding changes.
  const password = 'secret-never-shown-2';
  const { db, changes } = await open(t, `postgres://pm_test:${password}@127.0.0.1:1/pm_test`, [password], { reconnectBaseMs: 60_000, reconnectCapMs: 60_000 });
  await assert.rejects(db.query('SELECT 1'), dbError('E_DB_REFUSED', password));
  const health = db.health();
  assert.equal(health.up, false);
  assert.match(health.lastError ?? '', /^nothing accepts connections at pm_test@127\.0\.0\.1:1\/pm_test/);
  assert.deepEqual(changes, [{ up: false, code: 'E_DB_REFUSED' }]);
});

test('the server stops: health goes down and a query fails with E_DB_REFUSED; it starts: the probe alone brings it up', { skip }, async (t) => {
  const c = await startPostgres(t, { auth: 'scram' });
  if (!c) return;
  const { db, changes } = await open(t, c.url, [c.password]);
  await db.query('SELECT 1');
  await c.stop();
  // The pooled connection's loss is noticed with no query; the next query needs a new connection.
  await waitFor(() => !db.health().up, { message: 'the loss to be noticed' });
  await assert.rejects(db.query('SELECT 1'), dbError('E_DB_REFUSED', c.password));
  const down = db.health();
  assert.equal(down.up, false);
  assert.match(down.lastError ?? '', /connection refused/);
  assert.deepEqual(
    changes.map((change) => change.up),
    [true, false],
  );
  await c.start();
  // No query from here on: only the background probe can notice.
  await waitFor(() => db.health().up, { message: 'the probe to find the server back' });
  assert.deepEqual(
    changes.map((change) => change.up),
    [true, false, true],
  );
  assert.equal(db.health().reconnects, 1);
  assert.deepEqual((await db.query<{ n: number }>('SELECT 2 AS n')).rows, [{ n: 2 }]);
});

test('the server restarts: the listener reconnects by itself, calls onConnected, and hears what is sent after', { skip }, async (t) => {
  const c = await startPostgres(t, { auth: 'scram' });
  if (!c) return;
  const { db } = await open(t, c.url, [c.password]);
  const payloads: string[] = [];
  let connected = 0;
  db.listen('pm_flags', (payload) => payloads.push(payload), () => connected++);
  await waitFor(() => connected === 1, { message: 'the LISTEN connection' });
  await c.stop();
  await waitFor(() => !db.health().up, { message: 'the loss to be noticed' });
  await c.start();
  await waitFor(() => connected === 2, { message: 'the LISTEN connection to come back' });
  await c.query("SELECT pg_notify('pm_flags', 'after restart')");
  await waitFor(() => payloads.length === 1, { message: 'the notification after the restart' });
  assert.deepEqual(payloads, ['after restart']);
  await waitFor(() => db.health().up, { message: 'health up again' });
});

/** Counts of the handle kinds a Database could leave behind. */
function openHandles(): { sockets: number; timers: number } {
  const info = process.getActiveResourcesInfo();
  return { sockets: info.filter((kind) => kind === 'TCPSocketWrap').length, timers: info.filter((kind) => kind === 'Timeout').length };
}

test('close() ends pool, listener and probe, with reconnect timers pending; nothing of ours stays open', async (t) => {
  const baseline = openHandles();
  // Nothing listens on port 1: every connect is refused, so the probe and the listener both sit
  // in a (long) backoff when close() comes.
  const password = 'secret-never-shown-1';
  const { db } = await open(t, `postgres://pm_test:${password}@127.0.0.1:1/pm_test`, [password], { reconnectBaseMs: 60_000, reconnectCapMs: 60_000 });
  let connected = 0;
  db.listen('pm_flags', () => undefined, () => connected++);
  await assert.rejects(db.query('SELECT 1'), (error) => error instanceof DatabaseError && error.code === 'E_DB_REFUSED' && !error.message.includes(password));
  assert.equal(db.health().up, false);
  assert.equal(db.state, 'down');
  const closing = db.close();
  assert.equal(db.close(), closing, 'the same promise every time');
  await closing;
  assert.equal(db.state, 'closed');
  assert.deepEqual(openHandles(), baseline);
  assert.equal(connected, 0);
  await assert.rejects(db.query('SELECT 1'), (error) => error instanceof DatabaseError && /closed/.test(error.message));
  assert.throws(() => db.listen('pm_flags', () => undefined, () => undefined), /closed/);
});

test('close() after real work (queries, a transaction, LISTEN) leaves no socket or timer open', { skip }, async (t) => {
  const c = live();
  const baseline = openHandles();
  const { db } = await open(t, c.url, [c.password]);
  let connected = 0;
  db.listen('pm_flags', () => undefined, () => connected++);
  await Promise.all([db.query('SELECT 1'), db.query('SELECT 2'), db.transaction((client) => client.query('SELECT 3'))]);
  await waitFor(() => connected === 1, { message: 'the LISTEN connection' });
  assert.ok(openHandles().sockets >= baseline.sockets + 2, `pool and listener connections were open: ${process.getActiveResourcesInfo().join(' ')}`);
  await db.close();
  assert.deepEqual(openHandles(), baseline);
});
