// The PostgreSQL test harness (test/support/postgres.ts) against the real server: both
// authentication modes, an outage by stop() and start() on the same port, clusters side by side,
// and nothing left running or on disk once a test ends.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import pg from 'pg';
import { isAlive } from '../support/processes.js';
import { childrenOf, createPostgresCluster, postgresSkip, startPostgres, type PostgresCluster } from '../support/postgres.js';

/** Connects with `config`, runs one statement, closes; rejects with pg's error (code = SQLSTATE or errno). */
async function queryOnce(config: pg.ClientConfig, sql = 'SELECT 1 AS one'): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionTimeoutMillis: 5_000, statement_timeout: 5_000, query_timeout: 7_000, ...config });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** The server's PID and its children's (checkpointer, walwriter, backends …). */
function clusterPids(cluster: PostgresCluster): number[] {
  const pid = cluster.postmasterPid();
  assert.ok(pid !== undefined, 'the server runs');
  return [pid, ...childrenOf(pid)];
}

test('trust: the test role connects over TCP without a password; query() runs as the superuser', async (t) => {
  const cluster = await startPostgres(t);
  if (!cluster) return;
  assert.equal(cluster.state, 'running');
  assert.equal(cluster.password, undefined);
  assert.equal(cluster.url, `postgres://pm_test@127.0.0.1:${cluster.port}/pm_test`);
  assert.deepEqual(cluster.env, { PGHOST: '127.0.0.1', PGPORT: String(cluster.port), PGUSER: 'pm_test', PGDATABASE: 'pm_test' });

  const viaUrl = await queryOnce({ connectionString: cluster.url }, 'SELECT 1 AS one, current_user AS who, current_database() AS db');
  assert.deepEqual(viaUrl.rows, [{ one: 1, who: 'pm_test', db: 'pm_test' }]);

  const admin = await cluster.query<{ who: string; superuser: string }>("SELECT current_user AS who, current_setting('is_superuser') AS superuser");
  assert.deepEqual(admin.rows, [{ who: 'postgres', superuser: 'on' }]);
  const role = await cluster.query('SELECT rolsuper FROM pg_roles WHERE rolname = $1', ['pm_test']);
  assert.deepEqual(role.rows, [{ rolsuper: false }], 'the test role is not a superuser');
  const settings = await cluster.query("SELECT current_setting('fsync') AS fsync, current_setting('max_connections') AS max");
  assert.deepEqual(settings.rows, [{ fsync: 'off', max: '50' }]);
});

test('scram: the right password connects; a wrong one fails with SQLSTATE 28P01', async (t) => {
  const cluster = await startPostgres(t, { auth: 'scram' });
  if (!cluster) return;
  assert.ok(cluster.password && cluster.password.length >= 16);
  assert.equal(cluster.url, `postgres://pm_test:${cluster.password}@127.0.0.1:${cluster.port}/pm_test`);
  assert.equal(cluster.env.PGPASSWORD, cluster.password);

  const ok = await queryOnce({ connectionString: cluster.url });
  assert.deepEqual(ok.rows, [{ one: 1 }]);
  const asSuperuser = await queryOnce({ host: cluster.host, port: cluster.port, user: 'postgres', password: cluster.superuser.password, database: 'postgres' });
  assert.deepEqual(asSuperuser.rows, [{ one: 1 }], 'the superuser has a password over TCP');

  await assert.rejects(
    queryOnce({ host: cluster.host, port: cluster.port, user: cluster.user, password: 'not-the-password', database: cluster.database }),
    (error: Error & { code?: string }) => error.code === '28P01' && /password authentication failed for user "pm_test"/.test(error.message),
  );
  await assert.rejects(
    queryOnce({ host: cluster.host, port: cluster.port, user: 'postgres', password: 'not-the-password', database: 'postgres' }),
    (error: Error & { code?: string }) => error.code === '28P01',
  );
});

test('stop() is an outage (ECONNREFUSED); start() serves again on the same port with the data kept', async (t) => {
  const cluster = await startPostgres(t, { auth: 'scram' });
  if (!cluster) return;
  const { port } = cluster;
  await queryOnce({ connectionString: cluster.url }, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
  const pids = clusterPids(cluster);

  const stopStarted = Date.now();
  await cluster.stop();
  t.diagnostic(`stop (immediate): ${Date.now() - stopStarted} ms`);
  assert.equal(cluster.state, 'stopped');
  assert.equal(cluster.postmasterPid(), undefined);
  assert.deepEqual(pids.filter(isAlive), [], 'no process of the server remains');
  await assert.rejects(queryOnce({ connectionString: cluster.url }), (error: Error & { code?: string }) => error.code === 'ECONNREFUSED');
  await cluster.stop(); // a second stop is a no-op

  const startStarted = Date.now();
  await cluster.start();
  t.diagnostic(`start after an immediate stop: ${Date.now() - startStarted} ms`);
  await cluster.start(); // so is a second start
  assert.equal(cluster.state, 'running');
  assert.equal(cluster.port, port);
  const kept = await queryOnce({ connectionString: cluster.url }, 'SELECT v FROM kept');
  assert.deepEqual(kept.rows, [{ v: 42 }], 'committed rows survive an immediate stop');

  await cluster.stop('fast');
  await assert.rejects(queryOnce({ connectionString: cluster.url }), (error: Error & { code?: string }) => error.code === 'ECONNREFUSED');
  await cluster.start();
  assert.deepEqual((await cluster.query('SELECT count(*)::int AS n FROM kept')).rows, [{ n: 1 }]);
});

test('two clusters at once get their own ports, sockets and data', async (t) => {
  const started = Date.now();
  const [a, b] = await Promise.all([startPostgres(t), startPostgres(t, { auth: 'scram' })]);
  if (!a || !b) return;
  t.diagnostic(`two clusters in parallel: ${Date.now() - started} ms`);
  assert.notEqual(a.port, b.port);
  assert.notEqual(a.socketDir, b.socketDir);
  await a.query('CREATE TABLE only_in_a (v int)');
  const [inA, inB] = await Promise.all([
    queryOnce({ connectionString: a.url }, "SELECT to_regclass('only_in_a') IS NOT NULL AS present"),
    queryOnce({ connectionString: b.url }, "SELECT to_regclass('only_in_a') IS NOT NULL AS present"),
  ]);
  assert.deepEqual([inA.rows, inB.rows], [[{ present: true }], [{ present: false }]]);
});

test('nothing is left once a test ends: no server process, no folder', { skip: postgresSkip() }, async (t) => {
  let pids: number[] = [];
  let dir = '';
  await t.test('a test with a cluster and an open connection', async (inner) => {
    const cluster = await startPostgres(inner);
    if (!cluster) return;
    const client = new pg.Client({ connectionString: cluster.url, connectionTimeoutMillis: 5_000 });
    client.on('error', () => undefined); // the server goes away under it
    await client.connect();
    inner.after(() => client.end().catch(() => undefined));
    await client.query('SELECT 1');
    pids = clusterPids(cluster);
    dir = cluster.socketDir;
    assert.ok(pids.length > 2, `a postmaster with children (${pids.join(', ')})`);
  });
  assert.deepEqual(pids.filter(isAlive), [], 'no process of the cluster remains');
  assert.equal(existsSync(dir), false, `${dir} is removed`);
});

test('a cluster for a whole file: createPostgresCluster() and an idempotent destroy()', { skip: postgresSkip() }, async (t) => {
  const started = Date.now();
  const cluster = await createPostgresCluster();
  const createdMs = Date.now() - started;
  try {
    assert.deepEqual((await queryOnce({ connectionString: cluster.url })).rows, [{ one: 1 }]);
  } finally {
    const pids = clusterPids(cluster);
    const stopping = Date.now();
    const first = cluster.destroy();
    assert.equal(cluster.destroy(), first, 'destroy() returns the same promise every time');
    await first;
    t.diagnostic(`create (initdb + start + roles): ${createdMs} ms; destroy: ${Date.now() - stopping} ms`);
    assert.deepEqual(pids.filter(isAlive), [], 'no process of the cluster remains');
    assert.equal(existsSync(cluster.socketDir), false);
    assert.equal(cluster.state, 'destroyed');
    await assert.rejects(cluster.start(), /destroyed/);
  }
});
