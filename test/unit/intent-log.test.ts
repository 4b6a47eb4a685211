import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore } from '../../src/store/file-store.js';
import { tempDir } from '../support/tmp.js';
import { manifest } from '../support/manifests.js';
import type { StartIntent } from '../../src/store/records.js';

const intent = (name: string, instance: string): StartIntent => ({
  name,
  instance,
  manifest: manifest({ name, command: ['x'] }),
  source: { file: '/m/x.yaml', line: 1 },
  at: '2026-01-01T00:00:00.000Z',
});

const instances = (intents: StartIntent[]): Record<string, string> => Object.fromEntries(intents.map((i) => [i.name, i.instance]));

test('intents: the last one per process wins, a delete removes it, and all of it is one file', async (t) => {
  const store = await FileStore.open(await tempDir(t));
  assert.deepEqual(store.listIntents(), []);
  store.writeIntent(intent('api', 'a1'));
  store.writeIntent(intent('worker', 'w1'));
  store.writeIntent(intent('api', 'a2'));
  store.deleteIntent('worker');
  assert.deepEqual(instances(store.listIntents()), { api: 'a2' });
  assert.deepEqual((await readdir(store.dir)).filter((f) => f.startsWith('intents')), ['intents.jsonl']);
  assert.equal((await readFile(join(store.dir, 'intents.jsonl'), 'utf8')).trim().split('\n').length, 4, 'appended, not rewritten');
});

test('intents: a line torn by a killed writer is skipped, and the next writer ends it before appending', async (t) => {
  const dir = await tempDir(t);
  const store = await FileStore.open(dir);
  store.writeIntent(intent('api', 'a1'));
  await appendFile(join(dir, 'intents.jsonl'), '{"name":"api","instance":"a2","manif');
  const next = await FileStore.open(dir);
  assert.deepEqual(instances(next.listIntents()), { api: 'a1' });
  next.writeIntent(intent('worker', 'w1'));
  assert.deepEqual(instances(next.listIntents()), { api: 'a1', worker: 'w1' });
});

test('intents: the file is compacted to one line per process once it passes a megabyte', async (t) => {
  const dir = await tempDir(t);
  const store = await FileStore.open(dir);
  const path = join(dir, 'intents.jsonl');
  const names = Array.from({ length: 10 }, (_, i) => `p${i}`);
  let largest = 0;
  for (let round = 0; round < 400; round++) {
    for (const name of names) store.writeIntent(intent(name, `${name}-${round}`));
    largest = Math.max(largest, (await stat(path)).size);
  }
  assert.ok(largest <= 1024 * 1024 + 4096, `never much past a megabyte (largest ${largest} bytes)`);
  assert.deepEqual(instances(store.listIntents()), Object.fromEntries(names.map((n) => [n, `${n}-399`])));
  assert.ok((await stat(path)).size < largest, 'compacted');
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.tmp')), [], 'no temp file left');
});

test('intents: one file per process, as earlier versions wrote them, is taken over and removed', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'intents'));
  await writeFile(join(dir, 'intents', 'api.json'), JSON.stringify(intent('api', 'old')));
  await writeFile(join(dir, 'intents', 'torn.json'), '{"name":"torn"');
  const store = await FileStore.open(dir);
  assert.deepEqual(instances(store.listIntents()), { api: 'old' });
  assert.deepEqual((await readdir(dir)).includes('intents'), false);
  assert.deepEqual(instances(store.listIntents()), { api: 'old' }, 'kept in the log');
});
