// Per-process history: the daemon records starts, exits with their codes, stops, restarts,
// breaker transitions and flags handled in STATE/history.jsonl, and with a database ships them to
// pm.history; pm history reads either, narrowed by name, kind and time.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { HistoryEntry } from '../../src/store/history.js';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import { createPostgresCluster, migratedDatabase, postgresSkip, type PostgresCluster } from '../support/postgres.js';
import type { Sandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const skip = postgresSkip();
let shared: PostgresCluster | undefined;
before(async () => {
  if (!skip) shared = await createPostgresCluster();
});
after(() => shared?.destroy());

/** A service that exits 3 at once: two failures open its breaker for an hour. */
async function writeCrasher(sandbox: Sandbox): Promise<void> {
  await sandbox.write(
    'manifests/crash.yaml',
    fixtureManifest(sandbox, { name: 'crash', program: 'job', env: { EXIT_CODE: 3 } }, quickRestarts({ policy: 'on-failure', breaker: { maxFailures: 2, windowSeconds: 600, cooldownSeconds: 3600 } })),
  );
}

async function historyJson(sandbox: Sandbox, args: string[], env: Record<string, string> = {}): Promise<HistoryEntry[]> {
  const result = await sandbox.pm(['history', ...args, '-o', 'json'], { env });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as HistoryEntry[];
}

test('without a database: starts, exits with their code and the breaker opening are in history.jsonl; pm history narrows by name and kind', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await writeCrasher(sandbox);
  await sandbox.write('manifests/idle.yaml', fixtureManifest(sandbox, { name: 'idle', program: 'idle' }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor('crash', (s) => s.breaker.phase === 'open', 'the breaker of crash to open');
  await daemon.waitFor('idle', (s) => s.phase === 'Ready', 'idle Ready');
  assert.equal((await daemon.control('pause', 'idle')).changed, true);
  await daemon.waitFor('idle', (s) => s.phase === 'Paused' && !s.up, 'idle paused');

  // The spool is appended after the event: poll until the last entry expected is there.
  await waitFor(async () => (await historyJson(sandbox, ['crash', '--kind', 'breaker'])).length === 1, { message: 'the breaker entry written' });
  const crash = await historyJson(sandbox, ['crash']);
  assert.deepEqual(
    crash.map((e) => e.kind),
    ['start', 'exit', 'start', 'exit', 'breaker'],
  );
  assert.ok(crash.every((e) => e.process === 'crash'));
  const [start, exit, , , breaker] = crash as [HistoryEntry, HistoryEntry, HistoryEntry, HistoryEntry, HistoryEntry];
  assert.equal(start.detail.result, 'ok');
  assert.equal(typeof start.detail.pid, 'number');
  assert.deepEqual({ code: exit.detail.code, signal: exit.detail.signal, verdict: exit.detail.verdict, restart: exit.detail.restart }, { code: 3, signal: null, verdict: 'failed', restart: true });
  assert.equal(typeof exit.detail.ranMs, 'number');
  assert.deepEqual({ from: breaker.detail.from, to: breaker.detail.to, failures: breaker.detail.failures }, { from: 'closed', to: 'open', failures: 2 });

  const exits = await historyJson(sandbox, ['crash', '--kind', 'exit']);
  assert.deepEqual(
    exits.map((e) => e.detail.code),
    [3, 3],
  );
  await waitFor(async () => (await historyJson(sandbox, ['idle', '--kind', 'stop'])).length === 1, { message: 'the stop of idle written' });
  const [stop] = await historyJson(sandbox, ['idle', '--kind', 'stop']);
  assert.match(String(stop?.detail.reason), /^paused/);
  assert.equal((await historyJson(sandbox, ['--limit', '2'])).length, 2, '--limit keeps the newest');

  const table = await sandbox.pm(['history', 'crash', '--kind', 'exit']);
  assert.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^TIME\s+PROCESS\s+KIND\s+DETAIL$/);
  assert.equal(lines.length, 3);
  assert.match(lines[1] ?? '', /crash\s+exit\s+code=3 signal=null known=true verdict=failed restart=true ranMs=\d+$/);

  const none = await sandbox.pm(['history', 'nothing']);
  assert.equal(none.code, 0);
  assert.match(none.stderr, /^no history about nothing in .*history\.jsonl$/m);
  const bad = await sandbox.pm(['history', '--kind', 'crashes']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--kind: unknown kind "crashes"/);
});

test('with a database: the same history reaches pm.history with the host name, and a flag handled is in it; pm history reads the database, --local the file', { skip }, async (t) => {
  const db = await migratedDatabase(shared as PostgresCluster, { prefix: 'history' });
  const sandbox = await createDaemonSandbox(t);
  await writeCrasher(sandbox);
  const env = { PM_DATABASE_URL: db.url, PM_HOST_NAME: 'histhost', ...db.env };
  const daemon = await startDaemon(sandbox, { env, args: ['--flag-poll-seconds', '3600'] });
  await daemon.waitFor('crash', (s) => s.breaker.phase === 'open', 'the breaker of crash to open');
  const { rows } = await db.query("INSERT INTO pm.flags (process, action, requested_by) VALUES ('crash', 'reset', 'ops-bot') RETURNING id");
  const flagId = Number((rows[0] as { id: string }).id);

  await waitFor(async () => Number((await db.query("SELECT count(*) FROM pm.history WHERE kind = 'flag'")).rows[0].count) === 1, { message: 'the flag entry shipped', timeoutMs: 15_000 });
  const shipped = (await db.query('SELECT host, process, kind, detail FROM pm.history ORDER BY id')).rows as { host: string; process: string; kind: string; detail: Record<string, unknown> }[];
  assert.ok(shipped.every((r) => r.host === 'histhost' && r.process === 'crash'));
  const kinds = shipped.map((r) => r.kind);
  assert.deepEqual(kinds.slice(0, 5), ['start', 'exit', 'start', 'exit', 'breaker']);
  assert.ok(kinds.includes('flag'));
  const flag = shipped.find((r) => r.kind === 'flag');
  assert.deepEqual(flag?.detail, { flag: flagId, action: 'reset', requestedBy: 'ops-bot', result: 'ok', message: 'crash: circuit breaker closed and backoff forgotten' });
  assert.equal(shipped.find((r) => r.kind === 'exit')?.detail.code, 3);

  const fromDatabase = await sandbox.pm(['history', 'crash', '--kind', 'flag'], { env });
  assert.equal(fromDatabase.code, 0, fromDatabase.stderr);
  assert.match(fromDatabase.stdout, /^TIME\s+HOST\s+PROCESS\s+KIND\s+DETAIL$/m);
  assert.match(fromDatabase.stdout, new RegExp(`histhost\\s+crash\\s+flag\\s+flag=${flagId} action=reset requestedBy=ops-bot result=ok`));

  const local = await historyJson(sandbox, ['crash', '--local'], env);
  assert.deepEqual(
    local.map((e) => e.kind),
    kinds.slice(0, local.length),
    'the file holds what the table holds, in the same order',
  );
});
