// The database problems a real server causes become pm's typed errors, each with its fix and
// without the password: a wrong password, a database that does not exist, a server that is down,
// a role without rights on pm's schema. Settings come from the libpq variables, as an operator's would.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { classifyDatabaseError, type DatabaseError } from '../../src/db/errors.js';
import { poolOptions, resolveDatabaseSettings } from '../../src/db/settings.js';
import { createPostgresCluster, postgresSkip, type PostgresCluster } from '../support/postgres.js';

const skip = postgresSkip();
let cluster: PostgresCluster | undefined;
before(async () => {
  if (!skip) cluster = await createPostgresCluster({ auth: 'scram' });
});
after(() => cluster?.destroy());

/** Connects as pm would, runs `sql`, and returns the classified failure (or undefined on success). */
async function attempt(url: string, env: NodeJS.ProcessEnv, sql = 'SELECT 1'): Promise<DatabaseError | undefined> {
  const settings = await resolveDatabaseSettings({ url }, env);
  const client = new pg.Client({ ...poolOptions(settings), connectionTimeoutMillis: 5_000, statement_timeout: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(sql);
    return undefined;
  } catch (error) {
    return classifyDatabaseError(error, settings.display);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function live(): PostgresCluster {
  assert.ok(cluster, 'the cluster started');
  return cluster;
}

test('the right password from PGPASSWORD connects', { skip }, async () => {
  assert.equal(await attempt('postgres://', live().env), undefined);
});

test('a wrong password: E_DB_AUTH_FAILED, naming user@host:port/database and never the password', { skip }, async () => {
  const c = live();
  const error = await attempt('postgres://', { ...c.env, PGPASSWORD: 'wrong-secret-123' });
  assert.equal(error?.code, 'E_DB_AUTH_FAILED');
  assert.ok(error.message.includes(`pm_test@127.0.0.1:${c.port}/pm_test`), error.message);
  assert.ok(!error.message.includes('wrong-secret-123') && !(error.hint ?? '').includes('wrong-secret-123'));
});

test('a database that does not exist: E_DB_NO_DATABASE with createdb in the hint', { skip }, async () => {
  const error = await attempt('postgres:///no_such_db', live().env);
  assert.equal(error?.code, 'E_DB_NO_DATABASE');
  assert.match(error.hint ?? '', /createdb/);
});

test('a role without rights on the schema: E_DB_PERMISSION_DENIED with the GRANT to run', { skip }, async () => {
  const c = live();
  await c.query('CREATE SCHEMA IF NOT EXISTS pm_locked AUTHORIZATION postgres');
  await c.query('REVOKE ALL ON SCHEMA pm_locked FROM PUBLIC');
  const error = await attempt('postgres://', c.env, 'CREATE TABLE pm_locked.t (x int)');
  assert.equal(error?.code, 'E_DB_PERMISSION_DENIED');
  assert.match(error.hint ?? '', /GRANT USAGE, CREATE ON SCHEMA/);
});

test('a server that is down: E_DB_REFUSED; back up, the same settings connect again', { skip }, async () => {
  const c = live();
  await c.stop();
  try {
    const error = await attempt('postgres://', c.env);
    assert.equal(error?.code, 'E_DB_REFUSED');
    assert.match(error.hint ?? '', /running/);
  } finally {
    await c.start();
  }
  assert.equal(await attempt('postgres://', c.env), undefined);
});
