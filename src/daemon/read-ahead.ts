// The daemon's read-ahead of changed manifests. The watcher waits for a burst of changes to settle
// (its debounce) before the daemon reloads the folder; the files it names meanwhile are read,
// parsed and checked as they arrive, so the reload finds them in the manifest cache and only the
// set-wide checks are left for it. A file changed again before the reload is simply read again by
// it: the cache is keyed by the file's content, so read-ahead can only save work, never decide.
import path from 'node:path';
import { isManifestFileName, readAhead, type ManifestCache } from '../manifest/index.js';

/**
 * How long one turn of the event loop reads files before it lets other callbacks run: the
 * watcher's next events among them, whose lateness would delay the debounce (and so the reload)
 * by as much.
 */
const TURN_MS = 4;

export class ManifestReadAhead {
  readonly #cache: ManifestCache;
  readonly #root: number;
  readonly #pending = new Set<string>();
  #turn: NodeJS.Immediate | undefined;
  #closed = false;

  /** `root`: the index of the -f argument the watched files lie under (the daemon has one). */
  constructor(cache: ManifestCache, root = 0) {
    this.#cache = cache;
    this.#root = root;
  }

  /** A path the watcher named: read on a later turn (several events for one save read it once). */
  add(file: string): void {
    if (this.#closed || !isManifestFileName(path.basename(file))) return;
    this.#pending.add(file);
    this.#turn ??= setImmediate(() => this.#drain());
  }

  close(): void {
    this.#closed = true;
    if (this.#turn) clearImmediate(this.#turn);
    this.#turn = undefined;
    this.#pending.clear();
  }

  #drain(): void {
    this.#turn = undefined;
    const until = performance.now() + TURN_MS;
    for (const file of this.#pending) {
      this.#pending.delete(file);
      try {
        readAhead(file, this.#root, this.#cache);
      } catch {
        // The reload reads the same file the same way, and reports what went wrong.
      }
      if (performance.now() >= until) break;
    }
    if (this.#pending.size > 0) this.#turn = setImmediate(() => this.#drain());
  }
}
