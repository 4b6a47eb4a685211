import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile, appendFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { FileStore, defaultStateDir } from '../../src/store/file-store.js';
import { LockBusyError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { manifest } from '../support/manifests.js';
import type { ProcessRecord } from '../../src/store/records.js';

const record = (name: string): ProcessRecord => ({
  name,
  manifest: manifest({ name, command: ['x'] }),
  source: { file: '/m/x.yaml', line: 1 },
  appliedAt: '2026-01-01T00:00:00.000Z',
  starts: 0,
});

test('records round-trip, overwrite atomically and leave no temp files', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await store.putRecord(record('api'));
  await store.putRecord({ ...record('api'), starts: 2 });
  await store.putRecord(record('worker'));
  assert.deepEqual([...(await store.listRecords()).keys()], ['api', 'worker']);
  assert.equal((await store.getRecord('api'))?.starts, 2);
  assert.deepEqual(await readdir(join(store.dir, 'processes')), ['api.json', 'worker.json']);
  await store.deleteRecord('api');
  await store.deleteRecord('api');
  assert.equal(await store.getRecord('api'), undefined);
});

test('a corrupt record is a clear error naming the file', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  await writeFile(join(store.dir, 'processes', 'bad.json'), '{"name": ');
  await assert.rejects(store.listRecords(), (error: Error & { code?: string }) => error.code === 'E_STATE_CORRUPT' && error.message.includes('bad.json'));
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

test('state directory: flag, then PM_STATE_DIR, then XDG_STATE_HOME, then ~/.local/state', () => {
  assert.equal(defaultStateDir({ PM_STATE_DIR: '/a', XDG_STATE_HOME: '/b' }), '/a');
  assert.equal(defaultStateDir({ XDG_STATE_HOME: '/b' }), '/b/pm');
  assert.match(defaultStateDir({}), /\.local\/state\/pm$/);
});
