// Start intents as one append-only file, intents.jsonl: a line per start, written before the spawn
// so a daemon killed before it records the handle is not followed by a second copy.
//
// One file, not one per process: creating a file costs an inode allocation, and on this CI
// machine's ext4 (no journal) the allocator's scan (`recently_deleted`, `find_inode_bit`) took a
// third of the daemon's CPU during a cold start of 100 (`perf record` of the daemon in
// bench:coldstart, 2026-11-27), 1–3 ms per create on the event loop, against tens of microseconds
// for an append to a file that exists. Appends are synchronous, as the files were: they come just
// before a spawn, and a thread-pool round trip costs more than the write.
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { StartIntent } from './records.js';

/** A later line for the same name replaces an earlier one; this one says there is none any more. */
interface IntentDeleted {
  name: string;
  deleted: true;
}

type IntentLine = StartIntent | IntentDeleted;

/** Below this the file is never compacted: a few hundred starts of a large set. */
const MIN_COMPACT_BYTES = 1024 * 1024;

export class IntentLog {
  readonly path: string;
  /** The folder of one file per process that earlier versions wrote, read once and removed. */
  readonly #legacyDir: string;
  /** Whether this writer has made sure the file ends in a newline (a killed writer may have torn its last line). */
  #checkedEnd = false;
  /** Bytes the file held after the last compaction: the file is compacted at twice that. */
  #compactedBytes = 0;

  constructor(path: string, legacyDir: string) {
    this.path = path;
    this.#legacyDir = legacyDir;
  }

  /** Not fsynced: it must survive a kill of the daemon (the page cache does), not a crash of the machine, after which no process of the old boot runs. */
  write(intent: StartIntent): void {
    this.#append(`${JSON.stringify(intent)}\n`);
  }

  delete(name: string): void {
    this.#append(`${JSON.stringify({ name, deleted: true } satisfies IntentDeleted)}\n`);
  }

  /** The last intent of each process; torn or unreadable lines are skipped. */
  list(): StartIntent[] {
    this.#adoptLegacy();
    return [...this.#latest().values()];
  }

  #append(line: string): void {
    const fd = openSync(this.path, 'a+', 0o600);
    let size: number;
    try {
      if (!this.#checkedEnd) {
        if (!endsWithNewline(fd)) writeSync(fd, '\n');
        this.#checkedEnd = true;
      }
      writeSync(fd, line);
      size = fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
    if (size >= Math.max(MIN_COMPACT_BYTES, 2 * this.#compactedBytes)) this.#compact();
  }

  /** Rewrites the file with one line per process that has an intent (rare: at a megabyte or twice the last compaction). */
  #compact(): void {
    const text = [...this.#latest().values()].map((intent) => `${JSON.stringify(intent)}\n`).join('');
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.#compactedBytes = Buffer.byteLength(text);
  }

  #latest(): Map<string, StartIntent> {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw error;
    }
    const latest = new Map<string, StartIntent>();
    for (const line of text.split('\n')) {
      const entry = parseLine(line);
      if (!entry) continue;
      if ('deleted' in entry) latest.delete(entry.name);
      else latest.set(entry.name, entry);
    }
    return latest;
  }

  /** Intents of a pm from before this file (intents/NAME.json) are appended to it, then their folder goes. */
  #adoptLegacy(): void {
    let files: string[];
    try {
      files = readdirSync(this.#legacyDir).filter((f) => f.endsWith('.json')).sort();
    } catch {
      return;
    }
    for (const file of files) {
      const entry = parseLine(readFileSync(join(this.#legacyDir, file), 'utf8'));
      if (entry && !('deleted' in entry)) this.write(entry);
    }
    rmSync(this.#legacyDir, { recursive: true, force: true });
  }
}

function parseLine(line: string): IntentLine | undefined {
  if (line.trim() === '') return undefined;
  try {
    const value = JSON.parse(line) as Partial<StartIntent & IntentDeleted> | null;
    if (typeof value?.name !== 'string') return undefined;
    if (value.deleted === true) return { name: value.name, deleted: true };
    return typeof value.instance === 'string' && value.manifest !== undefined ? (value as StartIntent) : undefined;
  } catch {
    return undefined;
  }
}

function endsWithNewline(fd: number): boolean {
  const { size } = fstatSync(fd);
  if (size === 0) return true;
  const last = Buffer.alloc(1);
  readSync(fd, last, 0, 1, size - 1);
  return last[0] === 0x0a;
}
