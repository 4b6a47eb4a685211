// Flags in PostgreSQL: a row in pm.flags reaches the daemon through NOTIFY, and through polling
// when no notification comes; bad rows are marked ignored without blocking good ones; while the
// database is down the daemon goes on supervising, degraded, and drains the flags once it is back.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon, type Daemon } from '../support/daemon.js';
import { createPostgresCluster, migratedDatabase, postgresSkip, startPostgres, type PostgresCluster, type TestDatabase } from '../support/postgres.js';
import type { Sandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let shared: PostgresCluster | undefined;
before(async () => {
  if (!skip) shared = await createPostgresCluster({ auth: 'scram' });
});
after(() => shared?.destroy());

const freshDatabase = (cluster: PostgresCluster): Promise<TestDatabase> => migratedDatabase(cluster, { prefix: 'flags' });

async function daemonOn(sandbox: Sandbox, db: { url: string; env: Record<string, string> }, pollSeconds: number, args: string[] = []): Promise<Daemon> {
  await sandbox.write('manifests/a.yaml', fixtureManifest(sandbox, { name: 'a', program: 'idle' }, quickRestarts()));
  await sandbox.write('manifests/b.yaml', fixtureManifest(sandbox, { name: 'b', program: 'idle' }, quickRestarts()));
  return startDaemon(sandbox, { env: { PM_DATABASE_URL: db.url, ...db.env }, args: ['--flag-poll-seconds', String(pollSeconds), ...args] });
}

async function flagRow(db: Pick<TestDatabase, 'query'>, id: string): Promise<{ result: string | null; message: string | null; handled: boolean }> {
  const { rows } = await db.query('SELECT result, message, handled_at IS NOT NULL AS handled FROM pm.flags WHERE id = $1', [id]);
  return rows[0] as { result: string | null; message: string | null; handled: boolean };
}

test('a restart flag reaches the daemon through NOTIFY (polling set to an hour): restarted, row marked ok', { skip }, async (t) => {
  const db = await freshDatabase(shared as PostgresCluster);
  const sandbox = await createDaemonSandbox(t);
  const daemon = await daemonOn(sandbox, db, 3600);
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  const b = await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b to be Ready');

  const { rows } = await db.query("INSERT INTO pm.flags (process, action, requested_by) VALUES ('a', 'restart', 'billing-team') RETURNING id::text AS id");
  const id = (rows[0] as { id: string }).id;
  const restarted = await daemon.waitFor('a', (s) => s.pid !== a.pid && s.phase === 'Ready', 'a restarted by the flag');
  assert.equal(restarted.restarts, 1);
  await waitFor(async () => (await flagRow(db, id)).handled, { message: 'the row marked handled' });
  assert.equal((await flagRow(db, id)).result, 'ok');
  assert.equal((await daemon.get('b')).pid, b.pid, 'b untouched');
  const event = (await daemon.events('a')).find((e) => e.type === 'FlagHandled');
  assert.match(event?.message ?? '', /by billing-team/);
});

test('with the trigger disabled, polling picks the flag up; bad rows are ignored with a reason and block nothing', { skip }, async (t) => {
  const db = await freshDatabase(shared as PostgresCluster);
  await db.query('ALTER TABLE pm.flags DISABLE TRIGGER flags_notify');
  const sandbox = await createDaemonSandbox(t);
  const daemon = await daemonOn(sandbox, db, 0.2);
  await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b to be Ready');

  const insert = async (process: string, action: string): Promise<string> =>
    ((await db.query('INSERT INTO pm.flags (process, action) VALUES ($1, $2) RETURNING id::text AS id', [process, action])).rows[0] as { id: string }).id;
  const unknownAction = await insert('a', 'explode');
  const unknownProcess = await insert("x'; DROP TABLE pm.flags; --", 'restart');
  const pause = await insert('b', 'pause');

  await daemon.waitFor('b', (s) => s.phase === 'Paused' && !s.up, 'b paused by the polled flag');
  await waitFor(async () => (await flagRow(db, pause)).handled, { message: 'the pause row handled' });
  assert.deepEqual(await flagRow(db, unknownAction), { result: 'ignored', message: 'unknown action "explode": pm knows restart, pause, resume, reset', handled: true });
  const inert = await flagRow(db, unknownProcess);
  assert.equal(inert.result, 'ignored');
  assert.match(inert.message ?? '', /no process named "x'; DROP TABLE pm\.flags; --" is declared/);
  assert.equal((await flagRow(db, pause)).result, 'ok');
  assert.equal((await daemon.get('b')).up, false, 'b held stopped');

  const resume = await insert('b', 'resume');
  await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b resumed');
  await waitFor(async () => (await flagRow(db, resume)).result === 'ok', { message: 'the resume row handled' });
});

test('a database outage: the daemon keeps supervising, /readyz says degraded; back up, waiting flags are handled and every record of the outage is shipped', { skip }, async (t) => {
  const cluster = await startPostgres(t, { auth: 'scram' });
  if (!cluster) return;
  const db = await freshDatabase(cluster);
  const sandbox = await createDaemonSandbox(t);
  const daemon = await daemonOn(sandbox, db, 0.2);
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  assert.equal((await daemon.readyz()).status, 200);

  await cluster.stop();
  const outageBegan = new Date().toISOString();
  await waitFor(async () => (await daemon.readyz()).status === 503, { message: '/readyz to report the database down', timeoutMs: 20_000 });
  const report = (await daemon.readyz()).body;
  assert.equal(report.database?.up, false);
  assert.ok(report.reasons.some((r) => /database .* unreachable .*degraded/.test(r)), report.reasons.join('\n'));

  // Supervision goes on without the database.
  process.kill(a.pid as number, 'SIGKILL');
  const again = await daemon.waitFor('a', (s) => s.pid !== a.pid && s.phase === 'Ready', 'a restarted while the database is down');
  assert.equal(again.restarts, 1);

  const outageEnded = new Date().toISOString();
  await cluster.start();
  const { rows } = await db.query("INSERT INTO pm.flags (process, action) VALUES ('a', 'restart') RETURNING id::text AS id");
  const id = (rows[0] as { id: string }).id;
  await daemon.waitFor('a', (s) => s.pid !== again.pid && s.phase === 'Ready', 'a restarted by the flag after the outage', 30_000);
  await waitFor(async () => (await flagRow(db, id)).result === 'ok', { message: 'the row handled' });
  await waitFor(async () => (await daemon.readyz()).status === 200, { message: '/readyz ready again', timeoutMs: 30_000 });
  assert.match(await daemon.metrics(), /^pm_database_up 1$/m);

  // Nothing written during the outage is lost: each spool's lines are all in their table, once.
  for (const [file, table, key] of [
    ['audit.jsonl', 'pm.audit', (e: Record<string, unknown>) => `${String(e.time)} ${String(e.action)} ${String(e.process)}`],
    ['history.jsonl', 'pm.history', (e: Record<string, unknown>) => `${String(e.time)} ${String(e.kind)} ${String(e.process)}`],
  ] as const) {
    const local = (await readFile(join(sandbox.stateDir, file), 'utf8'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const during = local.filter((e) => String(e.time) >= outageBegan && String(e.time) <= outageEnded);
    assert.ok(during.length > 0, `${file} has entries from the outage (the restart of a)`);
    await waitFor(async () => Number((await db.query(`SELECT count(*) FROM ${table}`)).rows[0].count) >= local.length, { message: `${table} to catch up with ${file}`, timeoutMs: 15_000 });
    const shipped = (await db.query(`SELECT * FROM ${table} ORDER BY id`)).rows as Record<string, unknown>[];
    const asLocal = shipped.map((r) => key({ ...r, time: (r.time as Date).toISOString() }));
    assert.deepEqual(asLocal.slice(0, local.length), local.map(key), `${table} holds ${file}, in order, once`);
  }
});

test('a database without pm\'s schema: the daemon refuses to start and names pm db migrate', { skip }, async (t) => {
  const cluster = shared as PostgresCluster;
  const name = `bare_${process.pid}`;
  await cluster.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} OWNER ${pg.escapeIdentifier(cluster.user)}`);
  const sandbox = await createDaemonSandbox(t);
  const url = `postgres://${cluster.user}@${cluster.host}:${cluster.port}/${name}`;
  const result = await sandbox.pm(['daemon', '-f', sandbox.manifestsDir, '--listen', '127.0.0.1:0'], { env: { PM_DATABASE_URL: url, PGPASSWORD: cluster.password ?? '' }, timeoutMs: 30_000 });
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /pm db migrate/);
  assert.ok(!result.stderr.includes(cluster.password ?? '\u0000') && !result.stdout.includes(cluster.password ?? '\u0000'), 'no password in the output');
});

test('with a database configured, pm restart and pm pause write flags to the daemon (under its own host name) and report what it did', { skip }, async (t) => {
  const db = await freshDatabase(shared as PostgresCluster);
  const sandbox = await createDaemonSandbox(t);
  // The daemon's host name is its flag, unknown to the shell the commands run from: they find it in daemon.json.
  const daemon = await daemonOn(sandbox, db, 3600, ['--host-name', 'only-the-daemon-knows']);
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b to be Ready');
  const env = { PM_DATABASE_URL: db.url, ...db.env };

  const restarted = await sandbox.pm(['restart', 'a'], { env });
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.match(restarted.stdout, /^restart requested in .* \(pm\.flags \d+\)$/m);
  assert.match(restarted.stdout, /^a: ok: restart of a requested$/m);
  const after = await daemon.get('a');
  assert.notEqual(after.pid, a.pid);
  assert.equal(after.phase, 'Ready', 'pm restart waited for the new instance');

  const paused = await sandbox.pm(['pause', 'b', 'nope'], { env });
  assert.equal(paused.code, 1, 'one of the two names is unknown');
  assert.match(paused.stdout, /^b: ok: /m);
  assert.match(paused.stdout, /^nope: ignored: no process named "nope" is declared on \S+$/m);
  await daemon.waitFor('b', (s) => s.phase === 'Paused', 'b paused');

  const { rows } = await db.query('SELECT process, action, requested_by, host, handled_by, result FROM pm.flags ORDER BY id');
  const { userInfo } = await import('node:os');
  const row = (process: string, action: string, result: string): Record<string, string> => ({ process, action, requested_by: userInfo().username, host: 'only-the-daemon-knows', handled_by: 'only-the-daemon-knows', result });
  assert.deepEqual(rows, [row('a', 'restart', 'ok'), row('b', 'pause', 'ok'), row('nope', 'pause', 'ignored')]);
});

test('a schema migrated past this pm while the daemon runs: flags stop (FlagsNotRead names the fix), supervision goes on', { skip }, async (t) => {
  const db = await freshDatabase(shared as PostgresCluster);
  const sandbox = await createDaemonSandbox(t);
  const daemon = await daemonOn(sandbox, db, 0.2);
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  await db.query("INSERT INTO pm.schema_migrations (version, name) VALUES ((SELECT max(version) + 1 FROM pm.schema_migrations), 'from_the_future')");
  const { rows } = await db.query("INSERT INTO pm.flags (process, action) VALUES ('a', 'restart') RETURNING id::text AS id");
  const notRead = await daemon.waitForEvent(undefined, (e) => e.type === 'FlagsNotRead', 'the daemon to refuse the newer schema');
  assert.match(notRead.message, /is at version \d+; this pm knows up to \d+: upgrade pm/);
  assert.equal(notRead.severity, 'warning');
  process.kill(a.pid as number, 'SIGKILL');
  await daemon.waitFor('a', (s) => s.pid !== a.pid && s.phase === 'Ready', 'a restarted after the crash all the same');
  assert.equal((await flagRow(db, (rows[0] as { id: string }).id)).handled, false, 'the flag waits for an upgraded pm');
  assert.equal((await daemon.events()).filter((e) => e.type === 'FlagsNotRead').length, 1, 'told once, not at every poll');
});
