// What the daemon's reloads need not redo: a file whose bytes have not changed since the last read
// has the same documents, and the schema (ajv, defaults filled in) passed them already. Reading a
// file and checking the set still happen every time; only the parse and the schema are skipped,
// most of a reload's work (bench:reconfig --processes 1000, docs/benchmarks.md).
//
// Kept per file: a digest of its text and its documents' values, no text and no positions, so the
// cache costs a daemon little memory. Issue positions need the parse, so a reload that finds any
// issue in the set is done again without the cache (validateCollected).
import { createHash } from 'node:crypto';
import type { SourceFile } from './parse.js';

interface Entry {
  digest: string;
  dir: string;
  root: number;
  display: string;
  /** Each document's 1-based first line and its value, as validated (and normalized since). */
  documents: { line: number; data: unknown }[];
}

export class ManifestCache {
  readonly #entries = new Map<string, Entry>();

  get size(): number {
    return this.#entries.size;
  }

  /** The documents last read from this file, when its text and place in the set are unchanged. */
  lookup(source: SourceFile): Entry['documents'] | undefined {
    const entry = this.#entries.get(source.path);
    if (!entry || entry.dir !== source.dir || entry.root !== source.root || entry.display !== source.display) return undefined;
    return entry.digest === digest(source.text) ? entry.documents : undefined;
  }

  /** Notes a file that parsed without issues and whose documents all passed the schema. */
  remember(source: SourceFile, documents: Entry['documents']): void {
    this.#entries.set(source.path, { digest: digest(source.text), dir: source.dir, root: source.root, display: source.display, documents });
  }

  /** Forgets every file not in `paths` (removed, or no longer valid). */
  keepOnly(paths: ReadonlySet<string>): void {
    for (const path of this.#entries.keys()) if (!paths.has(path)) this.#entries.delete(path);
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}
