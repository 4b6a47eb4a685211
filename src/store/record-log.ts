// Process records as one append-only file, records.jsonl: a line per change (the whole record, or
// `{"name", "deleted": true}`), the last line for a name winning, rewritten without the superseded
// lines once it has grown by a megabyte or by its size after the last rewrite.
//
// One file, not a file per process replaced by rename: each such write created an inode and freed
// one, with two fsyncs and a rename. On this CI machine's ext4 (no journal) inode allocation scans
// past recently freed inodes, and a daemon starting 100 processes spent about 200 ms of CPU, 50 of
// them on its event loop, writing records (bench:coldstart, the daemon's CPU with and without). An
// append shares its fsync with the appends made meanwhile (Journal's group commit).
//
// Only the holder of the state lock writes. Readers (pm get) may read while it appends or rewrites:
// a rewrite is renamed into place, so a reader sees the old file or the new, and a torn last line
// (an append in progress, or cut by a crash) is skipped, as is a torn line an append ended later.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Journal, writeAllSync } from './journal.js';
import type { ProcessRecord } from './records.js';

export const RECORDS_FILE = 'records.jsonl';

/** Below this the file is never rewritten. */
const MIN_COMPACT_BYTES = 1024 * 1024;

interface Deleted {
  name: string;
  deleted: true;
}

/** Records kept the old way (processes/NAME.json), and how to remove them once folded in. */
export interface LegacyRecords {
  records: ProcessRecord[];
  remove(): void;
}

export class RecordLog {
  readonly path: string;
  readonly #journal: Journal;
  readonly #legacy: () => LegacyRecords;
  /** Bytes in the file that a rewrite may drop: all of it until the first rewrite by this writer. */
  #grownBytes: number | undefined;
  /** The file's size after the last rewrite. */
  #compactedBytes = 0;

  constructor(path: string, legacy: () => LegacyRecords) {
    this.path = path;
    this.#journal = Journal.at(path);
    this.#legacy = legacy;
  }

  /** The last line for each name: a record, or undefined for a deletion. A missing file holds none. */
  async read(): Promise<Map<string, ProcessRecord | undefined>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw error;
    }
    return latest(text);
  }

  put(record: ProcessRecord): Promise<void> {
    return this.#append(record);
  }

  remove(name: string): Promise<void> {
    return this.#append({ name, deleted: true });
  }

  #append(entry: ProcessRecord | Deleted): Promise<void> {
    if (this.#grownBytes === undefined) {
      // The first write folds in what an older pm left in processes/, and sizes what is there.
      this.#grownBytes = sizeOf(this.path);
      const legacy = this.#legacy();
      if (legacy.records.length > 0) this.#compact(legacy);
    }
    const written = this.#journal.append([entry]);
    this.#grownBytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (this.#grownBytes >= Math.max(MIN_COMPACT_BYTES, this.#compactedBytes)) this.#compact();
    return written;
  }

  /**
   * Rewrites the file with one line per live record (the legacy ones folded in, then removed).
   * Synchronous, so no append lands between the read and the rename: an append the journal has
   * not written yet goes to the new file, one it has written is read here (an fsync of it still in
   * flight covers the old file, and this one is fsynced before the rename). Rare: each megabyte,
   * at least, of appends.
   */
  #compact(legacy = this.#legacy()): void {
    const records = new Map<string, ProcessRecord>(legacy.records.map((r) => [r.name, r]));
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    for (const [name, record] of latest(text)) {
      if (record) records.set(name, record);
      else records.delete(name);
    }
    const compacted = [...records.values()].map((r) => `${JSON.stringify(r)}\n`).join('');
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeAllSync(fd, compacted);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    syncFolder(dirname(this.path));
    // Only once their records are durable in the new file.
    legacy.remove();
    this.#compactedBytes = Buffer.byteLength(compacted);
    this.#grownBytes = 0;
  }
}

function latest(text: string): Map<string, ProcessRecord | undefined> {
  const records = new Map<string, ProcessRecord | undefined>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let entry: ProcessRecord | Deleted;
    try {
      entry = JSON.parse(line) as ProcessRecord | Deleted;
    } catch {
      // Torn by a crash mid-append: never acknowledged as written, and superseded by what followed.
      continue;
    }
    if (typeof entry?.name !== 'string') continue;
    records.set(entry.name, 'deleted' in entry ? undefined : entry);
  }
  return records;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
