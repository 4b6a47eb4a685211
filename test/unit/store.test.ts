import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile, appendFile, symlink, link } from 'node:fs/promises';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FileStore, defaultStateDir } from '../../src/store/file-store.js';
import { fsyncDir } from '../../src/store/atomic.js';
import { acquireLock, type StateLock } from '../../src/store/lock.js';
import { readProcessIdentity } from '../../src/drivers/exec/index.js';
import { LockBusyError, PmError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { manifest } from '../support/manifests.js';
import type { AuditEntry, ProcessRecord } from '../../src/store/records.js';

const record = (name: string): ProcessRecord => ({
  name,
  manifest: manifest({ name, command: ['x'] }),
  source: { file: '/m/x.yaml', line: 1 },
  appliedAt: '2026-01-01T00:00:00.000Z',
  starts: 0,
});

test('records round-trip through records.jsonl, the last line for a name winning, and another reader sees them', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await store.putRecord(record('worker'));
  await store.putRecord(record('api'));
  await store.putRecord({ ...record('api'), starts: 2 });
  assert.deepEqual([...(await store.listRecords()).keys()], ['api', 'worker']);
  assert.equal((await store.getRecord('api'))?.starts, 2);
  assert.deepEqual((await readdir(store.dir)).filter((f) => f.startsWith('records') || f === 'processes'), ['records.jsonl']);
  await store.deleteRecord('api');
  await store.deleteRecord('api');
  assert.equal(await store.getRecord('api'), undefined);
  const reader = await FileStore.open(store.dir);
  assert.deepEqual([...(await reader.listRecords()).values()].map((r) => [r.name, r.starts]), [['worker', 0]]);
  assert.equal((await readFile(join(store.dir, 'records.jsonl'), 'utf8')).split('\n').length, 6, 'a line per change');
});

test('records an older pm kept in processes/ are read, and the first write folds them into records.jsonl and removes them', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'processes'));
  await writeFile(join(dir, 'processes', 'old.json'), `${JSON.stringify({ ...record('old'), starts: 7 }, null, 2)}\n`);
  await writeFile(join(dir, 'processes', 'gone.json'), `${JSON.stringify(record('gone'))}\n`);
  const store = await FileStore.open(dir);
  assert.deepEqual([...(await store.listRecords()).keys()], ['gone', 'old']);
  await store.deleteRecord('gone');
  assert.deepEqual([...(await store.listRecords()).values()].map((r) => [r.name, r.starts]), [['old', 7]]);
  assert.deepEqual((await readdir(dir)).filter((f) => f === 'processes'), [], 'the old folder is gone');
  const lines = (await readFile(join(dir, 'records.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { name: string; deleted?: true });
  assert.deepEqual(lines.map((l) => [l.name, l.deleted ?? false]), [['gone', false], ['old', false], ['gone', true]]);
});

test('records.jsonl is rewritten once it has grown a megabyte: superseded lines dropped, every record kept', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  const path = join(store.dir, 'records.jsonl');
  const names = ['a', 'b', 'c'];
  // About 600 writes of 2 KiB, 200 per name, in waves that share their fsyncs.
  const padded = (name: string, starts: number): ProcessRecord => ({ ...record(name), starts, lastError: 'x'.repeat(2048) });
  for (let wave = 0; wave < 200; wave += 20) {
    await Promise.all(Array.from({ length: 20 }, (_, i) => names.map((n) => store.putRecord(padded(n, wave + i + 1)))).flat());
  }
  const lines = (await readFile(path, 'utf8')).trim().split('\n');
  assert.ok(lines.length < 600, `rewritten at least once: ${lines.length} lines`);
  assert.deepEqual([...(await store.listRecords()).values()].map((r) => [r.name, r.starts]), names.map((n) => [n, 200]));
  assert.deepEqual((await readdir(store.dir)).filter((f) => f.endsWith('.tmp')), []);
});

test('a torn line in records.jsonl (a crash mid-append) is skipped, and the next write still lands whole', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await store.putRecord(record('api'));
  await appendFile(join(store.dir, 'records.jsonl'), '{"name": "api", "starts": 9, "mani');
  assert.equal((await store.getRecord('api'))?.starts, 0);
  await store.putRecord({ ...record('worker'), starts: 1 });
  assert.deepEqual([...(await store.listRecords()).values()].map((r) => [r.name, r.starts]), [['api', 0], ['worker', 1]]);
});

test('a corrupt record is a clear error naming the file', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await mkdir(join(store.dir, 'processes'));
  await writeFile(join(store.dir, 'processes', 'bad.json'), '{"name": ');
  await assert.rejects(store.listRecords(), (error: Error & { code?: string }) => error.code === 'E_STATE_CORRUPT' && error.message.includes('bad.json'));
});

test('a corrupt record blocks commands and says how to find and stop the process, never to re-apply', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await mkdir(join(store.dir, 'processes'));
  const path = join(store.dir, 'processes', 'api.json');
  // Torn after the handle: the PID and group are still readable.
  await writeFile(path, '{"name": "api", "handle": {"driver": "exec", "pid": 4242, "pgid": 4242, "startTime": "9');
  for (const read of [() => store.listRecords(), () => store.getRecord('api')]) {
    await assert.rejects(read(), (error: PmError) => {
      assert.equal(error.code, 'E_STATE_CORRUPT');
      assert.match(error.message, /refuse to run until it is dealt with, rather than forget a process that may still be running/);
      assert.match(error.hint ?? '', /may still be running/);
      assert.match(error.hint ?? '', /PID 4242/);
      assert.match(error.hint ?? '', /ps -o pid,pgid,lstart,args -g 4242/);
      assert.match(error.hint ?? '', /kill -TERM -- -4242/);
      assert.ok(error.hint?.includes(`then remove ${path}`), error.hint);
      assert.doesNotMatch(error.hint ?? '', /apply again to re-adopt/);
      return true;
    });
  }
  // Nothing readable: it says how to look for the process instead.
  await writeFile(path, '\u0000\u0000garbage');
  await assert.rejects(store.listRecords(), (error: PmError) => /ps -eo pid,pgid,lstart,args/.test(error.hint ?? '') && !/PID \d/.test(error.hint ?? ''));
});

test('an older record that disappears between listing and reading is absent, not an error', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await store.putRecord(record('api'));
  await mkdir(join(store.dir, 'processes'));
  // A dangling link is listed by readdir and then not found by readFile: the state of a record
  // deleted by `pm delete` while `pm get` lists the folder.
  await symlink(join(store.dir, 'processes', 'deleted-meanwhile'), join(store.dir, 'processes', 'gone.json'));
  assert.deepEqual([...(await store.listRecords()).keys()], ['api']);
  assert.equal(await store.getRecord('gone'), undefined);
});

test('audit entries append as JSON lines; a torn last line is skipped', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  const entry = { time: 't', actor: 'me', command: 'apply', action: 'start', process: 'api', reason: 'r', result: 'ok' as const, durationMs: 1 };
  await store.appendAudit(entry);
  await store.appendAudit([{ ...entry, process: 'worker' }]);
  await appendFile(join(store.dir, 'audit.jsonl'), '{"time": "torn');
  assert.deepEqual((await store.readAudit()).map((e) => e.process), ['api', 'worker']);
  assert.equal((await readFile(join(store.dir, 'audit.jsonl'), 'utf8')).split('\n').length, 3);
});

test('concurrent record writes and audit appends all land, whole and in call order', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  const names = Array.from({ length: 40 }, (_, i) => `p${String(i).padStart(2, '0')}`);
  const entry = { time: 't', actor: 'me', command: 'apply', action: 'start', reason: 'r', result: 'ok' as const, durationMs: 1 };
  // Written together, as a wave of starts does: folder fsyncs and audit writes are shared.
  await Promise.all(names.flatMap((name) => [store.putRecord({ ...record(name), starts: 1 }), store.appendAudit({ ...entry, process: name })]));
  assert.deepEqual([...(await store.listRecords()).values()].map((r) => [r.name, r.starts]), names.map((n) => [n, 1]));
  assert.deepEqual((await store.readAudit()).map((e) => e.process), names);
  assert.deepEqual((await readdir(store.dir)).filter((f) => f.endsWith('.tmp')), []);
});

test('a folder fsync that fails does not stop later ones', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(fsyncDir(join(dir, 'missing')), /ENOENT/);
  await Promise.all([fsyncDir(dir), fsyncDir(dir), fsyncDir(dir)]);
  await assert.rejects(Promise.all([fsyncDir(join(dir, 'missing')), fsyncDir(join(dir, 'missing'))]), /ENOENT/);
  await fsyncDir(dir);
});

test('the lock admits one holder; release is idempotent; the next holder gets it', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  const first = await store.lock('apply');
  await assert.rejects(store.lock('delete'), (error) => error instanceof LockBusyError && /pm apply/.test(error.message));
  await first.release();
  await first.release();
  const second = await store.lock('delete');
  await second.release();
});

test('a lock left by a process that is gone is taken over', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  // A real process that ran and ended: its PID is free (or reused with another start time).
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid as number;
  await new Promise((resolve) => child.on('exit', resolve));
  await writeFile(join(store.dir, 'lock'), JSON.stringify({ pid, startTime: '1', command: 'apply', since: 'then' }));
  const lock = await store.lock('apply');
  assert.equal(JSON.parse(await readFile(join(store.dir, 'lock'), 'utf8')).pid, process.pid);
  await lock.release();
});

/** The PID of a process that has ended: a lock naming it is stale. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid as number;
}

test('concurrent takeovers of a stale lock: exactly one contender gets it, every time', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'lock');
  const pid = await deadPid();
  const staleLocks = [
    // Left by a pm that was killed while holding it.
    JSON.stringify({ pid, startTime: '1', command: 'apply', since: 'then', token: 'ab'.repeat(16) }),
    // Left by an older pm: no token; or torn, as an older pm could leave it when it died mid-write.
    JSON.stringify({ pid, startTime: '1', command: 'apply', since: 'then' }),
    '',
  ];
  for (let round = 0; round < 200; round++) {
    await writeFile(path, staleLocks[round % staleLocks.length]!);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => acquireLock(path, `contender-${i}`)));
    const holders = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{ i, lock: r.value }] : []));
    assert.equal(holders.length, 1, `round ${round}: ${holders.length} contenders hold the lock`);
    for (const r of results) {
      if (r.status === 'rejected') assert.ok(r.reason instanceof LockBusyError, `round ${round}: ${String(r.reason)}`);
    }
    const [holder] = holders as [{ i: number; lock: StateLock }];
    assert.equal(JSON.parse(await readFile(path, 'utf8')).command, `contender-${holder.i}`, 'the lock file names the holder');
    await holder.lock.release();
    assert.deepEqual(await readdir(dir), [], `round ${round}: nothing is left behind`);
  }
});

test('a takeover left by a pm that died mid-way is cleared; one in progress means busy', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'lock');
  const dead = await deadPid();
  const me = await readProcessIdentity(process.pid);
  assert.ok(me);
  for (const [takerPid, takerStart] of [[dead, '1'], [process.pid, me.startTime]] as const) {
    await writeFile(path, JSON.stringify({ pid: dead, startTime: '1', command: 'apply', since: 'then' }));
    // What a pm leaves while it removes a stale lock: its record, and lock.takeover linked to it.
    const token = 'cd'.repeat(16);
    await writeFile(`${path}.${token}`, JSON.stringify({ pid: takerPid, startTime: takerStart, command: 'delete', since: 'now', token }));
    await link(`${path}.${token}`, `${path}.takeover`);
    if (takerPid === dead) {
      const lock = await acquireLock(path, 'apply');
      await lock.release();
      assert.deepEqual(await readdir(dir), []);
    } else {
      await assert.rejects(acquireLock(path, 'apply'), (error) => error instanceof LockBusyError && /"pm delete".*is taking over a stale lock/.test(error.message));
      assert.deepEqual((await readdir(dir)).sort(), ['lock', `lock.${token}`, 'lock.takeover'], 'a live takeover is left alone');
    }
  }
});

test('state directory: flag, then PM_STATE_DIR, then XDG_STATE_HOME, then ~/.local/state', () => {
  assert.equal(defaultStateDir({ PM_STATE_DIR: '/a', XDG_STATE_HOME: '/b' }), '/a');
  assert.equal(defaultStateDir({ XDG_STATE_HOME: '/b' }), '/b/pm');
  assert.match(defaultStateDir({}), /\.local\/state\/pm$/);
});

test('an audit line torn by a crash mid-append does not swallow the next entry', async (t) => {
  const dir = await tempDir(t);
  const store = await FileStore.open(dir);
  const entry = (process: string): AuditEntry => ({ time: '2026-01-01T00:00:00.000Z', actor: 'a', command: 'apply', action: 'start', process, reason: 'r', result: 'ok', durationMs: 1 });
  await store.appendAudit(entry('one'));
  await appendFile(join(dir, 'audit.jsonl'), '{"time":"2026-01-01T00:00:00.000Z","actor":"a","comm');
  await store.appendAudit(entry('two'));
  assert.deepEqual((await store.readAudit()).map((e) => e.process), ['one', 'two']);
});
