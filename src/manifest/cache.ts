// What the daemon's reloads need not redo: a file whose bytes have not changed since the last read
// has the same documents, and the schema (ajv, defaults filled in) passed them already. Reading the
// files and the set-wide checks still happen every time; only the parse and the schema check are
// skipped, most of a reload's work (bench:reconfig --processes 1000, docs/benchmarks.md).
//
// Kept per file: a digest of its text and its documents' values (normalized, as the set holds
// them), no text and no positions, so the cache costs a daemon little memory. Issue positions need
// the parse, so a reload that finds any issue in the set is done again without the cache. For the
// same reason how a file is named in issues (its display) is not part of the key: a file can be
// noted before any load names it (readAhead, while the watcher's debounce runs).
import { createHash } from 'node:crypto';
import type { SourceFile } from './parse.js';
import type { ProcessManifest } from './types.js';

export interface CachedDocument {
  /** 1-based line where the document's content starts. */
  line: number;
  manifest: ProcessManifest;
}

interface Entry {
  digest: string;
  dir: string;
  root: number;
  documents: CachedDocument[];
}

export class ManifestCache {
  readonly #entries = new Map<string, Entry>();
  /** Digests worked out by lookup, for the remember that follows a miss: each text is hashed once. */
  readonly #digests = new WeakMap<SourceFile, string>();

  get size(): number {
    return this.#entries.size;
  }

  /** The documents last read from this file, when its text and place in the set are unchanged. */
  lookup(source: SourceFile): readonly CachedDocument[] | undefined {
    const entry = this.#entries.get(source.path);
    const digest = this.#digest(source);
    if (!entry || entry.dir !== source.dir || entry.root !== source.root) return undefined;
    return entry.digest === digest ? entry.documents : undefined;
  }

  /**
   * Notes a file that parsed without issues and whose documents all passed the schema, after they
   * were normalized. A document equal to one the file held before keeps the earlier object: that is
   * the one the daemon kept (an unchanged process keeps its manifest), so an edit elsewhere in the
   * file, even to a comment, does not leave two copies of it in memory. Not always: an object noted
   * by readAhead for a version of the file no load took (a comment edited again within the
   * debounce) was never the daemon's, and the set holds the load's copy until the next load.
   */
  remember(source: SourceFile, documents: readonly CachedDocument[]): void {
    const earlier = new Map<string, ProcessManifest>();
    for (const { manifest } of this.#entries.get(source.path)?.documents ?? []) earlier.set(JSON.stringify(manifest), manifest);
    const kept = documents.map(({ line, manifest }) => ({ line, manifest: earlier.get(JSON.stringify(manifest)) ?? manifest }));
    this.#entries.set(source.path, { digest: this.#digest(source), dir: source.dir, root: source.root, documents: kept });
  }

  /** Forgets every file not in `paths` (removed from the set). */
  keepOnly(paths: ReadonlySet<string>): void {
    for (const path of this.#entries.keys()) if (!paths.has(path)) this.#entries.delete(path);
  }

  #digest(source: SourceFile): string {
    let digest = this.#digests.get(source);
    if (digest === undefined) this.#digests.set(source, (digest = createHash('sha256').update(source.text).digest('base64')));
    return digest;
  }
}
