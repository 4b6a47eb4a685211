// Connection settings: URL first, gaps from the libpq variables, the password from the first
// source that has one, and a display that never carries it.
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { classifyDatabaseError } from '../../src/db/errors.js';
import { findPassword, parsePgpass } from '../../src/db/pgpass.js';
import { poolOptions, resolveDatabaseSettings } from '../../src/db/settings.js';
import { tempDir } from '../support/tmp.js';

test('a full URL gives every setting; the display has no password', async () => {
  const s = await resolveDatabaseSettings({ url: 'postgres://pm:s%40cret@db.example:5433/pmdb?sslmode=require' }, {});
  assert.deepEqual(
    { host: s.host, port: s.port, user: s.user, database: s.database, password: s.password, sslMode: s.sslMode, display: s.display },
    { host: 'db.example', port: 5433, user: 'pm', database: 'pmdb', password: 's@cret', sslMode: 'require', display: 'pm@db.example:5433/pmdb' },
  );
  assert.deepEqual(poolOptions(s).ssl, { rejectUnauthorized: false });
});

test('postgres:// alone takes everything from the libpq variables', async () => {
  const env = { PGHOST: '10.0.0.5', PGPORT: '6432', PGUSER: 'ops', PGDATABASE: 'flags', PGPASSWORD: 'pw', PGSSLMODE: 'disable' };
  const s = await resolveDatabaseSettings({ url: 'postgres://' }, env);
  assert.equal(s.display, 'ops@10.0.0.5:6432/flags');
  assert.equal(s.password, 'pw');
  assert.equal(poolOptions(s).ssl, false);
});

test('the URL wins over the variables; a socket folder comes as ?host=; IPv6 hosts lose their brackets', async () => {
  const s = await resolveDatabaseSettings({ url: 'postgres:///app?host=/run/postgresql' }, { PGHOST: 'ignored', PGUSER: 'u' });
  assert.equal(s.host, '/run/postgresql');
  assert.equal(s.database, 'app');
  assert.equal((await resolveDatabaseSettings({ url: 'postgresql://u@[::1]:5432/d' }, {})).host, '::1');
});

test('password sources in order: URL, password file, PGPASSWORD, ~/.pgpass (only when private)', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'pw');
  await writeFile(file, 'from-file\n');
  const pgpass = join(dir, 'pgpass');
  await writeFile(pgpass, '# comment\nother:*:*:*:no\nh:5432:d:u:from\\:pgpass\n', { mode: 0o600 });
  const url = 'postgres://u@h:5432/d';
  assert.equal((await resolveDatabaseSettings({ url: 'postgres://u:from-url@h/d', passwordFile: file }, { PGPASSWORD: 'x' })).password, 'from-url');
  assert.equal((await resolveDatabaseSettings({ url, passwordFile: file }, { PGPASSWORD: 'x' })).password, 'from-file');
  assert.equal((await resolveDatabaseSettings({ url }, { PGPASSWORD: 'from-env', PGPASSFILE: pgpass })).password, 'from-env');
  assert.equal((await resolveDatabaseSettings({ url }, { PGPASSFILE: pgpass })).password, 'from:pgpass');
  await chmod(pgpass, 0o644);
  assert.equal((await resolveDatabaseSettings({ url }, { PGPASSFILE: pgpass })).password, undefined, 'a password file others can read is ignored, as libpq does');
});

test('bad settings are clear errors that do not repeat the URL', async (t) => {
  await assert.rejects(resolveDatabaseSettings({ url: 'not a url with secret' }, {}), (e: Error) => /not a URL/.test(e.message) && !e.message.includes('secret'));
  await assert.rejects(resolveDatabaseSettings({ url: 'mysql://x' }, {}), /must start with postgres:\/\//);
  await assert.rejects(resolveDatabaseSettings({ url: 'postgres://h:99999/d' }, {}), /not a URL|not a port/);
  await assert.rejects(resolveDatabaseSettings({ url: 'postgres://h/d?sslmode=sometimes' }, {}), /sslmode "sometimes"/);
  const dir = await tempDir(t);
  await assert.rejects(resolveDatabaseSettings({ url: 'postgres://h/d', passwordFile: join(dir, 'missing') }, {}), /databasePasswordFile: cannot read .*ENOENT/);
});

test('verify-full checks the host name, verify-ca only the chain', async (t) => {
  const dir = await tempDir(t);
  const ca = join(dir, 'ca.pem');
  await writeFile(ca, 'PEM');
  const full = poolOptions(await resolveDatabaseSettings({ url: 'postgres://h/d', sslMode: 'verify-full', sslRootCert: ca }, {})).ssl;
  assert.deepEqual(full, { rejectUnauthorized: true, ca: 'PEM' });
  const chain = poolOptions(await resolveDatabaseSettings({ url: 'postgres://h/d', sslMode: 'verify-ca', sslRootCert: ca }, {})).ssl;
  assert.ok(chain && chain.rejectUnauthorized && chain.ca === 'PEM' && typeof chain.checkServerIdentity === 'function');
});

test('pgpass: wildcards, escapes, localhost for sockets, first match wins', () => {
  const entries = parsePgpass('*:*:*:admin:a\nlocalhost:5432:*:u:sock\n*:*:*:u:any\nbad:line\n');
  assert.equal(findPassword(entries, { host: '/run/postgresql', port: 5432, database: 'x', user: 'u' }), 'sock');
  assert.equal(findPassword(entries, { host: 'remote', port: 5432, database: 'x', user: 'u' }), 'any');
  assert.equal(findPassword(entries, { host: 'remote', port: 1, database: 'x', user: 'nobody' }), undefined);
});

// The errors as drivers report them, built here so every kind is covered; the ones a real server
// produces (auth, missing database, refused, permission) are in test/integration/postgres-errors.test.ts.
test('driver errors become the problem with its fix, naming the masked connection', () => {
  const where = 'pm@db:5432/pm';
  const cases: [unknown, string, RegExp][] = [
    [{ code: '28P01', message: 'password authentication failed for user "pm"' }, 'E_DB_AUTH_FAILED', /pg_hba/],
    [{ code: '3D000', message: 'database "pm" does not exist' }, 'E_DB_NO_DATABASE', /createdb/],
    [{ code: '42501', message: 'permission denied for schema pm' }, 'E_DB_PERMISSION_DENIED', /GRANT/],
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }, 'E_DB_REFUSED', /running/],
    [{ code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND db' }, 'E_DB_HOST_UNKNOWN', /host name/],
    [new Error('Connection terminated due to connection timeout'), 'E_DB_TIMEOUT', /databaseConnectTimeoutMs/],
    [new Error('self-signed certificate in certificate chain'), 'E_DB_TLS', /sslmode/],
  ];
  for (const [error, code, hint] of cases) {
    const classified = classifyDatabaseError(error, where);
    assert.equal(classified.code, code);
    assert.match(classified.hint ?? '', hint);
    assert.ok(classified.message.includes(where), classified.message);
  }
});
