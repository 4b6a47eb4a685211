// DesiredSources: the watched directory and the applied set, as read back at start from the records
// and applied.json, replaced by setWatched and apply, and scoped by path (isWatched, appliedUnder).
// A real state folder; the manifest files themselves need not exist (only their paths matter).
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DesiredSources } from '../../src/daemon/desired.js';
import type { DesiredProcess, DesiredSet } from '../../src/manifest/types.js';
import type { ProcessRecord } from '../../src/store/records.js';
import { manifest } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';

/** A declared process; `version` goes into the command, so two versions differ in their manifest. */
function proc(name: string, file: string, version = 1): DesiredProcess {
  return { name, manifest: manifest({ name, command: ['/bin/sleep', String(1000 + version)] }), source: { file, line: 1 } };
}

function record(p: DesiredProcess): ProcessRecord {
  return { name: p.name, manifest: p.manifest, source: p.source, appliedAt: '2026-01-01T00:00:00.000Z', starts: 1 };
}

function records(...procs: DesiredProcess[]): Map<string, ProcessRecord> {
  return new Map(procs.map((p) => [p.name, record(p)]));
}

function set(roots: string[], ...procs: DesiredProcess[]): DesiredSet {
  return { processes: new Map(procs.map((p) => [p.name, p])), roots };
}

const sorted = (names: string[]): string[] => [...names].sort();

/** A state folder and a watched root beside it (nothing is created under the root). */
async function layout(t: Parameters<typeof tempDir>[0]): Promise<{ state: string; root: string; elsewhere: string }> {
  const dir = await tempDir(t);
  return { state: dir, root: join(dir, 'manifests'), elsewhere: join(dir, 'other') };
}

async function readAppliedFile(state: string): Promise<DesiredProcess[]> {
  return JSON.parse(await readFile(join(state, 'applied.json'), 'utf8')) as DesiredProcess[];
}

test('open: with nothing recorded, both sources are empty and the watched one not yet loaded', async (t) => {
  const { state, root } = await layout(t);
  const sources = await DesiredSources.open(state, [root], new Map());

  assert.deepEqual(sources.names(), []);
  assert.deepEqual(sources.all(), new Map());
  assert.equal(sources.watchedLoaded, false);
  assert.equal(sources.get('web'), undefined);
});

test('open: records under the watched root stand in for the watched set until setWatched', async (t) => {
  const { state, root } = await layout(t);
  const web = proc('web', join(root, 'web.yaml'));
  const db = proc('db', join(root, 'sub', 'db.yaml'));
  const sources = await DesiredSources.open(state, [root], records(web, db));

  assert.equal(sources.watchedLoaded, false);
  assert.deepEqual(sources.names(), ['db', 'web']);
  assert.deepEqual(sources.get('web'), web);
  assert.deepEqual(sources.all(), new Map([['db', db], ['web', web]]));
  assert.equal(sources.isApplied('web'), false);
  assert.deepEqual(sources.watchedConflicts(['web', 'other']), ['web'], 'an apply may not take them over');

  const result = sources.setWatched(set([root], web, db));
  assert.deepEqual(result, { changed: [], conflicts: [] }, 'the directory says what the records said');
  assert.equal(sources.watchedLoaded, true);
});

test('setWatched: returns exactly the names that changed, appeared or went away', async (t) => {
  const { state, root } = await layout(t);
  const same = proc('same', join(root, 'same.yaml'));
  const edited = proc('edited', join(root, 'edited.yaml'));
  const moved = proc('moved', join(root, 'moved.yaml'));
  const gone = proc('gone', join(root, 'gone.yaml'));
  const sources = await DesiredSources.open(state, [root], records(same, edited, moved, gone));

  const fresh = proc('fresh', join(root, 'fresh.yaml'));
  const editedV2 = proc('edited', join(root, 'edited.yaml'), 2);
  const movedFile = proc('moved', join(root, 'sub', 'moved.yaml'));
  const first = sources.setWatched(set([root], same, editedV2, movedFile, fresh));
  assert.deepEqual(sorted(first.changed), ['edited', 'fresh', 'gone', 'moved']);
  assert.deepEqual(first.conflicts, []);
  assert.deepEqual(sources.names(), ['edited', 'fresh', 'moved', 'same']);
  assert.deepEqual(sources.get('edited'), editedV2);
  assert.deepEqual(sources.get('moved')?.source.file, join(root, 'sub', 'moved.yaml'));

  assert.deepEqual(sources.setWatched(set([root], same, editedV2, movedFile, fresh)), { changed: [], conflicts: [] }, 'the same set again changes nothing');
  const emptied = sources.setWatched(set([root]));
  assert.deepEqual(sorted(emptied.changed), ['edited', 'fresh', 'moved', 'same']);
  assert.deepEqual(sources.names(), []);
});

test('setWatched: an unchanged process keeps its manifest object, and takes a new line in its file', async (t) => {
  const { state, root } = await layout(t);
  const file = join(root, 'all.yaml');
  const first = proc('web', file);
  const sources = await DesiredSources.open(state, [root], new Map());
  sources.setWatched(set([root], first));
  // The same content read again (a new object), once at the same line and once moved down.
  assert.deepEqual(sources.setWatched(set([root], proc('web', file))), { changed: [], conflicts: [] });
  assert.equal(sources.get('web'), first);
  const moved = { ...proc('web', file), source: { file, line: 12 } };
  assert.deepEqual(sources.setWatched(set([root], moved)), { changed: [], conflicts: [] });
  assert.equal(sources.get('web')?.manifest, first.manifest);
  assert.deepEqual(sources.get('web')?.source, { file, line: 12 });
});

test('setWatched: a name the applied set holds is a conflict, and is not taken over', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const applied = proc('api', join(elsewhere, 'api.yaml'));
  const sources = await DesiredSources.open(state, [root], records(applied));
  assert.equal(sources.isApplied('api'), true);

  const watchedApi = proc('api', join(root, 'api.yaml'), 2);
  const web = proc('web', join(root, 'web.yaml'));
  const result = sources.setWatched(set([root], watchedApi, web));

  assert.deepEqual(result, { changed: ['web'], conflicts: ['api'] });
  assert.deepEqual(sources.get('api'), applied, 'the applied process stays as it was');
  assert.equal(sources.isApplied('api'), true);
  assert.deepEqual(sources.watchedConflicts(['api', 'web']), ['web'], 'api was never taken into the watched set');
  assert.deepEqual(sources.names(), ['api', 'web']);
});

test('open: records outside the watched root are applied; applied.json entries win over them', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const recorded = proc('api', join(elsewhere, 'api.yaml'), 1);
  const onlyRecorded = proc('worker', join(elsewhere, 'worker.yaml'));
  const saved = proc('api', join(elsewhere, 'api.yaml'), 2);
  const onlySaved = proc('cron', join(elsewhere, 'cron.yaml'));
  // An entry under the watched root is the directory's business, not the applied set's.
  const savedUnderRoot = proc('stale', join(root, 'stale.yaml'));
  await writeFile(join(state, 'applied.json'), JSON.stringify([saved, onlySaved, savedUnderRoot]));

  const sources = await DesiredSources.open(state, [root], records(recorded, onlyRecorded));

  assert.deepEqual(sources.names(), ['api', 'cron', 'worker']);
  assert.deepEqual(sources.get('api'), saved, 'the applied.json entry, not the record');
  assert.deepEqual(sources.get('worker'), onlyRecorded, 'a record applied without a daemon still counts');
  assert.deepEqual(sources.get('cron'), onlySaved);
  for (const name of ['api', 'cron', 'worker']) assert.equal(sources.isApplied(name), true, name);
  assert.equal(sources.get('stale'), undefined);
  assert.deepEqual(sources.setWatched(set([root])), { changed: [], conflicts: [] }, 'none of them is in the watched set');
  assert.deepEqual(sources.names(), ['api', 'cron', 'worker'], 'an empty directory prunes no applied process');
});

test('open: a recorded watched process keeps its name even when applied.json names it too', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const watched = proc('web', join(root, 'web.yaml'));
  await writeFile(join(state, 'applied.json'), JSON.stringify([proc('web', join(elsewhere, 'web.yaml'), 2)]));

  const sources = await DesiredSources.open(state, [root], records(watched));

  assert.deepEqual(sources.get('web'), watched);
  assert.equal(sources.isApplied('web'), false);
});

test('apply: replaces and removes applied processes, returns what changed, and persists it', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const kept = proc('kept', join(elsewhere, 'kept.yaml'));
  const edited = proc('edited', join(elsewhere, 'edited.yaml'));
  const dropped = proc('dropped', join(elsewhere, 'dropped.yaml'));
  const sources = await DesiredSources.open(state, [root], records(kept, edited, dropped));

  const editedV2 = proc('edited', join(elsewhere, 'edited.yaml'), 2);
  const added = proc('added', join(elsewhere, 'added.yaml'));
  const changed = await sources.apply([kept, editedV2, added], ['dropped', 'never-existed']);

  assert.deepEqual(sorted(changed), ['added', 'dropped', 'edited'], 'an identical put and an unknown remove change nothing');
  assert.deepEqual(sources.names(), ['added', 'edited', 'kept']);
  assert.deepEqual(sources.get('edited'), editedV2);
  assert.equal(sources.isApplied('dropped'), false);

  const onDisk = await readAppliedFile(state);
  assert.deepEqual(sorted(onDisk.map((p) => p.name)), ['added', 'edited', 'kept']);

  // A restarted daemon, its records not yet updated: applied.json is what it keeps.
  const reopened = await DesiredSources.open(state, [root], new Map());
  assert.deepEqual(reopened.all(), sources.all());
  assert.deepEqual(reopened.get('edited'), editedV2);
  assert.equal(reopened.isApplied('added'), true);

  assert.deepEqual(await sources.apply([editedV2], []), [], 'the same apply again changes nothing');
});

test('apply: a process moved to another file counts as changed', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const api = proc('api', join(elsewhere, 'a.yaml'));
  const sources = await DesiredSources.open(state, [root], records(api));

  assert.deepEqual(await sources.apply([proc('api', join(elsewhere, 'b.yaml'))], []), ['api']);
  assert.equal((await readAppliedFile(state))[0]?.source.file, join(elsewhere, 'b.yaml'));
});

test('apply: removing everything leaves an empty applied.json that reopens empty', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const sources = await DesiredSources.open(state, [root], new Map());
  assert.deepEqual(await sources.apply([proc('a', join(elsewhere, 'a.yaml'))], []), ['a']);
  assert.deepEqual(await sources.apply([], ['a']), ['a']);

  assert.deepEqual(await readAppliedFile(state), []);
  assert.deepEqual((await DesiredSources.open(state, [root], new Map())).names(), []);
});

test('appliedUnder: applied processes whose file lies under a root, by whole path segments', async (t) => {
  const { state, root } = await layout(t);
  const sources = await DesiredSources.open(state, [root], new Map());
  await sources.apply(
    [
      proc('top', '/a/b/top.yaml'),
      proc('nested', '/a/b/c/d/nested.yaml'),
      proc('prefix', '/a/bc/x.yaml'),
      proc('exact', '/a/file.yaml'),
      proc('stdin', '-'),
      proc('outside', '/z/out.yaml'),
    ],
    [],
  );
  const under = (roots: string[]): string[] => sorted(sources.appliedUnder(roots).map((p) => p.name));

  assert.deepEqual(under(['/a/b']), ['nested', 'top'], '/a/b does not reach /a/bc');
  assert.deepEqual(under(['/a/b/']), ['nested', 'top'], 'a trailing slash means the same folder');
  assert.deepEqual(under(['/a/b/c']), ['nested']);
  assert.deepEqual(under(['/a/bc']), ['prefix']);
  assert.deepEqual(under(['/a']), ['exact', 'nested', 'prefix', 'top']);
  assert.deepEqual(under(['/a/file.yaml']), ['exact'], 'a root that is a file matches that file');
  assert.deepEqual(under(['/a/file']), [], 'nor is a file name a prefix');
  assert.deepEqual(under(['-']), ['stdin'], 'standard input is its own root');
  assert.deepEqual(under(['/a/b', '/z']), ['nested', 'outside', 'top']);
  assert.deepEqual(under([]), []);
});

test('appliedUnder: only applied processes, never watched ones', async (t) => {
  const { state, root, elsewhere } = await layout(t);
  const sources = await DesiredSources.open(state, [root], records(proc('web', join(root, 'web.yaml')), proc('api', join(elsewhere, 'api.yaml'))));

  assert.deepEqual(sources.appliedUnder([root]).map((p) => p.name), []);
  assert.deepEqual(sources.appliedUnder([elsewhere]).map((p) => p.name), ['api']);
});

test('isWatched: the root itself and files under it, not a sibling whose name the root prefixes', async (t) => {
  const { state } = await layout(t);
  const sources = await DesiredSources.open(state, ['/srv/pm'], new Map());

  assert.equal(sources.isWatched('/srv/pm'), true);
  assert.equal(sources.isWatched('/srv/pm/web.yaml'), true);
  assert.equal(sources.isWatched('/srv/pm/deep/er/db.yaml'), true);
  assert.equal(sources.isWatched('/srv/pm-old/web.yaml'), false);
  assert.equal(sources.isWatched('/srv/pmx'), false);
  assert.equal(sources.isWatched('/srv'), false);
  assert.equal(sources.isWatched('-'), false);

  const slash = await DesiredSources.open(state, ['/srv/pm/'], new Map());
  assert.equal(slash.isWatched('/srv/pm/web.yaml'), true);
  assert.equal(slash.isWatched('/srv/pm-old/web.yaml'), false);

  const file = await DesiredSources.open(state, ['/srv/pm/one.yaml'], new Map());
  assert.equal(file.isWatched('/srv/pm/one.yaml'), true, 'a watched root may be a single file');
  assert.equal(file.isWatched('/srv/pm/one.yaml.bak'), false);

  const none = await DesiredSources.open(state, [], new Map());
  assert.equal(none.isWatched('/srv/pm/web.yaml'), false, 'a daemon without a directory watches nothing');
});
