// The daemon's manifest cache: an unchanged file is not parsed again, a changed one is; issues are
// reported at the same file:line:col as without the cache; removed files are forgotten.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { at, loadIssues, proc } from '../support/manifest-issues.js';
import { ManifestReadAhead } from '../../src/daemon/read-ahead.js';
import { loadDesiredSet, ManifestCache, readAhead } from '../../src/manifest/index.js';

async function folder(t: TestContext, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pm-cache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

test('an unchanged file gives the same manifest object again; a changed one is read anew', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'b.yaml': proc('b', '    cwd: sub\n') });
  const cache = new ManifestCache();
  const first = await loadDesiredSet(['.'], { cwd: dir, cache });
  assert.equal(cache.size, 2);
  await writeFile(path.join(dir, 'b.yaml'), proc('b', '    cwd: other\n'));
  const second = await loadDesiredSet(['.'], { cwd: dir, cache });
  // Identity: the cached value was taken, not a parse of the same text.
  assert.equal(second.processes.get('a')?.manifest, first.processes.get('a')?.manifest);
  assert.notEqual(second.processes.get('b')?.manifest, first.processes.get('b')?.manifest);
  assert.equal(second.processes.get('b')?.manifest.spec.exec?.cwd, path.join(dir, 'other'));
  // What came from the cache equals a load without it, defaults and resolved paths included.
  const uncached = await loadDesiredSet(['.'], { cwd: dir });
  assert.deepEqual(second, uncached);
});

test('a set-wide issue next to cached files is located exactly as without the cache', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'b.yaml': proc('b', '  dependsOn:\n    - name: a\n') });
  const cache = new ManifestCache();
  await loadDesiredSet(['.'], { cwd: dir, cache });
  // c.yaml repeats a's name: the issue names both places, and a.yaml is served from the cache.
  await writeFile(path.join(dir, 'c.yaml'), `# the copy\n${proc('a')}`);
  const withCache = await loadIssues(['.'], { cwd: dir, cache });
  const without = await loadIssues(['.'], { cwd: dir });
  assert.deepEqual(withCache, without);
  assert.equal(withCache.length, 1);
  assert.equal(at(withCache[0]), 'c.yaml:5:9');
  assert.match(withCache[0]?.message ?? '', /also declared at a\.yaml:4:9/);
});

test('an invalid file is not cached; fixed, it loads; removed files are forgotten', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'b.yaml': proc('b', '  restartPolicy:\n    policy: sometimes\n') });
  const cache = new ManifestCache();
  const issues = await loadIssues(['.'], { cwd: dir, cache });
  assert.equal(at(issues[0]), 'b.yaml:9:13');
  assert.equal(cache.size, 0);
  await writeFile(path.join(dir, 'b.yaml'), proc('b', '  restartPolicy:\n    policy: always\n'));
  const set = await loadDesiredSet(['.'], { cwd: dir, cache });
  assert.deepEqual([...set.processes.keys()], ['a', 'b']);
  assert.equal(cache.size, 2);
  await unlink(path.join(dir, 'a.yaml'));
  assert.deepEqual([...(await loadDesiredSet(['.'], { cwd: dir, cache })).processes.keys()], ['b']);
  assert.equal(cache.size, 1);
});

test('the same text read from stdin in another working directory is read anew: its paths resolve there', async (t) => {
  const one = await folder(t, {});
  const two = await folder(t, {});
  const text = proc('a', '    cwd: work\n');
  const cache = new ManifestCache();
  const first = await loadDesiredSet(['-'], { cwd: one, stdin: Readable.from([text]), cache });
  const second = await loadDesiredSet(['-'], { cwd: two, stdin: Readable.from([text]), cache });
  assert.equal(first.processes.get('a')?.manifest.spec.exec?.cwd, path.join(one, 'work'));
  assert.equal(second.processes.get('a')?.manifest.spec.exec?.cwd, path.join(two, 'work'));
});

test('a multi-document file from the cache keeps each document and its line; a comment added keeps the objects', async (t) => {
  const dir = await folder(t, { 'all.yaml': `${proc('a')}---\n${proc('b')}`, 'empty.yaml': '# nothing yet\n---\n' });
  const cache = new ManifestCache();
  const first = await loadDesiredSet(['.'], { cwd: dir, cache });
  await writeFile(path.join(dir, 'all.yaml'), `# two processes\n${proc('a')}---\n${proc('b')}`);
  // Parsed again (the text changed), but a and b are as before: the cache keeps the first objects,
  // the ones a daemon kept, and the new lines.
  await loadDesiredSet(['.'], { cwd: dir, cache });
  const third = await loadDesiredSet(['.'], { cwd: dir, cache });
  assert.deepEqual([...third.processes.keys()], ['a', 'b']);
  assert.equal(third.processes.get('a')?.manifest, first.processes.get('a')?.manifest);
  assert.equal(third.processes.get('b')?.manifest, first.processes.get('b')?.manifest);
  assert.notEqual(third.processes.get('a')?.manifest, third.processes.get('b')?.manifest);
  assert.deepEqual(third.processes.get('a')?.source, { file: path.join(dir, 'all.yaml'), line: 2 });
  assert.deepEqual(third.processes.get('b')?.source, { file: path.join(dir, 'all.yaml'), line: 10 });
  assert.deepEqual(third, await loadDesiredSet(['.'], { cwd: dir }));
});

test('an issue inside a cached document is located as without the cache', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'b.yaml': proc('b', '  dependsOn:\n    - name: a\n') });
  const cache = new ManifestCache();
  await loadDesiredSet(['.'], { cwd: dir, cache });
  await unlink(path.join(dir, 'a.yaml'));
  // b.yaml is unchanged and cached; its dependency is gone.
  const withCache = await loadIssues(['.'], { cwd: dir, cache });
  assert.deepEqual(withCache, await loadIssues(['.'], { cwd: dir }));
  assert.equal(at(withCache[0]), 'b.yaml:9:13');
  assert.equal(cache.size, 1);
});

/** What the cache holds for a file of the folder (root 0), or undefined. */
function cached(cache: ManifestCache, file: string, text: string): readonly unknown[] | undefined {
  return cache.lookup({ display: file, path: file, dir: path.dirname(file), root: 0, text })?.map((doc) => doc.manifest);
}

test('a file read ahead is taken from the cache by the load, as it would have read it; a file changed since is read anew', async (t) => {
  const texts = { 'a.yaml': proc('a', '    cwd: sub\n'), 'b.yaml': proc('b') };
  const dir = await folder(t, texts);
  const cache = new ManifestCache();
  readAhead(path.join(dir, 'a.yaml'), 0, cache);
  readAhead(path.join(dir, 'b.yaml'), 0, cache);
  const [aheadA] = cached(cache, path.join(dir, 'a.yaml'), texts['a.yaml']) ?? [];
  assert.ok(aheadA, 'a.yaml is in the cache before any load');
  await writeFile(path.join(dir, 'b.yaml'), proc('b', '    cwd: other\n'));
  const set = await loadDesiredSet(['.'], { cwd: dir, cache });
  // The object read ahead is the one the set holds: the load did not parse a.yaml again.
  assert.equal(set.processes.get('a')?.manifest, aheadA);
  assert.equal(set.processes.get('b')?.manifest.spec.exec?.cwd, path.join(dir, 'other'));
  // Defaults, resolved paths and source lines: as a load without the cache.
  assert.deepEqual(set, await loadDesiredSet(['.'], { cwd: dir }));
});

test('read-ahead notes nothing for a file that is missing, not YAML, not a valid manifest or not a regular file; the load reports it', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'bad.yaml': proc('bad', '  restartPolicy:\n    policy: sometimes\n'), 'broken.yaml': 'a: [1\n' });
  const cache = new ManifestCache();
  for (const name of ['missing.yaml', 'bad.yaml', 'broken.yaml']) readAhead(path.join(dir, name), 0, cache);
  assert.equal(cache.size, 0);
  // A FIFO and a device named like manifests are not read (the load skips them too): the first
  // would block the thread, the second never end. In a child, so that a regression fails this test
  // by its timeout instead of hanging the run.
  execFileSync('mkfifo', [path.join(dir, 'pipe.yaml')]);
  await symlink('/dev/zero', path.join(dir, 'zero.yaml'));
  const script = `import { ManifestCache, readAhead } from ${JSON.stringify(new URL('../../src/manifest/index.ts', import.meta.url).href)};
const cache = new ManifestCache();
for (const name of ['pipe.yaml', 'zero.yaml']) readAhead(${JSON.stringify(dir)} + '/' + name, 0, cache);
process.stdout.write(String(cache.size));`;
  const size = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'inherit'] });
  assert.equal(size, '0');
  const withCache = await loadIssues(['.'], { cwd: dir, cache });
  assert.deepEqual(withCache, await loadIssues(['.'], { cwd: dir }));
  assert.deepEqual(withCache.map(at).sort(), ['bad.yaml:9:13', 'broken.yaml:2:1']);
});

test('the daemon\'s read-ahead reads manifests named by the watcher on a later turn, skips other files, and reads nothing after close, added before or after', async (t) => {
  const dir = await folder(t, { 'a.yaml': proc('a'), 'b.yaml': proc('b'), 'notes.txt': proc('c') });
  const cache = new ManifestCache();
  const ahead = new ManifestReadAhead(cache);
  for (const name of ['a.yaml', 'a.yaml', 'notes.txt']) ahead.add(path.join(dir, name));
  assert.equal(cache.size, 0, 'nothing is read in the watcher\'s callback');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(cache.size, 1);
  ahead.add(path.join(dir, 'b.yaml'));
  ahead.close();
  ahead.add(path.join(dir, 'b.yaml'));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(cache.size, 1);
});
