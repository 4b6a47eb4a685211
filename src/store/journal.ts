// An append-only JSON-lines file read by byte offset: the durable local spool a Shipper forwards to
// PostgreSQL. A line is one JSON value ending in "\n"; its offset (where it begins) is its identity,
// so a reader keeps one number to know what it has seen. Appends are fsynced before they resolve.
// One writer per file (the daemon for events.jsonl); any number of readers.
import { closeSync, fstatSync, fsync, openSync, readSync, writeSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fsyncDir } from './atomic.js';
import { PmError } from '../errors.js';

/** The state directory's spools: written by FileStore.appendAudit and the daemon's event log. */
export const AUDIT_SPOOL_FILE = 'audit.jsonl';
export const EVENTS_SPOOL_FILE = 'events.jsonl';

export interface JournalLine {
  /** Where the line begins. */
  offset: number;
  /** Just past its newline: where the next line begins. */
  end: number;
  value: unknown;
}

export interface JournalRead {
  /** Whole, parsed lines, in file order. */
  lines: JournalLine[];
  /** Where the next read begins: past every whole line looked at, skipped ones included. */
  next: number;
  /** Whole lines that are not JSON (a line torn by a crash and later ended), passed over. */
  skipped: { offset: number; end: number }[];
}

const NEWLINE = 0x0a;

interface PendingAppend {
  text: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class Journal {
  readonly path: string;
  /** Appends waiting for the write in progress: they go together in the next one (group commit). */
  #queue: PendingAppend[] = [];
  /** The write loop, while one runs: it ends once the queue is empty. */
  #writing: Promise<void> | undefined;

  private constructor(path: string) {
    this.path = path;
  }

  /** A journal at `path`, unchecked: a path that is not a regular file fails at the first append. */
  static at(path: string): Journal {
    return new Journal(resolve(path));
  }

  /** A journal at `path`; the file is created by the first append. Fails when `path` is not a file. */
  static async open(path: string): Promise<Journal> {
    const journal = new Journal(resolve(path));
    const info = await stat(journal.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw journalError(journal.path, 'cannot use', error);
    });
    if (info !== undefined && !info.isFile()) throw journalError(journal.path, 'cannot use', new Error('not a regular file'));
    return journal;
  }

  /**
   * Appends one line per entry and fsyncs; resolves once they are durable. Appends made while a
   * write is in flight go out together in one write and one fsync, in call order.
   */
  append(entries: readonly object[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    let text: string;
    try {
      text = entries.map(jsonLine).join('');
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ text, resolve, reject });
      this.#writing ??= this.#drain();
    });
  }

  /** Resolves once every append made so far is written (or has failed): for a clean shutdown. */
  async flush(): Promise<void> {
    await this.#writing;
  }

  /**
   * The whole lines from `offset` on, about `maxBytes` of them (one line longer than that comes
   * whole). A last line without its newline (an append in progress, or torn by a crash) is left
   * for a later read: `next` stops before it. A missing file reads as empty.
   */
  async readFrom(offset: number, maxBytes: number): Promise<JournalRead> {
    let file: FileHandle;
    try {
      file = await open(this.path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [], next: offset, skipped: [] };
      throw journalError(this.path, 'cannot read', error);
    }
    try {
      return await readLinesFrom(file, offset, maxBytes);
    } finally {
      await file.close();
    }
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      try {
        await this.#write(batch.map((b) => b.text).join(''));
        for (const b of batch) b.resolve();
      } catch (error) {
        for (const b of batch) b.reject(journalError(this.path, 'cannot append to', error));
      }
    }
    this.#writing = undefined;
  }

  /**
   * One batch: opened, checked, written and closed synchronously, fsynced in the thread pool. The
   * file exists and is small to write to (the page cache takes it in microseconds), where every
   * awaited step is a thread-pool round trip plus a wait for the event loop: in a daemon starting
   * 100 processes that was 5–10 ms per batch for six steps (bench:coldstart). Batches never
   * overlap, so a write here never waits on this journal's own fsync.
   */
  async #write(text: string): Promise<void> {
    const fd = openSync(this.path, 'a+', 0o600);
    let created: boolean;
    try {
      const { size } = fstatSync(fd);
      created = size === 0;
      // A file not ending in a newline was torn by a crash mid-append: end that line first, so it
      // is skipped as one bad line instead of swallowing the first entry written here.
      const torn = size > 0 && lastByte(fd, size) !== NEWLINE;
      writeAllSync(fd, torn ? `\n${text}` : text);
      await new Promise<void>((resolve, reject) => fsync(fd, (error) => (error ? reject(error) : resolve())));
    } finally {
      closeSync(fd);
    }
    // A file this append created is durable only once its folder is.
    if (created) await fsyncDir(dirname(this.path));
  }
}

function lastByte(fd: number, size: number): number | undefined {
  const one = Buffer.alloc(1);
  return readSync(fd, one, 0, 1, size - 1) === 1 ? one[0] : undefined;
}

/** write(2) may write less than asked (a signal, a full disk on the way): the rest follows, or the error. */
export function writeAllSync(fd: number, text: string): void {
  const buffer = Buffer.from(text);
  for (let written = 0; written < buffer.length; ) written += writeSync(fd, buffer, written, buffer.length - written);
}

/**
 * readFrom on an open file, for a reader that also checks the file's identity on the same handle
 * (see the Shipper). Offsets are bytes; lines are split at "\n", which no UTF-8 sequence contains.
 */
export async function readLinesFrom(file: FileHandle, offset: number, maxBytes: number): Promise<JournalRead> {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`journal offset must be a whole number of at least 0, not ${offset}`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`journal maxBytes must be a whole number of at least 1, not ${maxBytes}`);
  const { size } = await file.stat();
  if (offset >= size) return { lines: [], next: offset, skipped: [] };
  // Read maxBytes; when no line ends in them, read on until one does or the file ends.
  let buffer = Buffer.alloc(Math.min(size - offset, maxBytes));
  let filled = await readFully(file, buffer, offset);
  while (filled === buffer.length && buffer.lastIndexOf(NEWLINE) === -1 && offset + filled < size) {
    const grown = Buffer.alloc(Math.min(size - offset, buffer.length * 2));
    buffer.copy(grown, 0, 0, filled);
    buffer = grown;
    filled += await readFully(file, buffer.subarray(filled), offset + filled);
  }
  const lines: JournalLine[] = [];
  const skipped: JournalRead['skipped'] = [];
  let start = 0;
  for (;;) {
    const newline = buffer.indexOf(NEWLINE, start);
    if (newline === -1 || newline >= filled) break;
    const text = buffer.toString('utf8', start, newline);
    const at = { offset: offset + start, end: offset + newline + 1 };
    if (text.trim() !== '') {
      try {
        lines.push({ ...at, value: JSON.parse(text) as unknown });
      } catch {
        skipped.push(at);
      }
    }
    start = newline + 1;
  }
  return { lines, next: offset + start, skipped };
}

/** Fills `buffer` from `position` on, short only at the end of the file. */
async function readFully(file: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

function jsonLine(entry: object): string {
  const text = JSON.stringify(entry) as string | undefined;
  if (typeof text !== 'string') throw new TypeError(`a journal entry must serialize to JSON, got ${String(entry)}`);
  return `${text}\n`;
}

function journalError(path: string, verb: string, cause: unknown): PmError {
  if (cause instanceof PmError) return cause;
  const code = (cause as NodeJS.ErrnoException).code;
  return new PmError('E_JOURNAL', `${verb} journal ${path}: ${code ?? (cause as Error).message}`, {
    hint: code === 'ENOSPC' ? 'free space on the state directory\'s file system' : 'check that the state directory is writable by the user running pm',
    cause,
  });
}
