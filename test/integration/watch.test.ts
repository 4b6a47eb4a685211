// The manifest watcher on real files: editor and git write patterns, filtering, directories, the
// root replaced, close(). A negative ("no callback for X") is proven by a sentinel: after X, a
// manifest is written and the next callback must name only that manifest.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchManifests, type ManifestWatcher, type WatchManifestsOptions } from '../../src/daemon/watch.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

interface Recorder {
  watcher: ManifestWatcher;
  calls: string[][];
  errors: Error[];
}

/** A watcher that records its callbacks; closed when the test ends, and it must have reported no error. */
async function watchRecorded(t: TestContext, root: string, options: Partial<WatchManifestsOptions> = {}): Promise<Recorder> {
  const calls: string[][] = [];
  const errors: Error[] = [];
  const watcher = await watchManifests(root, {
    debounceMs: 100,
    onChange: (paths) => calls.push(paths),
    onError: (error) => errors.push(error),
    ...options,
  });
  t.after(async () => {
    await watcher.close();
    assert.deepEqual(errors, [], 'no watch errors');
  });
  return { watcher, calls, errors };
}

/** Callback number `index` (0-based), once it has come. */
async function call(recorder: Recorder, index: number, what: string): Promise<string[]> {
  await waitFor(() => recorder.calls.length > index, { message: `callback #${index + 1} (${what})` });
  return recorder.calls[index] as string[];
}

let sentinels = 0;
/** Writes a fresh manifest in dir and checks that callback number `index` names it alone: nothing else was pending or late. */
async function assertSettled(recorder: Recorder, dir: string, index: number): Promise<void> {
  const sentinel = join(dir, `sentinel-${++sentinels}.yaml`);
  writeFileSync(sentinel, 'sentinel: true\n');
  assert.deepEqual(await call(recorder, index, 'the sentinel'), [sentinel], `callbacks so far: ${JSON.stringify(recorder.calls)}`);
}

test('a write to a manifest → one callback naming it', async (t) => {
  const root = await tempDir(t);
  const manifest = join(root, 'app.yaml');
  writeFileSync(manifest, 'a: 1\n');
  const recorder = await watchRecorded(t, root);
  writeFileSync(manifest, 'a: 2\n');
  assert.deepEqual(await call(recorder, 0, 'the write'), [manifest]);
  await assertSettled(recorder, root, 1);
});

test('editor saves — temp + rename, sed -i, vim backup rename, JetBrains ___jb_tmp___ — one callback each, naming the manifest', async (t) => {
  const root = await tempDir(t);
  const manifest = join(root, 'app.yml');
  writeFileSync(manifest, 'a: 1\n');
  const recorder = await watchRecorded(t, root);
  const saves: [string, () => void][] = [
    ['temp + rename', () => {
      writeFileSync(`${manifest}.tmp`, 'a: 2\n');
      renameSync(`${manifest}.tmp`, manifest);
    }],
    ['sed -i', () => execFileSync('sed', ['-i', 's/a: 2/a: 3/', manifest])],
    ['vim (backup by rename, write anew, drop the backup)', () => {
      writeFileSync(join(root, '4913'), ''); // vim's probe for a writable directory
      unlinkSync(join(root, '4913'));
      renameSync(manifest, `${manifest}~`);
      writeFileSync(join(root, `.${'app.yml'}.swp`), 'swap');
      writeFileSync(manifest, 'a: 4\n');
      unlinkSync(`${manifest}~`);
    }],
    ['JetBrains safe write', () => {
      writeFileSync(`${manifest}___jb_tmp___`, 'a: 5\n');
      renameSync(manifest, `${manifest}___jb_old___`);
      renameSync(`${manifest}___jb_tmp___`, manifest);
      unlinkSync(`${manifest}___jb_old___`);
    }],
  ];
  for (const [index, [name, save]] of saves.entries()) {
    save();
    assert.deepEqual(await call(recorder, index, name), [manifest], `${name}: ${JSON.stringify(recorder.calls)}`);
  }
  await assertSettled(recorder, root, saves.length);
});

test('a large manifest written in chunks → one callback', async (t) => {
  const root = await tempDir(t);
  const manifest = join(root, 'big.yaml');
  const recorder = await watchRecorded(t, root);
  const fd = openSync(manifest, 'w');
  try {
    for (let chunk = 0; chunk < 8; chunk++) {
      writeSync(fd, `# ${'x'.repeat(128 * 1024)}\n`);
      await new Promise((resolve) => setImmediate(resolve)); // the watcher sees the file half-written
    }
  } finally {
    closeSync(fd);
  }
  assert.deepEqual(await call(recorder, 0, 'the chunked write'), [manifest]);
  await assertSettled(recorder, root, 1);
});

test('50 manifests written at once (a git checkout) → exactly one callback naming them all', async (t) => {
  const root = await tempDir(t);
  mkdirSync(join(root, 'sub'));
  const recorder = await watchRecorded(t, root, { debounceMs: 200 });
  const written: string[] = [];
  for (let i = 0; i < 50; i++) {
    const file = join(root, i % 2 === 0 ? 'sub' : '', `m${String(i).padStart(2, '0')}.yaml`);
    writeFileSync(file, `i: ${i}\n`);
    written.push(file);
  }
  assert.deepEqual(await call(recorder, 0, 'the 50 writes'), written.sort());
  await assertSettled(recorder, root, 1);
});

test('non-manifest and hidden files → no callback', async (t) => {
  const root = await tempDir(t);
  const recorder = await watchRecorded(t, root);
  writeFileSync(join(root, 'notes.txt'), 'x');
  writeFileSync(join(root, 'app.yaml~'), 'x');
  writeFileSync(join(root, 'app.yaml.bak'), 'x');
  writeFileSync(join(root, '.hidden.yaml'), 'x');
  mkdirSync(join(root, '.git', 'refs'), { recursive: true });
  writeFileSync(join(root, '.git', 'refs', 'x.yaml'), 'x');
  rmSync(join(root, '.git'), { recursive: true });
  await assertSettled(recorder, root, 0);
});

test('a new subdirectory with a manifest → callback; later changes inside it too', async (t) => {
  const root = await tempDir(t);
  const recorder = await watchRecorded(t, root);
  const sub = join(root, 'team', 'api');
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(sub, 'api.yaml'), 'a: 1\n');
  const first = await call(recorder, 0, 'the new directory');
  // The new directory, and the manifest when the walk of the directory found it.
  assert.ok(first.includes(join(sub, 'api.yaml')) || first.includes(sub), JSON.stringify(first));
  writeFileSync(join(sub, 'worker.yaml'), 'w: 1\n');
  assert.deepEqual(await call(recorder, 1, 'a manifest in the new directory'), [join(sub, 'worker.yaml')]);
});

test('a directory removed or renamed → callback naming it and the manifests it held', async (t) => {
  const root = await tempDir(t);
  for (const dir of ['gone', 'old']) {
    mkdirSync(join(root, dir, 'deep'), { recursive: true });
    writeFileSync(join(root, dir, 'deep', 'm.yaml'), 'm: 1\n');
  }
  const recorder = await watchRecorded(t, root);
  rmSync(join(root, 'gone'), { recursive: true });
  const removed = await call(recorder, 0, 'the removal');
  for (const path of ['gone', 'gone/deep', 'gone/deep/m.yaml']) assert.ok(removed.includes(join(root, path)), `${path} in ${JSON.stringify(removed)}`);
  renameSync(join(root, 'old'), join(root, 'new'));
  const renamed = await call(recorder, 1, 'the rename');
  for (const path of ['old/deep/m.yaml', 'new']) assert.ok(renamed.includes(join(root, path)), `${path} in ${JSON.stringify(renamed)}`);
  await assertSettled(recorder, root, 2);
});

test('the root removed and recreated (a checkout that swaps the folder) → callback, and the new root is watched', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'manifests');
  mkdirSync(root);
  writeFileSync(join(root, 'a.yaml'), 'a: 1\n');
  const recorder = await watchRecorded(t, root);
  rmSync(root, { recursive: true });
  mkdirSync(root);
  const manifest = join(root, 'b.yaml');
  writeFileSync(manifest, 'b: 1\n');
  await waitFor(() => recorder.calls.some((paths) => paths.includes(root)), { message: 'a callback naming the root' });
  await rewriteUntilSeen(recorder, manifest);
  // Removed for good, then back later: both noticed.
  const seen = recorder.calls.length;
  rmSync(root, { recursive: true });
  await waitFor(() => recorder.calls.slice(seen).some((paths) => paths.includes(root)), { message: 'a callback for the removal' });
  mkdirSync(root);
  await rewriteUntilSeen(recorder, join(root, 'c.yaml'));
});

test('the root a symlink swapped to another directory → callback, and the new target is watched', async (t) => {
  const base = await tempDir(t);
  for (const version of ['v1', 'v2']) {
    mkdirSync(join(base, version));
    writeFileSync(join(base, version, 'app.yaml'), `version: ${version}\n`);
  }
  const root = join(base, 'current');
  symlinkSync('v1', root);
  const recorder = await watchRecorded(t, root);
  symlinkSync('v2', join(base, 'current.tmp'));
  renameSync(join(base, 'current.tmp'), root); // atomic, like `ln -sfn` + `mv -T`
  await waitFor(() => recorder.calls.some((paths) => paths.includes(root)), { message: 'a callback naming the root' });
  await rewriteUntilSeen(recorder, join(root, 'app.yaml'));
  // The old target is no longer the source.
  const seen = recorder.calls.length;
  writeFileSync(join(base, 'v1', 'app.yaml'), 'version: stale\n');
  await assertSettled(recorder, root, seen);
});

test('a Kubernetes ConfigMap volume updated (..data swapped, old data removed) → callback naming the manifest', async (t) => {
  const root = await tempDir(t);
  mkdirSync(join(root, '..2024_01_01_v1'));
  writeFileSync(join(root, '..2024_01_01_v1', 'app.yaml'), 'v: 1\n');
  symlinkSync('..2024_01_01_v1', join(root, '..data'));
  symlinkSync('..data/app.yaml', join(root, 'app.yaml'));
  const recorder = await watchRecorded(t, root);
  // kubelet's AtomicWriter: new timestamped dir, ..data_tmp → it, rename over ..data, remove the old dir.
  mkdirSync(join(root, '..2024_01_02_v2'));
  writeFileSync(join(root, '..2024_01_02_v2', 'app.yaml'), 'v: 2\n');
  symlinkSync('..2024_01_02_v2', join(root, '..data_tmp'));
  renameSync(join(root, '..data_tmp'), join(root, '..data'));
  rmSync(join(root, '..2024_01_01_v1'), { recursive: true });
  assert.deepEqual(await call(recorder, 0, 'the ConfigMap update'), [join(root, 'app.yaml')]);
  await assertSettled(recorder, root, 1);
});

test('a file root: writes, an atomic replace, removal and return are seen; its siblings are not', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'app.yaml');
  const recorder = await watchRecorded(t, root); // missing at first: watched for
  writeFileSync(root, 'a: 1\n');
  assert.deepEqual(await call(recorder, 0, 'the file appearing'), [root]);
  writeFileSync(root, 'a: 2\n');
  assert.deepEqual(await call(recorder, 1, 'a write'), [root]);
  writeFileSync(`${root}.tmp`, 'a: 3\n');
  renameSync(`${root}.tmp`, root);
  assert.deepEqual(await call(recorder, 2, 'an atomic replace'), [root]);
  unlinkSync(root);
  assert.deepEqual(await call(recorder, 3, 'the removal'), [root]);
  writeFileSync(join(base, 'sibling.yaml'), 's: 1\n');
  writeFileSync(root, 'a: 4\n');
  assert.deepEqual(await call(recorder, 4, 'the file back'), [root], 'the sibling is not part of the source');
});

test('a file rewritten continuously: callbacks at least every maxWaitMs while it goes on, and one after it stops', async (t) => {
  const root = await tempDir(t);
  const manifest = join(root, 'busy.yaml');
  const recorder = await watchRecorded(t, root, { debounceMs: 150, maxWaitMs: 400 });
  // Every 10 ms, well inside the 150 ms debounce: only maxWaitMs can end a wait.
  const deadline = Date.now() + 10_000;
  for (let i = 0; recorder.calls.length < 2; i++) {
    assert.ok(Date.now() < deadline, 'two callbacks while writing');
    writeFileSync(manifest, `i: ${i}\n`);
    await sleep(10);
  }
  const during = recorder.calls.length;
  await call(recorder, during, 'the callback once the writes stop');
  assert.deepEqual(recorder.calls.flat().filter((path) => path !== manifest), []);
});

test('a throwing onChange is reported through onError, and the watcher keeps going', async (t) => {
  const root = await tempDir(t);
  const errors: Error[] = [];
  const calls: string[][] = [];
  const watcher = await watchManifests(root, {
    debounceMs: 20,
    onChange: (paths) => {
      calls.push(paths);
      if (calls.length === 1) throw new Error('reload failed');
    },
    onError: (error) => errors.push(error),
  });
  t.after(() => watcher.close());
  writeFileSync(join(root, 'a.yaml'), 'a: 1\n');
  await waitFor(() => errors.length > 0, { message: 'the error reported' });
  assert.match(errors[0]?.message ?? '', /reload failed/);
  writeFileSync(join(root, 'b.yaml'), 'b: 1\n');
  await waitFor(() => calls.some((paths) => paths.includes(join(root, 'b.yaml'))), { message: 'a later callback' });
});

test('options are checked', async () => {
  await assert.rejects(watchManifests('.', { debounceMs: -1, onChange: () => {} }), /debounceMs must be a finite number of milliseconds ≥ 0, got -1/);
  await assert.rejects(watchManifests('.', { debounceMs: 100, maxWaitMs: 50, onChange: () => {} }), /maxWaitMs \(50\) must be at least debounceMs \(100\)/);
});

test('one watch per directory, not per manifest: 60 manifests in three folders take four watches with the anchor', async (t) => {
  const root = await tempDir(t);
  for (const dir of ['a', 'b', 'c']) {
    mkdirSync(join(root, dir));
    for (let i = 0; i < 20; i++) writeFileSync(join(root, dir, `m${i}.yaml`), `m: ${i}\n`);
  }
  const before = fsWatchHandles();
  const recorder = await watchRecorded(t, root);
  assert.equal(fsWatchHandles() - before, 5, 'the root, a, b, c and the anchor on the parent');
  writeFileSync(join(root, 'b', 'm7.yaml'), 'm: changed\n');
  assert.deepEqual(await call(recorder, 0, 'a write in b'), [join(root, 'b', 'm7.yaml')]);
});

test('a symlinked manifest: a write to its target elsewhere is seen under the link; a symlink loop is walked once', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'manifests');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(join(base, 'elsewhere'));
  writeFileSync(join(base, 'elsewhere', 'app.yaml'), 'a: 1\n');
  symlinkSync(join(base, 'elsewhere', 'app.yaml'), join(root, 'app.yaml'));
  symlinkSync('..', join(root, 'sub', 'loop')); // sub/loop → the root again
  const recorder = await watchRecorded(t, root);
  writeFileSync(join(base, 'elsewhere', 'app.yaml'), 'a: 2\n');
  assert.deepEqual(await call(recorder, 0, 'the target written'), [join(root, 'app.yaml')]);
  await assertSettled(recorder, join(root, 'sub'), 1);
});

test('close(): a pending burst is dropped, no callback comes after, and no watch handle is left', async (t) => {
  const root = await tempDir(t);
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  writeFileSync(join(root, 'a', 'b', 'm.yaml'), 'm: 1\n');
  const calls: string[][] = [];
  const watcher = await watchManifests(root, { debounceMs: 50, onChange: (paths) => calls.push(paths) });
  t.after(() => watcher.close());
  assert.ok(fsWatchHandles() > 0, 'watching');
  writeFileSync(join(root, 'a', 'b', 'm.yaml'), 'm: 2\n');
  await waitFor(() => calls.length === 1, { message: 'a callback while open' });
  writeFileSync(join(root, 'a', 'b', 'm.yaml'), 'm: 3\n'); // pending when close() comes
  const closing = watcher.close();
  assert.equal(watcher.close(), closing, 'close() is idempotent');
  await closing;
  // A second watcher is the witness that the changes below are seen at all.
  const witness = await watchRecorded(t, root);
  writeFileSync(join(root, 'a', 'b', 'm.yaml'), 'm: 4\n');
  rmSync(join(root, 'a'), { recursive: true });
  await call(witness, 0, 'the witness seeing the changes');
  await witness.watcher.close();
  assert.equal(calls.length, 1, `no callback after close(): ${JSON.stringify(calls)}`);
  await waitFor(() => fsWatchHandles() === 0, { message: 'every fs.watch handle closed' });
});

/** Open fs.watch handles in this process (every watcher of the earlier tests has been closed). */
function fsWatchHandles(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'FSEventWrap').length;
}

/**
 * Rewrites file until a callback names it. A write that lands while the watcher is rebuilding
 * after its root was replaced is announced as the root; the next one must name the file.
 */
async function rewriteUntilSeen(recorder: Recorder, file: string): Promise<void> {
  let writes = 0;
  const from = recorder.calls.length;
  await waitFor(
    () => {
      if (recorder.calls.slice(from).some((paths) => paths.includes(file))) return true;
      writeFileSync(file, `write: ${++writes}\n`);
      return false;
    },
    { intervalMs: 300, message: `a callback naming ${file}` },
  );
}

test('onEvent names each path as its event comes, before the burst settles; a hidden file is not named', async (t) => {
  const root = await tempDir(t);
  const events: string[] = [];
  let eventsAtCallback: string[] | undefined;
  const recorder = await watchRecorded(t, root, {
    onEvent: (file) => events.push(file),
    onChange: (paths) => {
      eventsAtCallback ??= [...events];
      recorder.calls.push(paths);
    },
  });
  const [a, b] = [join(root, 'a.yaml'), join(root, 'b.yaml')];
  writeFileSync(join(root, '.hidden.yaml'), 'x: 1\n');
  writeFileSync(a, 'a: 1\n');
  writeFileSync(b, 'b: 1\n');
  assert.deepEqual(await call(recorder, 0, 'the writes'), [a, b]);
  // Both were named before the callback, which came a debounce later.
  assert.deepEqual([...new Set(eventsAtCallback)].sort(), [a, b]);
  await assertSettled(recorder, root, 1);
});
