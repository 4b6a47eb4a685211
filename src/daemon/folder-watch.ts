// The "tree" layer of the manifest watcher: one fs.watch per directory below the root, which is
// what inotify gives anyway — a directory's watch reports writes, creations, deletions and renames
// of the entries in it — plus one per symlinked manifest file, whose writes land in its target's
// directory. chokidar (used before) put a watch, an fs.Stats and an inotify watch on every file as
// well: about 7 KiB of the daemon's memory per manifest (bench:footprint, a helper's prototype).
//
// It reports paths, not kinds: the daemon re-reads the whole source on any callback, so a path
// named twice or a spurious one costs a re-read, and a missed one costs correctness. Symlinked
// directories are followed, each real directory watched once (a loop is walked once), as
// collectSources reads them.
import { lstatSync, watch as fsWatch, type Dirent, type FSWatcher, type Stats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { isManifestFileName } from '../manifest/collect.js';

export interface FolderTreeOptions {
  /** Called with each path that changed: a manifest, a directory added or removed (and the manifests it held). */
  onChange: (file: string) => void;
  onError: (error: unknown) => void;
}

interface WatchedDir {
  watcher: FSWatcher;
  /** Its real path: a second path to the same directory (a symlink loop) is not watched again. */
  real: string;
  /** The manifests seen in it, so that its removal can name them. */
  manifests: Set<string>;
}

export class FolderTree {
  readonly #options: FolderTreeOptions;
  readonly #dirs = new Map<string, WatchedDir>();
  readonly #reals = new Set<string>();
  /** Symlinked manifests, watched through the link (inotify follows it to the target). */
  readonly #links = new Map<string, FSWatcher>();
  /** The watch of a root that is a file. */
  #file: FSWatcher | undefined;
  #closed = false;

  private constructor(options: FolderTreeOptions) {
    this.#options = options;
  }

  /** Watches root (a directory, recursively, or a file); resolves once every directory below it is watched. */
  static async open(root: string, options: FolderTreeOptions): Promise<FolderTree> {
    const tree = new FolderTree(options);
    const info = await stat(root).catch(() => undefined);
    if (info?.isDirectory()) await tree.#addDir(root, false);
    else if (info) tree.#file = tree.#watch(root, () => options.onChange(root));
    return tree;
  }

  close(): void {
    this.#closed = true;
    this.#file?.close();
    for (const dir of this.#dirs.values()) dir.watcher.close();
    for (const watcher of this.#links.values()) watcher.close();
    this.#dirs.clear();
    this.#links.clear();
    this.#reals.clear();
  }

  /** Watches dir, then reads it (in that order: an entry made in between is still seen) and goes down into its directories. */
  async #addDir(dir: string, announce: boolean): Promise<void> {
    if (this.#closed || this.#dirs.has(dir)) return;
    const real = await realpath(dir).catch(() => undefined);
    if (real === undefined || this.#reals.has(real) || this.#closed) return;
    const watcher = this.#watch(dir, (event, name) => this.#onEvent(dir, event, name));
    if (!watcher) return;
    const watched: WatchedDir = { watcher, real, manifests: new Set() };
    this.#dirs.set(dir, watched);
    this.#reals.add(real);
    if (announce) this.#options.onChange(dir);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (!isMissing(error)) this.#options.onError(error);
      return;
    }
    await Promise.all(entries.filter((entry) => !entry.name.startsWith('.')).map((entry) => this.#addEntry(dir, entry, announce)));
  }

  async #addEntry(dir: string, entry: Dirent, announce: boolean): Promise<void> {
    const full = path.join(dir, entry.name);
    const isLink = entry.isSymbolicLink();
    const isDir = isLink ? (await stat(full).catch(() => undefined))?.isDirectory() === true : entry.isDirectory();
    if (isDir) return this.#addDir(full, announce);
    if (!isManifestFileName(entry.name)) return;
    this.#dirs.get(dir)?.manifests.add(entry.name);
    if (isLink) this.#watchLink(full);
    if (announce) this.#options.onChange(full);
  }

  #onEvent(dir: string, event: string, name: string | null): void {
    if (this.#closed) return;
    if (name === null) return this.#options.onChange(dir);
    if (name.startsWith('.')) return;
    const full = path.join(dir, name);
    if (isManifestFileName(name)) {
      this.#options.onChange(full);
      // A rename is a creation, deletion or replacement: a link may have come, gone or been pointed elsewhere.
      if (event === 'rename') void this.#refreshManifest(dir, name);
      return;
    }
    // Any other name matters only as a directory that came or went, which is a rename (a 'change'
    // is a write to a file that is not a manifest, or new attributes of a directory).
    if (event === 'rename') void this.#refreshDir(full);
  }

  async #refreshManifest(dir: string, name: string): Promise<void> {
    const full = path.join(dir, name);
    this.#links.get(full)?.close();
    this.#links.delete(full);
    const info = lstatOrUndefined(full);
    const manifests = this.#dirs.get(dir)?.manifests;
    if (info === undefined) return void manifests?.delete(name);
    if (info.isDirectory() || (info.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isDirectory() === true)) return this.#addDir(full, true);
    manifests?.add(name);
    if (info.isSymbolicLink()) this.#watchLink(full);
  }

  async #refreshDir(full: string): Promise<void> {
    const info = await stat(full).catch(() => undefined);
    if (this.#closed) return;
    if (info?.isDirectory()) {
      if (!this.#dirs.has(full)) await this.#addDir(full, true);
      return;
    }
    this.#removeBelow(full);
  }

  /** A directory gone (removed, renamed away, or a link to it changed): it, what was below it and their manifests are announced. */
  #removeBelow(top: string): void {
    const prefix = `${top}${path.sep}`;
    for (const [dir, watched] of [...this.#dirs]) {
      if (dir !== top && !dir.startsWith(prefix)) continue;
      watched.watcher.close();
      this.#dirs.delete(dir);
      this.#reals.delete(watched.real);
      this.#options.onChange(dir);
      for (const name of watched.manifests) this.#options.onChange(path.join(dir, name));
    }
    for (const [link, watcher] of [...this.#links]) {
      if (!link.startsWith(prefix)) continue;
      watcher.close();
      this.#links.delete(link);
    }
  }

  /** A symlinked manifest: its target's writes are not events of the link's directory. */
  #watchLink(file: string): void {
    if (this.#closed || this.#links.has(file)) return;
    const watcher = this.#watch(file, () => {
      this.#options.onChange(file);
      // The target may be gone (a ConfigMap's old data removed): watch whatever the link names now.
      this.#links.get(file)?.close();
      this.#links.delete(file);
      void this.#refreshManifest(path.dirname(file), path.basename(file));
    });
    if (watcher) this.#links.set(file, watcher);
  }

  #watch(target: string, listener: (event: string, name: string | null) => void): FSWatcher | undefined {
    try {
      const watcher = fsWatch(target, { persistent: true }, listener);
      watcher.on('error', (error) => {
        watcher.close();
        if (!isMissing(error)) this.#options.onError(error);
      });
      return watcher;
    } catch (error) {
      if (!isMissing(error)) this.#options.onError(error);
      return undefined;
    }
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * Synchronous: one entry of a folder the daemon watches, on each rename event. Through the thread
 * pool, each lstat cost the event loop more than the call itself, and a burst of renames (a
 * `git checkout`, a folder copied in) is when the loop has least to spare.
 */
function lstatOrUndefined(file: string): Stats | undefined {
  try {
    return lstatSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}
