// pm's schema migrations against a real PostgreSQL: from empty to latest and again (nothing to
// do), two instances at once (one applies, the other waits), a failing migration rolled back
// alone, the daemon's schema check, the flags trigger, and pm db through the compiled CLI without
// the password ever showing. One scram cluster for the file; a fresh database per test.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import pg from 'pg';
import { checkSchema, migrate, MIGRATE_LOCK_KEY, MigrationError, planMigrations, schemaVersion, SchemaVersionError } from '../../src/db/migrate.js';
import { LATEST_VERSION, MIGRATIONS, type Migration } from '../../src/db/migrations.js';
import { poolOptions, resolveDatabaseSettings } from '../../src/db/settings.js';
import { createSandbox, type PmResult } from '../support/cli.js';
import { createPostgresCluster, postgresSkip, type PostgresCluster } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let cluster: PostgresCluster | undefined;
before(async () => {
  if (!skip) cluster = await createPostgresCluster({ auth: 'scram' });
});
after(() => cluster?.destroy());

function live(): PostgresCluster {
  assert.ok(cluster, 'the cluster started');
  return cluster;
}

interface TestDatabase {
  name: string;
  /** postgres://pm_test:PASSWORD@127.0.0.1:PORT/NAME */
  url: string;
  /** The masked form pm shows: pm_test@127.0.0.1:PORT/NAME. */
  display: string;
  /** A new connection as pm_test, as pm makes it; closed when the test ends. */
  connect(): Promise<pg.Client>;
}

let databases = 0;

/** A new, empty database owned by pm_test, so tests share nothing but the server. */
async function freshDatabase(t: TestContext): Promise<TestDatabase> {
  const c = live();
  const name = `t_${++databases}`;
  // CREATE DATABASE takes no parameters: the name is ours, and quoted as an identifier anyway.
  await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(c.user)}`);
  const url = new URL(c.url);
  url.pathname = `/${name}`;
  const settings = await resolveDatabaseSettings({ url: url.href }, {});
  const clients: pg.Client[] = [];
  t.after(() => Promise.all(clients.map((client) => client.end().catch(() => undefined))));
  return {
    name,
    url: url.href,
    display: settings.display,
    async connect() {
      const client = new pg.Client({ ...poolOptions(settings), connectionTimeoutMillis: 5_000, statement_timeout: 10_000 });
      client.on('error', () => undefined);
      clients.push(client);
      await client.connect();
      return client;
    },
  };
}

async function versions(client: pg.ClientBase): Promise<number[]> {
  return (await client.query<{ version: number }>('SELECT version FROM pm.schema_migrations ORDER BY version')).rows.map((r) => r.version);
}

async function exists(client: pg.ClientBase, relation: string): Promise<boolean> {
  return (await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [relation])).rows[0]?.present === true;
}

const initial = MIGRATIONS[0] as Migration;
const second: Migration = { version: 2, name: 'add_widgets', sql: 'CREATE TABLE pm.widgets (id integer PRIMARY KEY);' };

test('the migration list: versions rise from 1, each named, and the plan refuses down and newer', () => {
  assert.deepEqual(
    MIGRATIONS.map((m) => m.version),
    MIGRATIONS.map((_, i) => i + 1),
  );
  assert.equal(LATEST_VERSION, MIGRATIONS.length);
  assert.match(MIGRATE_LOCK_KEY, /^-?\d+$/);
  assert.deepEqual(planMigrations(0, 2, 'db', [initial, second]), [initial, second]);
  assert.deepEqual(planMigrations(1, 1, 'db', [initial, second]), []);
  assert.throws(() => planMigrations(2, 1, 'db', [initial, second]), { code: 'E_DB_MIGRATE_DOWN' });
  assert.throws(() => planMigrations(3, 3, 'db', [initial, second]), { code: 'E_DB_SCHEMA_NEWER' });
});

test('migrate: an empty database goes to the latest version; a second run applies nothing', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const client = await db.connect();
  assert.equal(await schemaVersion(client), 0);

  const lines: string[] = [];
  const first = await migrate(client, { log: (line) => lines.push(line) });
  assert.deepEqual(first, { from: 0, to: LATEST_VERSION, applied: MIGRATIONS.map((m) => m.version) });
  assert.ok(lines.some((l) => l.startsWith(`applied 1 ${initial.name}`)), lines.join('\n'));
  for (const table of ['pm.schema_migrations', 'pm.flags', 'pm.audit', 'pm.events', 'pm.history', 'pm.flags_pending']) assert.ok(await exists(client, table), table);
  const row = (await client.query<{ name: string; applied_by: string }>('SELECT name, applied_by FROM pm.schema_migrations WHERE version = 1')).rows[0];
  assert.deepEqual(row, { name: initial.name, applied_by: 'pm_test' });

  assert.deepEqual(await migrate(client), { from: LATEST_VERSION, to: LATEST_VERSION, applied: [] });
  assert.deepEqual(await versions(client), MIGRATIONS.map((m) => m.version));
  assert.equal(await schemaVersion(client), LATEST_VERSION);
  // The session lock was released: another session takes it at once.
  const other = await db.connect();
  assert.equal((await other.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [MIGRATE_LOCK_KEY])).rows[0]?.ok, true);
});

test('every table and column of schema pm is documented (COMMENT ON), for \\d+', { skip }, async (t) => {
  const client = await (await freshDatabase(t)).connect();
  await migrate(client);
  const undocumented = await client.query<{ what: string }>(`
    SELECT c.relname || coalesce('.' || a.attname, '') AS what
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'pm'
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind = 'r' AND (obj_description(c.oid, 'pg_class') IS NULL OR (a.attnum IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
    ORDER BY 1`);
  assert.deepEqual(
    undocumented.rows.map((r) => r.what),
    [],
  );
});

test('two instances migrate at once: one applies, the other waits and finds nothing to do', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const [holder, a, b] = await Promise.all([db.connect(), db.connect(), db.connect()]);
  // A third session holds the lock first, so both really contend instead of one finishing early.
  await holder.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATE_LOCK_KEY]);
  const logs: [string[], string[]] = [[], []];
  const runs = [migrate(a, { log: (l) => logs[0].push(l) }), migrate(b, { log: (l) => logs[1].push(l) })];
  const settled = Promise.allSettled(runs);
  await waitFor(
    async () => (await holder.query<{ n: number }>("SELECT count(*)::integer AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")).rows[0]?.n === 2,
    { message: 'both migrations waiting on the advisory lock' },
  );
  assert.ok(logs.every((lines) => lines.some((l) => l.includes('waiting'))), JSON.stringify(logs));
  await holder.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATE_LOCK_KEY]);

  const results = await settled;
  const values = results.map((r) => {
    assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String(r.reason) : '');
    return r.value;
  });
  assert.deepEqual(values.map((v) => v.applied.length).sort(), [0, MIGRATIONS.length]);
  assert.ok(values.every((v) => v.to === LATEST_VERSION));
  assert.deepEqual(await versions(holder), MIGRATIONS.map((m) => m.version));
});

test('two instances racing without a head start: no duplicate key error, one set of rows', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const [a, b] = await Promise.all([db.connect(), db.connect()]);
  const values = await Promise.all([migrate(a), migrate(b)]);
  assert.deepEqual(values.map((v) => v.applied.length).sort(), [0, MIGRATIONS.length]);
  assert.deepEqual(await versions(a), MIGRATIONS.map((m) => m.version));
});

test('a failing migration is rolled back alone: earlier ones stay applied, the error names it', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const client = await db.connect();
  const broken: Migration = { version: 3, name: 'broken_gadgets', sql: 'CREATE TABLE pm.gadgets (id integer);\nINSERT INTO pm.no_such_table VALUES (1);' };
  const fourth: Migration = { version: 4, name: 'after_broken', sql: 'CREATE TABLE pm.after_broken (id integer);' };

  const error = await migrate(client, { migrations: [initial, second, broken, fourth] }).then(
    () => assert.fail('the broken migration should fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof MigrationError, String(error));
  assert.equal(error.code, 'E_DB_MIGRATION');
  assert.deepEqual(error.migration, { version: 3, name: 'broken_gadgets' });
  assert.match(error.message, /migration 3 \(broken_gadgets\) failed and was rolled back: .*no_such_table.*42P01/);
  assert.match(error.hint ?? '', /stay applied/);

  assert.deepEqual(await versions(client), [1, 2]);
  assert.ok(await exists(client, 'pm.widgets'), 'migration 2 stays');
  assert.ok(!(await exists(client, 'pm.gadgets')), 'migration 3 left nothing behind');
  assert.ok(!(await exists(client, 'pm.after_broken')), 'nothing after the failure ran');
  // The connection is usable (not stuck in an aborted transaction) and the lock is free.
  const other = await db.connect();
  assert.equal((await other.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [MIGRATE_LOCK_KEY])).rows[0]?.ok, true);
  await other.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATE_LOCK_KEY]);

  const fixed: Migration = { ...broken, sql: 'CREATE TABLE pm.gadgets (id integer);' };
  assert.deepEqual(await migrate(client, { migrations: [initial, second, fixed, fourth] }), { from: 2, to: 4, applied: [3, 4] });
});

test('migrate --to stops at a version; down and beyond the latest are refused as bad input', { skip }, async (t) => {
  const client = await (await freshDatabase(t)).connect();
  assert.deepEqual(await migrate(client, { migrations: [initial, second], target: 1 }), { from: 0, to: 1, applied: [1] });
  await assert.rejects(migrate(client, { migrations: [initial, second], target: 3 }), { code: 'E_DB_MIGRATE_TARGET', exitCode: 2 });
  assert.deepEqual(await migrate(client, { migrations: [initial, second] }), { from: 1, to: 2, applied: [2] });
  await assert.rejects(migrate(client, { migrations: [initial, second], target: 1 }), { code: 'E_DB_MIGRATE_DOWN', exitCode: 2 });
  // A database newer than the code: migrate refuses too, and changes nothing.
  await assert.rejects(migrate(client, { migrations: [initial] }), (e: unknown) => e instanceof SchemaVersionError && e.problem === 'newer');
  assert.deepEqual(await versions(client), [1, 2]);
});

test('migration names are data: one that carries SQL is recorded as written', { skip }, async (t) => {
  const client = await (await freshDatabase(t)).connect();
  const name = "x'); DROP TABLE pm.schema_migrations; --";
  await migrate(client, { migrations: [initial, { version: 2, name, sql: 'SELECT 1;' }] });
  assert.deepEqual((await client.query<{ name: string }>('SELECT name FROM pm.schema_migrations WHERE version = 2')).rows, [{ name }]);
});

test('checkSchema: missing and older ask for pm db migrate, newer is refused naming both versions, current is ok', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const client = await db.connect();

  const missing = await checkSchema(client, { where: db.display });
  assert.equal(missing.ok, false);
  assert.ok(!missing.ok && missing.error instanceof SchemaVersionError && missing.error.problem === 'missing');
  assert.ok(!missing.ok && missing.error.message.includes(db.display), !missing.ok ? missing.error.message : '');
  assert.ok(!missing.ok && /pm db migrate/.test(missing.error.hint ?? ''));

  await migrate(client, { migrations: [initial] });
  assert.deepEqual(await checkSchema(client, { migrations: [initial] }), { ok: true });
  const older = await checkSchema(client, { migrations: [initial, second] });
  assert.ok(!older.ok && older.error.code === 'E_DB_SCHEMA_OLDER');
  assert.ok(!older.ok && /version 1; this pm needs version 2/.test(older.error.message), !older.ok ? older.error.message : '');
  assert.ok(!older.ok && /pm db migrate/.test(older.error.hint ?? ''));

  await migrate(client, { migrations: [initial, second] });
  const newer = await checkSchema(client, { migrations: [initial] });
  assert.ok(!newer.ok && newer.error.code === 'E_DB_SCHEMA_NEWER');
  assert.ok(!newer.ok && /at version 2; this pm knows up to 1: upgrade pm/.test(newer.error.message), !newer.ok ? newer.error.message : '');
});

test('checkSchema: a role that may not use schema pm gets E_DB_PERMISSION_DENIED, not a crash', { skip }, async (t) => {
  const c = live();
  const db = await freshDatabase(t);
  const client = await db.connect();
  await migrate(client);
  const role = `${db.name}_outsider`;
  await c.query(`CREATE ROLE ${pg.escapeIdentifier(role)} NOLOGIN`);
  await c.query(`GRANT ${pg.escapeIdentifier(role)} TO ${pg.escapeIdentifier(c.user)}`);
  await client.query(`SET ROLE ${pg.escapeIdentifier(role)}`);
  const result = await checkSchema(client, { where: db.display });
  assert.ok(!result.ok && result.error.code === 'E_DB_PERMISSION_DENIED', !result.ok ? `${result.error.code}: ${result.error.message}` : 'ok');
});

test('the flags trigger: NOTIFY pm_flags with the id on insert and re-targeting, never for handled rows', { skip }, async (t) => {
  const db = await freshDatabase(t);
  const [listener, writer] = await Promise.all([db.connect(), db.connect()]);
  await migrate(writer);
  const payloads: string[] = [];
  listener.on('notification', (n) => {
    if (n.channel === 'pm_flags') payloads.push(n.payload ?? '');
  });
  await listener.query('LISTEN pm_flags');
  const insert = async (process: string, action: string): Promise<string> =>
    String((await writer.query<{ id: string }>('INSERT INTO pm.flags (process, action) VALUES ($1, $2) RETURNING id', [process, action])).rows[0]?.id);
  const until = (expected: string[]): Promise<void> => waitFor(() => payloads.length >= expected.length, { message: `notifications ${expected.join(', ')}` }).then(() => assert.deepEqual(payloads, expected));

  const first = await insert('api', 'restart');
  await until([first]);
  // pm marks it handled, then someone edits the handled row: neither wakes pm.
  await writer.query("UPDATE pm.flags SET handled_at = now(), result = 'done', message = 'restarted' WHERE id = $1", [first]);
  await writer.query("UPDATE pm.flags SET action = 'pause' WHERE id = $1", [first]);
  // Notifications arrive in commit order: the next insert's is next only if the updates sent none.
  const second = await insert('worker', 'pause');
  await until([first, second]);
  await writer.query("UPDATE pm.flags SET action = 'resume' WHERE id = $1", [second]);
  await until([first, second, second]);
});

test('flags accept any action and process (pm validates rows itself); values carrying SQL are inert', { skip }, async (t) => {
  const client = await (await freshDatabase(t)).connect();
  await migrate(client);
  const process = "api'; DROP TABLE pm.flags; --";
  const inserted = await client.query<{ id: string; requested_by: string; handled_at: Date | null }>(
    'INSERT INTO pm.flags (process, action) VALUES ($1, $2) RETURNING id, requested_by, handled_at',
    [process, 'explode'],
  );
  assert.equal(inserted.rows[0]?.requested_by, 'pm_test');
  assert.equal(inserted.rows[0]?.handled_at, null);
  const read = await client.query<{ process: string; action: string }>('SELECT process, action FROM pm.flags WHERE handled_at IS NULL');
  assert.deepEqual(read.rows, [{ process, action: 'explode' }]);
  assert.ok(await exists(client, 'pm.flags'));
  await client.query('INSERT INTO pm.history (time, host, process, kind) VALUES (now(), $1, $2, $3)', ['h', process, 'flag']);
  assert.deepEqual((await client.query<{ detail: unknown }>('SELECT detail FROM pm.history')).rows, [{ detail: {} }]);
});

test('pm db status and pm db migrate through the CLI: exit codes, and the password never shows', { skip }, async (t) => {
  const c = live();
  const db = await freshDatabase(t);
  const sandbox = await createSandbox(t);
  const password = c.password;
  assert.ok(password, 'a scram cluster has a password');
  const outputs: PmResult[] = [];
  const pm = async (args: string[], env: Record<string, string> = {}): Promise<PmResult> => {
    const result = await sandbox.pm(['db', ...args], { env: { PM_DATABASE_URL: '', ...env } });
    outputs.push(result);
    return result;
  };
  const both = (r: PmResult): string => `${r.stdout}${r.stderr}`;

  let r = await pm(['status', '--database-url', db.url]);
  assert.equal(r.code, 1, `not up to date: ${both(r)}`);
  assert.match(r.stdout, new RegExp(`database:\\s+${db.display}`));
  assert.match(r.stdout, /version:\s+0 .*schema is not there: run pm db migrate/);
  assert.match(r.stdout, /1\s+initial\s+pending/);

  r = await pm(['migrate', '--dry-run'], { PM_DATABASE_URL: db.url });
  assert.equal(r.code, 0, both(r));
  assert.match(r.stdout, /would apply \(dry run, nothing changed\):\n\s+1 initial/);
  const client = await db.connect();
  assert.equal(await schemaVersion(client), 0, 'the dry run changed nothing');

  r = await pm(['migrate'], { PM_DATABASE_URL: db.url });
  assert.equal(r.code, 0, both(r));
  assert.match(r.stdout, new RegExp(`ok: ${db.display}: migrated from version 0 to ${LATEST_VERSION}`));
  assert.equal(await schemaVersion(client), LATEST_VERSION);

  r = await pm(['migrate', '--database-url', db.url]);
  assert.equal(r.code, 0, both(r));
  assert.match(r.stdout, new RegExp(`already at version ${LATEST_VERSION}`));

  r = await pm(['status'], { PM_DATABASE_URL: db.url });
  assert.equal(r.code, 0, both(r));
  assert.match(r.stdout, /up to date/);
  assert.match(r.stdout, /1\s+initial\s+applied\s+\S+ by pm_test/);
  assert.match(r.stdout, /No pm daemon has used this database yet/);
  await client.query(
    "INSERT INTO pm.daemons (host, instance, pid, version, started_at, seen_at, poll_seconds, processes) VALUES ('web-1', 'x', 42, '9.9.9', now(), now(), 5, '{api,worker}'), ('old', 'y', 7, '0.1.0', now() - interval '2 days', now() - interval '1 day', 5, '{}')",
  );
  r = await pm(['status'], { PM_DATABASE_URL: db.url });
  assert.equal(r.code, 0, both(r));
  assert.match(r.stdout, /^HOST\s+STATE\s+LAST SEEN\s+PROCESSES\s+PID\s+VERSION\s+STARTED$/m);
  assert.match(r.stdout, /^old\s+not seen lately\s+\S+\s+0\s+7\s+0\.1\.0/m);
  assert.match(r.stdout, /^web-1\s+live\s+\S+\s+2\s+42\s+9\.9\.9/m);

  // The libpq variables alone, the password from PGPASSWORD.
  r = await pm(['status'], { PM_DATABASE_URL: 'postgres://', ...c.env, PGDATABASE: db.name });
  assert.equal(r.code, 0, both(r));

  // Bad input: 2, and nothing was tried.
  for (const args of [[], ['upgrade'], ['status', '--to', '1'], ['migrate', '--to', 'x', '--database-url', db.url], ['migrate', '--to', String(LATEST_VERSION + 1), '--database-url', db.url], ['migrate', '--database-url', 'mysql://x@y/z']]) {
    r = await pm(args);
    assert.equal(r.code, 2, `pm db ${args.join(' ')}: ${both(r)}`);
  }
  r = await pm(['migrate']);
  assert.equal(r.code, 2, both(r));
  assert.match(r.stderr, /no database given\n\s+hint: pass --database-url/);

  // A wrong password: 1, naming the connection, showing neither password.
  const wrong = new URL(db.url);
  wrong.password = 'Wr0ng-s3cret';
  r = await pm(['migrate', '--database-url', wrong.href]);
  assert.equal(r.code, 1, both(r));
  assert.match(r.stderr, new RegExp(`refused the login of ${db.display}`));
  assert.ok(!both(r).includes('Wr0ng-s3cret'));

  // A database newer than this pm: migrate refuses (1), status shows it (1: not what this pm runs on).
  await migrate(client, { migrations: [...MIGRATIONS, { version: LATEST_VERSION + 1, name: 'from_the_future', sql: 'SELECT 1;' }] });
  r = await pm(['migrate', '--database-url', db.url]);
  assert.equal(r.code, 1, both(r));
  assert.match(r.stderr, new RegExp(`at version ${LATEST_VERSION + 1}; this pm knows up to ${LATEST_VERSION}: upgrade pm`));
  r = await pm(['status', '--database-url', db.url]);
  assert.equal(r.code, 1, both(r));
  assert.match(r.stdout, /newer than this pm knows: upgrade pm/);

  for (const output of outputs) assert.ok(!both(output).includes(password), `the password leaked:\n${both(output)}`);
});
