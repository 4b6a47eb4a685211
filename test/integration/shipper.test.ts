// The spool shipper against a real PostgreSQL: audit and events written locally reach pm.audit and
// pm.events; during an outage they stay local and arrive once it ends, exactly once and in order; a
// torn last line waits until it is whole; a new Shipper (or a lost or stale cursor file) ships
// nothing twice; rotated and truncated files start over; two hosts share the tables. pm audit and
// pm events read the same records from the database or, without one, from the spool.
import assert from 'node:assert/strict';
import { appendFile, readFile, rename, truncate, writeFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test, type TestContext } from 'node:test';
import type { Cli } from '../../src/cli/command.js';
import { auditCommand } from '../../src/cli/commands/audit.js';
import { eventsCommand } from '../../src/cli/commands/events.js';
import { makeStyle } from '../../src/cli/output/style.js';
import type { DaemonEvent } from '../../src/daemon/api.js';
import { Database } from '../../src/db/connection.js';
import { MIGRATIONS, type Migration } from '../../src/db/migrations.js';
import { resolveDatabaseSettings } from '../../src/db/settings.js';
import { FileStore } from '../../src/store/file-store.js';
import { HISTORY_SPOOL_FILE, type HistoryEntry } from '../../src/store/history.js';
import { Journal } from '../../src/store/journal.js';
import type { AuditEntry } from '../../src/store/records.js';
import { CURSOR_FILE, Shipper, spoolSources, type ShipperOptions } from '../../src/store/shipper.js';
import { createPostgresCluster, migratedDatabase, postgresSkip, startPostgres, type PostgresCluster, type Query, type TestDatabase } from '../support/postgres.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let shared: PostgresCluster | undefined;
before(async () => {
  if (!skip) shared = await createPostgresCluster();
});
after(() => shared?.destroy());

/** A fresh database on `cluster`, migrated (to `migrations`). */
const freshDatabase = (cluster: PostgresCluster, migrations?: readonly Migration[]): Promise<TestDatabase> => migratedDatabase(cluster, { prefix: 'ship', ...(migrations && { migrations }) });

/** A Database as the daemon makes one, with quick reconnects; closed after the test. */
async function connect(t: TestContext, url: string): Promise<Database> {
  const db = new Database(await resolveDatabaseSettings({ url }, {}), { poolSize: 2, connectTimeoutMs: 2_000, statementTimeoutMs: 5_000, reconnectBaseMs: 20, reconnectCapMs: 200, applicationName: 'pm-shipper-test' });
  t.after(() => db.close());
  return db;
}

interface Spool {
  dir: string;
  store: FileStore;
  events: Journal;
  shipper: Shipper;
  /** What the shipper logged: "level message". */
  logs: string[];
}

/** A state directory (new, or `dir`) with its two spool files and a Shipper for `host`, closed after the test. */
async function spool(t: TestContext, db: Database, host: string, options: { dir?: string } & Partial<ShipperOptions> = {}): Promise<Spool> {
  const dir = options.dir ?? (await tempDir(t));
  const store = await FileStore.open(dir);
  const events = await Journal.open(join(dir, 'events.jsonl'));
  const logs: string[] = [];
  const log = { info: (_: object, message: string) => void logs.push(`info ${message}`), warn: (_: object, message: string) => void logs.push(`warn ${message}`) };
  const shipper = new Shipper(db, { host, stateDir: dir, sources: spoolSources(dir), log, ...options });
  t.after(() => shipper.close());
  return { dir, store, events, shipper, logs };
}

const BASE = Date.UTC(2026, 0, 1);

function auditEntry(seq: number, process = 'api'): AuditEntry {
  return { time: new Date(BASE + seq * 1000).toISOString(), actor: 'tester', command: 'apply', action: 'start', process, reason: `seq ${seq}`, result: 'ok', durationMs: seq };
}

/** An event about `process` (null: daemon-wide). */
function event(seq: number, process: string | null = 'api'): DaemonEvent {
  return { time: new Date(BASE + seq * 1000).toISOString(), type: 'Started', ...(process !== null && { process }), severity: 'normal', message: `seq ${seq}` };
}

/** Appends audit and event entries seq from..to-1 to a spool. */
async function write(s: Spool, from: number, to: number): Promise<void> {
  const seqs = Array.from({ length: to - from }, (_, i) => from + i);
  await s.store.appendAudit(seqs.map((n) => auditEntry(n)));
  await s.events.append(seqs.map((n) => event(n)));
}

/** The audit and event sequence numbers in the database, in row order (of one host, if given). */
async function shipped(query: Query, host?: string): Promise<{ audit: number[]; events: number[] }> {
  const where = host === undefined ? '' : ' WHERE host = $1';
  const params = host === undefined ? [] : [host];
  const audit = await query(`SELECT duration_ms FROM pm.audit${where} ORDER BY id`, params);
  const events = await query(`SELECT message FROM pm.events${where} ORDER BY id`, params);
  return {
    audit: audit.rows.map((r: { duration_ms: number }) => r.duration_ms),
    events: events.rows.map((r: { message: string }) => Number(r.message.replace('seq ', ''))),
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test('entries appended locally are shipped once, every field with its spool line', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const s = await spool(t, await connect(t, url), 'alpha');
  await s.store.appendAudit([auditEntry(0), { ...auditEntry(1), result: 'failed', error: 'exit 1\u0000' }]);
  await s.events.append([event(0), event(1, null)]);

  assert.equal(await s.shipper.ship(), 4);
  const audit = await query('SELECT time, host, actor, command, action, process, reason, result, duration_ms, error, spool, spool_offset FROM pm.audit ORDER BY id');
  assert.deepEqual(
    audit.rows.map((r: Record<string, unknown>) => ({ ...r, time: (r.time as Date).toISOString() })),
    [
      { time: '2026-01-01T00:00:00.000Z', host: 'alpha', actor: 'tester', command: 'apply', action: 'start', process: 'api', reason: 'seq 0', result: 'ok', duration_ms: 0, error: null, spool: audit.rows[0].spool, spool_offset: '0' },
      { time: '2026-01-01T00:00:01.000Z', host: 'alpha', actor: 'tester', command: 'apply', action: 'start', process: 'api', reason: 'seq 1', result: 'failed', duration_ms: 1, error: 'exit 1', spool: audit.rows[0].spool, spool_offset: String(JSON.stringify(auditEntry(0)).length + 1) },
    ],
  );
  assert.match(audit.rows[0].spool, /^audit:[0-9a-f]{16}$/);
  const events = await query('SELECT host, type, process, severity, message, spool FROM pm.events ORDER BY id');
  assert.deepEqual(
    events.rows.map((r: Record<string, unknown>) => [r.host, r.type, r.process, r.severity, r.message]),
    [
      ['alpha', 'Started', 'api', 'normal', 'seq 0'],
      ['alpha', 'Started', null, 'normal', 'seq 1'],
    ],
  );
  assert.match(events.rows[0].spool, /^events:[0-9a-f]{16}$/);

  assert.equal(await s.shipper.ship(), 0, 'nothing new');
  const cursors = JSON.parse(await readFile(join(s.dir, CURSOR_FILE), 'utf8')) as { sources: Record<string, { offset: number }> };
  assert.equal(cursors.sources.audit?.offset, (await readFile(join(s.dir, 'audit.jsonl'))).length);
  assert.equal(cursors.sources.events?.offset, (await readFile(join(s.dir, 'events.jsonl'))).length);
  assert.equal(s.shipper.status().shipped, 4);
});

test('history entries reach pm.history as jsonb; NUL and half an emoji (a message cut in a surrogate pair) are made safe instead of failing the batch', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const s = await spool(t, await connect(t, url), 'alpha');
  const history = await Journal.open(join(s.dir, HISTORY_SPOOL_FILE));
  const cut = `script failed: ${'x'.repeat(10)}${'\u{1F600}'.slice(0, 1)}`;
  const entries: HistoryEntry[] = [
    { time: new Date(BASE).toISOString(), process: 'api', kind: 'exit', detail: { code: 3, signal: null, known: true, verdict: 'failed', restart: true } },
    { time: new Date(BASE + 1000).toISOString(), process: 'api', kind: 'restart', detail: { strategy: 'script', result: 'failed', error: cut, note: 'a\u0000b' } },
    { time: new Date(BASE + 2000).toISOString(), process: 'api', kind: 'start', detail: { result: 'ok', pid: 42 } },
  ];
  await history.append(entries);
  assert.equal(await s.shipper.ship(), 3);
  const { rows } = await query('SELECT host, process, kind, detail, spool FROM pm.history ORDER BY id');
  assert.deepEqual(
    rows.map((r: Record<string, unknown>) => [r.host, r.process, r.kind, r.detail]),
    [
      ['alpha', 'api', 'exit', { code: 3, signal: null, known: true, verdict: 'failed', restart: true }],
      ['alpha', 'api', 'restart', { strategy: 'script', result: 'failed', error: `script failed: ${'x'.repeat(10)}\uFFFD`, note: 'ab' }],
      ['alpha', 'api', 'start', { result: 'ok', pid: 42 }],
    ],
  );
  assert.match(rows[0].spool, /^history:[0-9a-f]{16}$/);
  assert.equal(await s.shipper.ship(), 0, 'nothing twice');
});

test('lines that are not entries are skipped with a warning; the others are shipped', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const s = await spool(t, await connect(t, url), 'alpha');
  await s.store.appendAudit(auditEntry(0));
  await appendFile(join(s.dir, 'audit.jsonl'), 'not json\n{"time": "yesterday", "actor": "x"}\n');
  await s.store.appendAudit(auditEntry(1));
  assert.equal(await s.shipper.ship(), 2);
  assert.deepEqual((await shipped(query)).audit, [0, 1]);
  assert.equal(s.logs.filter((l) => /is not a valid audit entry: skipped/.test(l)).length, 2, s.logs.join('\n'));
  assert.equal(await s.shipper.ship(), 0);
  assert.equal(s.logs.filter((l) => /skipped/.test(l)).length, 2, 'warned once');
});

test('a database outage: entries stay local, one log line; back up, all arrive exactly once and in order', { skip }, async (t) => {
  const cluster = await startPostgres(t);
  if (!cluster) return;
  const { url, query } = await freshDatabase(cluster);
  const db = await connect(t, url);
  const s = await spool(t, db, 'alpha', { intervalMs: 20, batchBytes: 1024 });
  s.shipper.start();
  await write(s, 0, 10);
  await waitFor(async () => (await shipped(query)).audit.length === 10 && (await shipped(query)).events.length === 10, { message: 'the first entries shipped' });

  await cluster.stop();
  await write(s, 10, 60);
  await waitFor(() => s.shipper.status().waiting, { message: 'the shipper to notice the outage', timeoutMs: 20_000 });
  // Passes go on, doing nothing and saying nothing more.
  const passes = s.shipper.status().passes;
  await waitFor(() => s.shipper.status().passes >= passes + 10, { message: 'ten more passes during the outage' });
  assert.deepEqual(
    s.logs.filter((l) => l.startsWith('warn')),
    ['warn database unreachable: audit, events and history stay in the local spool until it is back'],
  );
  assert.equal((await s.store.readAudit()).length, 60, 'all kept locally');

  await cluster.start();
  await waitFor(
    async () => {
      const rows = await shipped(query).catch(() => undefined);
      return rows?.audit.length === 60 && rows.events.length === 60;
    },
    { message: 'everything shipped after the outage', timeoutMs: 30_000 },
  );
  assert.deepEqual(await shipped(query), { audit: range(0, 60), events: range(0, 60) });
  assert.equal(await s.shipper.ship(), 0);
  assert.ok(s.logs.includes('info database back: shipping the spool'), s.logs.join('\n'));
  assert.equal(s.shipper.status().waiting, false);
});

test('a torn last line is not shipped until it is whole (a torn first line neither)', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const s = await spool(t, await connect(t, url), 'alpha');
  await s.store.appendAudit([auditEntry(0), auditEntry(1)]);
  const line = JSON.stringify(auditEntry(2));
  await appendFile(join(s.dir, 'audit.jsonl'), line.slice(0, 20));
  const firstEvent = JSON.stringify(event(0));
  await writeFile(join(s.dir, 'events.jsonl'), firstEvent.slice(0, 10));

  assert.equal(await s.shipper.ship(), 2);
  assert.deepEqual(await shipped(query), { audit: [0, 1], events: [] });

  await appendFile(join(s.dir, 'audit.jsonl'), `${line.slice(20)}\n`);
  await appendFile(join(s.dir, 'events.jsonl'), `${firstEvent.slice(10)}\n`);
  assert.equal(await s.shipper.ship(), 2);
  assert.deepEqual(await shipped(query), { audit: [0, 1, 2], events: [0] });
});

test('a new Shipper on the same state directory ships nothing twice, nor after a stale, lost or broken cursor file', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const db = await connect(t, url);
  const first = await spool(t, db, 'alpha');
  await write(first, 0, 5);
  assert.equal(await first.shipper.ship(), 10);
  await first.shipper.close();
  const cursorPath = join(first.dir, CURSOR_FILE);
  const stale = await readFile(cursorPath, 'utf8');

  const second = await spool(t, db, 'alpha', { dir: first.dir });
  assert.equal(await second.shipper.ship(), 0);
  await write(second, 5, 8);
  assert.equal(await second.shipper.ship(), 6, 'only the new lines');
  await second.shipper.close();
  assert.deepEqual(await shipped(query), { audit: range(0, 8), events: range(0, 8) });

  // A crash between COMMIT and the cursor write: the cursor file is behind the database.
  await writeFile(cursorPath, stale);
  const third = await spool(t, db, 'alpha', { dir: first.dir });
  assert.equal(await third.shipper.ship(), 0, 'the lines sent again insert nothing');
  await third.shipper.close();
  // No cursor file at all, then an unreadable one: everything is sent again, nothing inserted.
  await unlink(cursorPath);
  const fourth = await spool(t, db, 'alpha', { dir: first.dir });
  assert.equal(await fourth.shipper.ship(), 0);
  await fourth.shipper.close();
  await writeFile(cursorPath, '{"version": 1, "sour');
  const fifth = await spool(t, db, 'alpha', { dir: first.dir });
  assert.equal(await fifth.shipper.ship(), 0);
  assert.ok(fifth.logs.some((l) => /is unreadable: shipping the spool from the start/.test(l)), fifth.logs.join('\n'));
  assert.deepEqual(await shipped(query), { audit: range(0, 8), events: range(0, 8) });
});

test('two hosts share the tables: each ships its own, in order, concurrently, in many batches', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const db = await connect(t, url);
  // The same entries on both: the host column tells them apart.
  const alpha = await spool(t, db, 'alpha', { batchBytes: 2048 });
  const beta = await spool(t, db, 'beta', { batchBytes: 2048 });
  await Promise.all([write(alpha, 0, 200), write(beta, 0, 200)]);
  const [a, b] = await Promise.all([alpha.shipper.ship(), beta.shipper.ship()]);
  assert.equal(a, 400);
  assert.equal(b, 400);
  assert.deepEqual(await shipped(query, 'alpha'), { audit: range(0, 200), events: range(0, 200) });
  assert.deepEqual(await shipped(query, 'beta'), { audit: range(0, 200), events: range(0, 200) });
  const { rows } = await query('SELECT count(*)::int AS n, count(DISTINCT spool)::int AS spools FROM pm.audit');
  assert.deepEqual(rows[0], { n: 400, spools: 1 }, 'identical files have one spool identity, told apart by host');
});

test('a rotated file, a truncated one and one rewritten past the cursor are shipped from the start under a new identity', { skip }, async (t) => {
  const { url, query } = await freshDatabase(shared as PostgresCluster);
  const s = await spool(t, await connect(t, url), 'alpha');
  await write(s, 0, 5);
  assert.equal(await s.shipper.ship(), 10);

  // Rotated: moved away, a new file (a new inode) takes its place.
  await rename(join(s.dir, 'audit.jsonl'), join(s.dir, 'audit.jsonl.1'));
  await s.store.appendAudit([auditEntry(5), auditEntry(6)]);
  // Rewritten in place (copytruncate) and grown past the old cursor before the next pass.
  await truncate(join(s.dir, 'events.jsonl'), 0);
  await s.events.append(range(100, 110).map((n) => event(n)));
  assert.equal(await s.shipper.ship(), 12);
  assert.deepEqual(await shipped(query), { audit: range(0, 7), events: [...range(0, 5), ...range(100, 110)] });

  // Truncated, shorter than the cursor.
  await truncate(join(s.dir, 'events.jsonl'), 0);
  await s.events.append([event(200)]);
  assert.equal(await s.shipper.ship(), 1);
  assert.deepEqual((await shipped(query)).events, [...range(0, 5), ...range(100, 110), 200]);
  const { rows } = await query('SELECT count(DISTINCT spool)::int AS n FROM pm.events');
  assert.equal(rows[0].n, 3, 'one identity per generation of the file');
  assert.equal(s.logs.filter((l) => /rotated or truncated|rewritten/.test(l)).length, 3, s.logs.join('\n'));
});

test('a schema without migration 2: the failure is logged once and retried; close() is idempotent and ends the passes', { skip }, async (t) => {
  const { url } = await freshDatabase(shared as PostgresCluster, MIGRATIONS.filter((m) => m.version === 1));
  const s = await spool(t, await connect(t, url), 'alpha', { intervalMs: 10 });
  await write(s, 0, 1);
  s.shipper.start();
  assert.throws(() => s.shipper.start(), /starts once/);
  await waitFor(() => s.shipper.status().passes >= 5, { message: 'five passes' });
  assert.match(s.shipper.status().lastError ?? '', /spool/);
  assert.deepEqual(
    s.logs.filter((l) => l.startsWith('warn')).length,
    1,
    s.logs.join('\n'),
  );
  await assert.rejects(s.shipper.ship(), /spool/);
  const closing = s.shipper.close();
  assert.equal(s.shipper.close(), closing);
  await closing;
  assert.equal(s.shipper.state, 'closed');
  const passes = s.shipper.status().passes;
  assert.equal(await s.shipper.ship(), 0);
  assert.equal(s.shipper.status().passes, passes);
});

/** Runs a command's run() with its output captured. */
async function runCommand(command: typeof auditCommand, args: Record<string, string | boolean>, positionals: string[], stateDir: string, env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  const capture = (): { stream: NodeJS.WriteStream; text: () => string } => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    return { stream: stream as unknown as NodeJS.WriteStream, text: () => Buffer.concat(chunks).toString('utf8') };
  };
  const out = capture();
  const err = capture();
  const cli: Cli = { stdout: out.stream, stderr: err.stream, stdin: process.stdin, env, cwd: stateDir, style: makeStyle(false), errStyle: makeStyle(false), stateDir, signal: new AbortController().signal };
  const code = await command.run(args, positionals, cli);
  return { code, stdout: out.text(), stderr: err.text() };
}

test('pm audit and pm events read the database when one is configured, else the local spool', { skip }, async (t) => {
  const { url } = await freshDatabase(shared as PostgresCluster);
  const db = await connect(t, url);
  const s = await spool(t, db, 'alpha');
  await s.store.appendAudit([auditEntry(0, 'api'), auditEntry(1, 'web'), auditEntry(2, 'api'), { ...auditEntry(3, 'api'), result: 'failed', error: 'exit 3' }]);
  await s.events.append([event(0, 'api'), event(1, null), event(2, 'web'), event(3, 'api')]);
  await s.shipper.ship();
  const config = await tempDir(t);
  const local = { XDG_CONFIG_HOME: config };
  const remote = { XDG_CONFIG_HOME: config, PM_DATABASE_URL: url };

  for (const env of [local, remote]) {
    const from = env === local ? 'local' : 'database';
    const json = await runCommand(auditCommand, { process: 'api', limit: '2', output: 'json' }, [], s.dir, env);
    const records = JSON.parse(json.stdout) as (AuditEntry & { host?: string })[];
    assert.deepEqual(records.map((r) => r.durationMs), [2, 3], `${from}: the newest two about api, newest last`);
    assert.equal(records[1]?.error, 'exit 3');
    assert.equal(records[0]?.host, env === local ? undefined : 'alpha');

    const table = await runCommand(auditCommand, { since: '2026-01-01T00:00:01Z' }, [], s.dir, env);
    assert.equal(table.code, 0);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', env === local ? /^TIME\s+PROCESS\s+ACTION\s+RESULT\s+ACTOR\s+COMMAND\s+DURATION\s+REASON$/ : /^TIME\s+HOST\s+PROCESS/);
    assert.equal(lines.length, 4, `${from}: three since 00:00:01\n${table.stdout}`);
    assert.match(lines[3] ?? '', /failed .*seq 3: exit 3$/);

    const events = JSON.parse((await runCommand(eventsCommand, { output: 'json', limit: '0' }, ['api'], s.dir, env)).stdout) as DaemonEvent[];
    assert.deepEqual(events.map((e) => e.message), ['seq 0', 'seq 3'], `${from}: pm events api`);
    const all = await runCommand(eventsCommand, {}, [], s.dir, env);
    assert.match(all.stdout, /^TIME\s+(HOST\s+)?SEVERITY\s+TYPE\s+PROCESS\s+MESSAGE\n/);
    assert.match(all.stdout, /Started\s+-\s+seq 1\n/, 'a daemon-wide event shows - for its process');
    const none = await runCommand(eventsCommand, { since: '1h' }, ['api'], s.dir, env);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^no events about api since /);
  }
  // --local reads the spool even with a database configured.
  const forced = JSON.parse((await runCommand(auditCommand, { local: true, output: 'json' }, [], s.dir, remote)).stdout) as { host?: string }[];
  assert.equal(forced.length, 4);
  assert.equal(forced[0]?.host, undefined);
  await assert.rejects(runCommand(auditCommand, { since: 'yesterday' }, [], s.dir, local), /--since: "yesterday" is neither a duration nor a time/);
  await assert.rejects(runCommand(eventsCommand, { output: 'yaml' }, [], s.dir, local), /-o: unknown format "yaml"/);
});
