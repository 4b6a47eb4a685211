// Several pm daemons sharing one PostgreSQL (a fleet): each registers in pm.daemons with what it
// declares; a flag goes to the daemon that declares its process, or to the host it is addressed
// to; a process no daemon declares is ignored, once. Many writers at once: every row is handled
// exactly once, by the right daemon. Two daemons under one host name are told about it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import type { DaemonEvent } from '../../src/daemon/api.js';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon, type Daemon } from '../support/daemon.js';
import { createPostgresCluster, migratedDatabase, postgresSkip, type PostgresCluster, type TestDatabase } from '../support/postgres.js';
import type { Sandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let shared: PostgresCluster | undefined;
before(async () => {
  if (!skip) shared = await createPostgresCluster();
});
after(() => shared?.destroy());

/** A daemon named `host` in the shared database, declaring `names` (idle fixtures). */
async function daemonAs(sandbox: Sandbox, db: TestDatabase, host: string, names: string[]): Promise<Daemon> {
  for (const name of names) await sandbox.write(`manifests/${name}.yaml`, fixtureManifest(sandbox, { name, program: 'idle' }, quickRestarts()));
  // Polls every second: a row no daemon declares is ignored by the first poll after it is 10 s old.
  return startDaemon(sandbox, { env: { PM_DATABASE_URL: db.url, PM_HOST_NAME: host, ...db.env }, args: ['--flag-poll-seconds', '1'] });
}

async function registered(db: TestDatabase): Promise<Record<string, string[]>> {
  const { rows } = await db.query('SELECT host, processes FROM pm.daemons ORDER BY host');
  return Object.fromEntries((rows as { host: string; processes: string[] }[]).map((r) => [r.host, r.processes]));
}

/** The flag ids each event about a flag names, from a state directory's events.jsonl. */
async function flagIdsInEvents(stateDir: string): Promise<string[]> {
  const text = await readFile(join(stateDir, 'events.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as DaemonEvent)
    .filter((e) => e.type === 'FlagHandled' || e.type === 'FlagIgnored')
    .map((e) => /^flag (\d+) /.exec(e.message)?.[1] ?? 'unparsed');
}

test('two daemons share the flags: each takes what it declares or what is addressed to it; 8 writers, 200 rows, each handled once by the right one', { skip }, async (t) => {
  const db = await migratedDatabase(shared as PostgresCluster, { prefix: 'fleet' });
  const alphaBox = await createDaemonSandbox(t);
  const betaBox = await createDaemonSandbox(t);
  const [alpha, beta] = await Promise.all([daemonAs(alphaBox, db, 'alpha', ['a', 'both']), daemonAs(betaBox, db, 'beta', ['c', 'both'])]);
  await alpha.waitFor('a', (s) => s.phase === 'Ready', 'a Ready');
  await beta.waitFor('c', (s) => s.phase === 'Ready', 'c Ready');
  // Each registers at its first drain, at start: only then can a row addressed to no host find it.
  await waitFor(async () => Object.keys(await registered(db)).length === 2, { message: 'both daemons registered in pm.daemons' });
  assert.deepEqual(await registered(db), { alpha: ['a', 'both'], beta: ['both', 'c'] });

  // What each row asks and who must handle it with what result ('either': any of the two).
  const kinds = [
    { process: 'a', action: 'reset', host: null, by: 'alpha', result: 'ok' },
    { process: 'c', action: 'reset', host: null, by: 'beta', result: 'ok' },
    { process: 'ghost', action: 'restart', host: null, by: 'either', result: 'ignored' },
    { process: 'a', action: 'reset', host: 'beta', by: 'beta', result: 'ignored' },
    { process: 'c', action: 'explode', host: null, by: 'beta', result: 'ignored' },
    { process: 'both', action: 'reset', host: 'alpha', by: 'alpha', result: 'ok' },
    { process: "x'); DELETE FROM pm.daemons; --", action: 'pause', host: null, by: 'either', result: 'ignored' },
    { process: 'both', action: 'reset', host: null, by: 'either', result: 'ok' },
  ] as const;
  const writers = 8;
  const perWriter = 25;
  const cluster = shared as PostgresCluster;
  const expected = new Map<string, (typeof kinds)[number]>();
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const client = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, database: db.name, connectionTimeoutMillis: 5_000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        for (let i = 0; i < perWriter; i++) {
          const kind = kinds[(w + i) % kinds.length] as (typeof kinds)[number];
          const { rows } = await client.query<{ id: string }>('INSERT INTO pm.flags (process, action, host, requested_by) VALUES ($1, $2, $3, $4) RETURNING id::text AS id', [kind.process, kind.action, kind.host, `writer ${w}`]);
          expected.set((rows[0] as { id: string }).id, kind);
        }
      } finally {
        await client.end();
      }
    }),
  );
  assert.equal(expected.size, writers * perWriter);

  await waitFor(async () => Number((await db.query('SELECT count(*) FROM pm.flags WHERE handled_at IS NULL')).rows[0].count) === 0, { message: 'every row handled', timeoutMs: 30_000 });
  const { rows } = await db.query('SELECT id::text AS id, handled_by, result, message FROM pm.flags ORDER BY id');
  assert.equal(rows.length, writers * perWriter);
  for (const row of rows as { id: string; handled_by: string; result: string; message: string }[]) {
    const kind = expected.get(row.id);
    assert.ok(kind, `row ${row.id} was written by a writer`);
    assert.equal(row.result, kind.result, `row ${row.id} (${kind.process} ${kind.action} @${kind.host}): ${row.message}`);
    if (kind.by !== 'either') assert.equal(row.handled_by, kind.by, `row ${row.id} (${kind.process} @${kind.host}) handled by ${kind.by}`);
    else assert.ok(['alpha', 'beta'].includes(row.handled_by), `row ${row.id} handled by one of the daemons`);
  }
  const addressedElsewhere = (rows as { id: string; message: string }[]).find((r) => expected.get(r.id)?.host === 'beta');
  assert.equal(addressedElsewhere?.message, 'no process named "a" is declared on beta');

  // Exactly once: each row is the subject of one event, on one of the two daemons.
  // The spool is appended to after each row is handled: wait until it holds as many as were written.
  const flagEvents = async (): Promise<string[]> => [...(await flagIdsInEvents(alphaBox.stateDir)), ...(await flagIdsInEvents(betaBox.stateDir))].sort((x, y) => Number(x) - Number(y));
  await waitFor(async () => (await flagEvents()).length >= expected.size, { message: 'an event for every row in the spools' });
  assert.deepEqual(await flagEvents(), [...expected.keys()].sort((x, y) => Number(x) - Number(y)));

  // The ok rows are in the history of the daemon that handled them, shipped with its host name.
  const okByAlpha = (rows as { handled_by: string; result: string }[]).filter((r) => r.handled_by === 'alpha' && r.result === 'ok').length;
  await waitFor(async () => Number((await db.query("SELECT count(*) FROM pm.history WHERE host = 'alpha' AND kind = 'flag'")).rows[0].count) === okByAlpha, {
    message: `alpha's ${okByAlpha} flag entries shipped to pm.history`,
    timeoutMs: 15_000,
  });
  assert.equal((await alpha.get('a')).phase, 'Ready', 'resets leave a running process alone');

  // A process given to alpha through its API (not its directory) is registered at once, so beta
  // leaves its flags to alpha.
  const extra = await alphaBox.write('extra/n.yaml', fixtureManifest(alphaBox, { name: 'n', program: 'idle' }, quickRestarts()));
  const applied = await alphaBox.pm(['apply', '-f', extra]);
  assert.equal(applied.code, 0, applied.stderr);
  await waitFor(async () => (await registered(db)).alpha?.includes('n') === true, { message: 'n registered for alpha' });
  const { rows: pause } = await db.query("INSERT INTO pm.flags (process, action) VALUES ('n', 'pause') RETURNING id::text AS id");
  const pauseId = (pause[0] as { id: string }).id;
  await waitFor(async () => (await db.query('SELECT handled_at FROM pm.flags WHERE id = $1', [pauseId])).rows[0].handled_at !== null, { message: 'the pause of n handled' });
  assert.deepEqual((await db.query('SELECT handled_by, result FROM pm.flags WHERE id = $1', [pauseId])).rows[0], { handled_by: 'alpha', result: 'ok' });
  await alpha.waitFor('n', (s) => s.phase === 'Paused', 'n paused on alpha');
});

test('two daemons under one host name: each is told once (HostNameConflict), and both keep working; a restart of one is no conflict', { skip }, async (t) => {
  const db = await migratedDatabase(shared as PostgresCluster, { prefix: 'fleet' });
  const firstBox = await createDaemonSandbox(t);
  let first = await daemonAs(firstBox, db, 'twin', ['p']);
  await waitFor(async () => (await registered(db)).twin?.[0] === 'p', { message: 'the first registered' });
  // Its own restart takes its row back without a warning.
  first.kill('SIGTERM');
  await first.stopped;
  first = await daemonAs(firstBox, db, 'twin', ['p']);
  await first.waitFor('p', (s) => s.phase === 'Ready', 'p Ready after the restart');

  const second = await daemonAs(await createDaemonSandbox(t), db, 'twin', ['q']);
  const conflicts = await Promise.all(
    [first, second].map((d, i) => d.waitForEvent(undefined, (e) => e.type === 'HostNameConflict', `daemon ${i + 1} told about the other`)),
  );
  for (const conflict of conflicts) {
    assert.match(conflict.message, /registered in pm\.daemons as "twin".*give each daemon its own hostName/);
    assert.equal(conflict.severity, 'warning');
  }
  assert.equal((await first.events()).filter((e) => e.type === 'HostNameConflict').length, 1, 'told once, not at each poll, and not about its own previous run');
  await first.waitFor('p', (s) => s.phase === 'Ready', 'p still Ready');
  await second.waitFor('q', (s) => s.phase === 'Ready', 'q Ready');
});
