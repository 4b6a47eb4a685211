// The journal: appends are whole lines, fsynced, in call order; reads go by byte offset, return
// whole lines only (a torn last line waits), pass over lines that are not JSON, and always progress.
import assert from 'node:assert/strict';
import { appendFile, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { Journal } from '../../src/store/journal.js';
import { tempDir } from '../support/tmp.js';

async function journalIn(dir: string): Promise<Journal> {
  return Journal.open(join(dir, 'events.jsonl'));
}

/** Every value from `offset` on, reading `maxBytes` at a time; with the offsets each read began at. */
async function readAll(journal: Journal, maxBytes: number, offset = 0): Promise<{ values: unknown[]; reads: number[]; next: number }> {
  const values: unknown[] = [];
  const reads: number[] = [];
  for (;;) {
    const read = await journal.readFrom(offset, maxBytes);
    if (read.next === offset) return { values, reads, next: offset };
    reads.push(offset);
    values.push(...read.lines.map((l) => l.value));
    offset = read.next;
  }
}

test('appended entries come back as lines with their offsets, the last one ending at the file size', async (t) => {
  const journal = await journalIn(await tempDir(t));
  await journal.append([{ seq: 1 }, { seq: 2, text: 'née\nline' }]);
  await journal.append([{ seq: 3 }]);
  const read = await journal.readFrom(0, 1 << 20);
  assert.deepEqual(
    read.lines.map((l) => l.value),
    [{ seq: 1 }, { seq: 2, text: 'née\nline' }, { seq: 3 }],
  );
  const { size } = await stat(journal.path);
  assert.equal(read.next, size);
  assert.equal(read.lines[0]?.offset, 0);
  assert.equal(read.lines[1]?.offset, read.lines[0]?.end);
  assert.equal(read.lines[2]?.end, size);
  assert.deepEqual(read.skipped, []);
  // From the middle, by a line's offset.
  const second = read.lines[1]?.offset ?? -1;
  assert.deepEqual((await journal.readFrom(second, 1 << 20)).lines.map((l) => l.value), [{ seq: 2, text: 'née\nline' }, { seq: 3 }]);
  // At the end: nothing, and the cursor stays.
  assert.deepEqual(await journal.readFrom(size, 100), { lines: [], next: size, skipped: [] });
});

test('a small maxBytes returns whole lines only; a line longer than maxBytes comes whole; multi-byte text survives', async (t) => {
  const journal = await journalIn(await tempDir(t));
  const entries = Array.from({ length: 40 }, (_, i) => ({ seq: i, text: 'ü€𝄞'.repeat(i % 7) }));
  const long = { seq: 40, text: 'x'.repeat(5000) };
  await journal.append([...entries, long, { seq: 41 }]);
  const { values, reads } = await readAll(journal, 64);
  assert.deepEqual(values, [...entries, long, { seq: 41 }]);
  assert.ok(reads.length > 10, `read in many small batches (${reads.length})`);
  // Every read began where a line begins.
  const starts = new Set((await journal.readFrom(0, 1 << 20)).lines.map((l) => l.offset));
  for (const offset of reads) assert.ok(starts.has(offset), `read began mid-line at ${offset}`);
  // maxBytes of 1 still progresses one line at a time.
  assert.deepEqual((await readAll(journal, 1)).values.length, 42);
});

test('a torn last line is not returned until it is whole', async (t) => {
  const journal = await journalIn(await tempDir(t));
  await journal.append([{ seq: 1 }]);
  const whole = (await stat(journal.path)).size;
  await appendFile(journal.path, '{"seq": 2, "te');
  const torn = await journal.readFrom(0, 1 << 20);
  assert.deepEqual(torn.lines.map((l) => l.value), [{ seq: 1 }]);
  assert.equal(torn.next, whole, 'the cursor stops before the torn line');
  assert.deepEqual(await journal.readFrom(whole, 1 << 20), { lines: [], next: whole, skipped: [] });
  await appendFile(journal.path, 'xt": "done"}\n');
  const completed = await journal.readFrom(whole, 1 << 20);
  assert.deepEqual(completed.lines.map((l) => l.value), [{ seq: 2, text: 'done' }]);
  assert.equal(completed.next, (await stat(journal.path)).size);
});

test('lines that are not JSON are skipped with the cursor past them; blank lines too', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'events.jsonl');
  await writeFile(path, '{"seq":1}\nnot json\n\n   \n{"seq":2}\n{"broken":\n{"seq":3}\n');
  const journal = await Journal.open(path);
  const read = await journal.readFrom(0, 1 << 20);
  assert.deepEqual(read.lines.map((l) => l.value), [{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
  assert.deepEqual(read.skipped, [
    { offset: 10, end: 19 },
    { offset: 34, end: 45 },
  ]);
  assert.equal(read.next, (await stat(path)).size);
  // A read that holds only a bad line still moves on.
  const bad = await journal.readFrom(10, 1);
  assert.deepEqual(bad.lines, []);
  assert.deepEqual(bad.skipped, [{ offset: 10, end: 19 }]);
  assert.ok(bad.next >= 19 && bad.next <= 24, `next ${bad.next}: past the bad line, at most past the blank ones read with it`);
});

test('an append after a crash mid-append starts a new line: the torn one is skipped, the new ones are whole', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'events.jsonl');
  await writeFile(path, '{"seq":1}\n{"seq":2,"te');
  const journal = await Journal.open(path);
  await journal.append([{ seq: 3 }]);
  const read = await journal.readFrom(0, 1 << 20);
  assert.deepEqual(read.lines.map((l) => l.value), [{ seq: 1 }, { seq: 3 }]);
  assert.equal(read.skipped.length, 1);
  assert.equal(await readFile(path, 'utf8'), '{"seq":1}\n{"seq":2,"te\n{"seq":3}\n');
});

test('concurrent appends all land, whole and in call order', async (t) => {
  const journal = await journalIn(await tempDir(t));
  await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append([{ seq: i }, { seq: i, second: true }])));
  const { values } = await readAll(journal, 1 << 20);
  assert.equal(values.length, 400);
  assert.deepEqual(
    values.map((v) => (v as { seq: number }).seq),
    Array.from({ length: 400 }, (_, i) => Math.floor(i / 2)),
  );
});

test('flush() waits for appends not awaited: a clean shutdown loses none', async (t) => {
  const journal = await journalIn(await tempDir(t));
  await journal.flush();
  for (let i = 0; i < 50; i++) void journal.append([{ seq: i }]);
  await journal.flush();
  assert.equal((await readFile(journal.path, 'utf8')).split('\n').filter(Boolean).length, 50);
});

test('a missing file reads as empty; an empty append creates nothing; the file is created private', async (t) => {
  const dir = await tempDir(t);
  const journal = await journalIn(dir);
  assert.deepEqual(await journal.readFrom(0, 100), { lines: [], next: 0, skipped: [] });
  assert.deepEqual(await journal.readFrom(50, 100), { lines: [], next: 50, skipped: [] });
  await journal.append([]);
  await assert.rejects(stat(journal.path), { code: 'ENOENT' });
  await journal.append([{ seq: 1 }]);
  assert.equal((await stat(journal.path)).mode & 0o777, 0o600);
});

test('bad input is refused: offsets and sizes, entries that are not JSON, a path that is a folder', async (t) => {
  const dir = await tempDir(t);
  const journal = await journalIn(dir);
  await journal.append([{ seq: 1 }]);
  await assert.rejects(journal.readFrom(-1, 10), RangeError);
  await assert.rejects(journal.readFrom(0, 0), RangeError);
  await assert.rejects(journal.readFrom(1.5, 10), RangeError);
  await assert.rejects(journal.append([{ n: 1n }]), TypeError);
  // A refused append writes nothing.
  assert.equal((await journal.readFrom(0, 1 << 20)).lines.length, 1);
  await mkdir(join(dir, 'folder'));
  await assert.rejects(Journal.open(join(dir, 'folder')), { code: 'E_JOURNAL' });
});

test('an append that fails rejects with the reason, and the next one works', async (t) => {
  const dir = await tempDir(t);
  const journal = await Journal.open(join(dir, 'gone', 'events.jsonl'));
  await assert.rejects(journal.append([{ seq: 1 }]), (error: Error & { code?: string }) => error.code === 'E_JOURNAL' && /ENOENT/.test(error.message));
  await mkdir(join(dir, 'gone'));
  await journal.append([{ seq: 2 }]);
  assert.deepEqual((await journal.readFrom(0, 100)).lines.map((l) => l.value), [{ seq: 2 }]);
});
