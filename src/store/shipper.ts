// Forwards the local spool (STATE/audit.jsonl, STATE/events.jsonl) to PostgreSQL. The files are
// written first and fsynced, so nothing is lost while the database is down; the Shipper reads each
// from a byte cursor kept in STATE/ship-cursors.json and inserts what it finds, one transaction per
// batch, then saves the cursor.
//
// Exactly once, not at least once. Saving the local cursor cannot be part of the database's
// transaction: a crash between COMMIT and the cursor write, or a COMMIT whose answer is lost with
// the connection, sends the same batch again. pm.audit and pm.events (migration 1) have no column
// that could recognise a line sent twice, and comparing whole rows cannot tell a repeat from two
// identical entries made in the same millisecond. So migration 2 (src/db/migrations-2.ts; 3 for
// pm.history) gives each row its spool (the file's identity) and spool_offset (its line's byte offset), unique with
// the host: a repeat is an INSERT … ON CONFLICT DO NOTHING that inserts nothing. That identity
// also stands in for a cursor row in the database: the rows themselves say how far a file got.
//
// A file's identity is a digest of its first line, which never changes while the file is only
// appended to and differs once it is rotated or truncated and written again (the first entry has a
// new time). The same content gives the same identity after a lost cursor file too, so shipping a
// file again from the start is always safe. A file with another inode, shorter than the cursor, or
// with another first line is shipped from the start under its new identity. Lines a rotation moves
// away before they were shipped stay in the rotated file: rotate once the cursor has caught up.
import { createHash } from 'node:crypto';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isConnectionLoss, type Database } from '../db/connection.js';
import { ExitCode, PmError } from '../errors.js';
import { writeFileAtomic } from './atomic.js';
import { HISTORY_SPOOL_FILE, isHistoryEntry } from './history.js';
import { AUDIT_SPOOL_FILE, EVENTS_SPOOL_FILE, readLinesFrom, type JournalLine } from './journal.js';

export type SpoolName = 'audit' | 'events' | 'history';
export type SpoolTable = 'audit' | 'events' | 'history';
const SPOOL_NAMES: readonly SpoolName[] = ['audit', 'events', 'history'];

/** Each table's columns, in the order toRow returns them (the Shipper adds spool and spool_offset). */
export const TABLE_COLUMNS = {
  audit: [
    ['time', 'timestamptz'],
    ['host', 'text'],
    ['actor', 'text'],
    ['command', 'text'],
    ['action', 'text'],
    ['process', 'text'],
    ['reason', 'text'],
    ['result', 'text'],
    ['duration_ms', 'integer'],
    ['error', 'text'],
  ],
  events: [
    ['time', 'timestamptz'],
    ['host', 'text'],
    ['type', 'text'],
    ['process', 'text'],
    ['severity', 'text'],
    ['message', 'text'],
  ],
  history: [
    ['time', 'timestamptz'],
    ['host', 'text'],
    ['process', 'text'],
    ['kind', 'text'],
    ['detail', 'jsonb'],
  ],
} as const satisfies Record<SpoolTable, readonly (readonly [string, string])[]>;

export interface ShipperSource {
  name: SpoolName;
  path: string;
  table: SpoolTable;
  /** The row for TABLE_COLUMNS[table], or undefined for a value that is not an entry (skipped, with a warning). */
  toRow(value: unknown, host: string): unknown[] | undefined;
}

export interface ShipperLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface ShipperOptions {
  /** Written into every row's host column. */
  host: string;
  /** Where ship-cursors.json is kept. */
  stateDir: string;
  sources: readonly ShipperSource[];
  /** About how much of a file one transaction carries. Default 256 KiB. */
  batchBytes?: number;
  /** How often it looks for new lines. Default 1000 ms. */
  intervalMs?: number;
  log?: ShipperLogger;
}

/** created → running (start) → closing → closed (close); ship() also works before start(). */
export type ShipperState = 'created' | 'running' | 'closing' | 'closed';

export interface ShipperStatus {
  state: ShipperState;
  /** The database is down: the spool waits, and nothing is tried until it is back. */
  waiting: boolean;
  /** Passes begun, including those skipped while the database was down. */
  passes: number;
  /** Rows inserted since this Shipper was made (repeats that inserted nothing not counted). */
  shipped: number;
  /** The last failure other than the database being down, until a pass succeeds. */
  lastError?: string;
  /** Where each file has been shipped up to, once known. */
  cursors: Partial<Record<SpoolName, { offset: number; spool: string }>>;
}

export { AUDIT_SPOOL_FILE, EVENTS_SPOOL_FILE } from './journal.js';
export const CURSOR_FILE = 'ship-cursors.json';

const DEFAULT_BATCH_BYTES = 256 * 1024;
const DEFAULT_INTERVAL_MS = 1000;
/** How much of a file's first line its identity covers. */
const HEAD_BYTES = 4096;
const NEWLINE = 0x0a;

/** Where a file has been shipped up to. */
interface Cursor {
  /** dev:inode of the file. */
  file: string;
  /** Digest of its first line (see headDigest): with the source name, the rows' spool. */
  head: string;
  /** Past the last line shipped. */
  offset: number;
}

interface CompiledOptions {
  host: string;
  cursorPath: string;
  sources: readonly ShipperSource[];
  batchBytes: number;
  intervalMs: number;
  log: ShipperLogger;
}

const silent: ShipperLogger = { info: () => undefined, warn: () => undefined };

/** The spool files of a state directory, with the rows pm.audit, pm.events and pm.history take. */
export function spoolSources(stateDir: string): ShipperSource[] {
  return [
    { name: 'audit', path: join(stateDir, AUDIT_SPOOL_FILE), table: 'audit', toRow: auditRow },
    { name: 'events', path: join(stateDir, EVENTS_SPOOL_FILE), table: 'events', toRow: eventRow },
    { name: 'history', path: join(stateDir, HISTORY_SPOOL_FILE), table: 'history', toRow: historyRow },
  ];
}

export class Shipper {
  readonly #db: Pick<Database, 'transaction' | 'health' | 'onChange'>;
  readonly #options: CompiledOptions;
  #state: ShipperState = 'created';
  #cursors: Map<SpoolName, Cursor> | undefined;
  /** The passes run one at a time: each waits for this, the previous one. */
  #tail: Promise<unknown> = Promise.resolve();
  /** A pass asked for and not begun yet: later asks join it, since it will see their lines too. */
  #pending: Promise<number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed: Promise<void> | undefined;
  /** In an outage that has been logged. */
  #outage = false;
  #lastError: string | undefined;
  #passes = 0;
  #shipped = 0;

  constructor(db: Pick<Database, 'transaction' | 'health' | 'onChange'>, options: ShipperOptions) {
    this.#db = db;
    this.#options = compileOptions(options);
  }

  get state(): ShipperState {
    return this.#state;
  }

  /** Ships now and then every intervalMs, and as soon as the database is back after an outage. */
  start(): void {
    if (this.#state !== 'created') throw new Error(`Shipper.start() in state ${this.#state}: it starts once`);
    this.#state = 'running';
    this.#unsubscribe = this.#db.onChange((up) => {
      if (!up) return;
      this.#noteRecovery();
      this.#background();
    });
    this.#background();
  }

  /**
   * One pass over every source, after any pass in progress: what was appended before the call is
   * shipped when it resolves, with the number of rows inserted. Resolves 0 at once while the
   * database is down or after close(); rejects when the database or a file fails.
   */
  ship(): Promise<number> {
    if (this.#stopping()) return Promise.resolve(0);
    if (this.#pending) return this.#pending;
    const pass = this.#tail.then(() => {
      this.#pending = undefined;
      return this.#stopping() ? 0 : this.#pass();
    });
    this.#pending = pass;
    this.#tail = pass.catch(() => undefined);
    return pass;
  }

  /** Stops the timer and waits for a pass in flight (it ends after its current batch). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  status(): ShipperStatus {
    const cursors: ShipperStatus['cursors'] = {};
    for (const [name, cursor] of this.#cursors ?? []) cursors[name] = { offset: cursor.offset, spool: `${name}:${cursor.head}` };
    return {
      state: this.#state,
      waiting: this.#outage,
      passes: this.#passes,
      shipped: this.#shipped,
      ...(this.#lastError !== undefined && { lastError: this.#lastError }),
      cursors,
    };
  }

  async #shutdown(): Promise<void> {
    this.#state = 'closing';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unsubscribe?.();
    await this.#tail;
    this.#state = 'closed';
  }

  #stopping(): boolean {
    return this.#state === 'closing' || this.#state === 'closed';
  }

  /** A pass whose failure is logged, then the next one scheduled. */
  #background(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.ship()
      .catch((error: unknown) => this.#failed(error))
      .finally(() => this.#schedule());
  }

  #schedule(): void {
    if (this.#state !== 'running' || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#background();
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  async #pass(): Promise<number> {
    this.#passes++;
    if (this.#databaseDown()) {
      this.#noteOutage();
      return 0;
    }
    this.#cursors ??= await loadCursors(this.#options.cursorPath, this.#options.log);
    let shipped = 0;
    let failure: unknown;
    // A source that fails (its table, its file) does not hold back the others; an outage does.
    for (const source of this.#options.sources) {
      if (this.#stopping() || this.#databaseDown()) break;
      try {
        shipped += await this.#shipSource(source, this.#cursors);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
    this.#lastError = undefined;
    if (!this.#databaseDown()) this.#noteRecovery();
    return shipped;
  }

  async #shipSource(source: ShipperSource, cursors: Map<SpoolName, Cursor>): Promise<number> {
    let shipped = 0;
    for (;;) {
      const batch = await this.#readBatch(source, cursors);
      if (batch === undefined) return shipped;
      shipped += await this.#insert(source, batch);
      cursors.set(source.name, batch.cursor);
      await saveCursors(this.#options.cursorPath, cursors);
      // Closing: the rest waits for the next start, as it would in an outage.
      if (!batch.more || this.#stopping()) return shipped;
    }
  }

  /** The next batch of a file, or undefined when it has no whole line past its cursor. */
  async #readBatch(source: ShipperSource, cursors: Map<SpoolName, Cursor>): Promise<{ lines: JournalLine[]; skipped: number[]; cursor: Cursor; more: boolean } | undefined> {
    // Identity, size, lines and first line all come from one handle: a rotation in between
    // cannot mix two files.
    const file = await openIfPresent(source.path);
    if (file === undefined) return undefined;
    try {
      for (;;) {
        const info = await file.stat({ bigint: true });
        const id = `${info.dev}:${info.ino}`;
        const size = Number(info.size);
        let cursor = cursors.get(source.name);
        if (cursor !== undefined && (cursor.file !== id || size < cursor.offset)) {
          this.#options.log.info({ source: source.name, path: source.path }, `${source.path} was rotated or truncated: shipping it from the start`);
          cursors.delete(source.name);
          cursor = undefined;
        }
        const start = cursor?.offset ?? 0;
        if (size <= start) return undefined;
        const read = await readLinesFrom(file, start, this.#options.batchBytes);
        if (read.next === start) return undefined;
        // Read after the lines: had the file been truncated and written again meanwhile, its first
        // line differs now, and these lines are not shipped under the old identity.
        const head = await headDigest(file);
        if (head === undefined) return undefined;
        if (cursor !== undefined && head !== cursor.head) {
          this.#options.log.info({ source: source.name, path: source.path }, `${source.path} was rewritten: shipping it from the start`);
          cursors.delete(source.name);
          continue;
        }
        return { lines: read.lines, skipped: read.skipped.map((s) => s.offset), cursor: { file: id, head, offset: read.next }, more: read.next < size };
      }
    } finally {
      await file.close();
    }
  }

  /** One transaction; the rows inserted (a line shipped before inserts nothing). */
  async #insert(source: ShipperSource, batch: { lines: JournalLine[]; skipped: number[]; cursor: Cursor }): Promise<number> {
    const { host, log } = this.#options;
    const columns = TABLE_COLUMNS[source.table];
    const spool = `${source.name}:${batch.cursor.head}`;
    const rows: unknown[][] = [];
    const invalid = [...batch.skipped];
    for (const line of batch.lines) {
      const row = rowOf(source, line.value, host);
      if (row === undefined) {
        invalid.push(line.offset);
        continue;
      }
      if (row.length !== columns.length) {
        throw new PmError('E_SHIP_ROW', `the ${source.name} spool's toRow gave ${row.length} values for pm.${source.table}'s ${columns.length} columns`, { hint: 'this is a bug in pm: please report it', exitCode: ExitCode.failed });
      }
      rows.push([...row, spool, line.offset]);
    }
    let inserted = 0;
    if (rows.length > 0) {
      const params = Array.from({ length: columns.length + 2 }, (_, i) => rows.map((row) => row[i] ?? null));
      inserted = await this.#db.transaction(async (client) => (await client.query(insertSql(source.table), params)).rowCount ?? 0);
    }
    // Warned once the batch is in: a batch that failed and is retried warns once.
    for (const offset of invalid) log.warn({ source: source.name, path: source.path, offset }, `a line of ${source.path} at byte ${offset} is not a valid ${source.name} entry: skipped`);
    this.#shipped += inserted;
    return inserted;
  }

  /** Down after a failure, not merely unknown (no query run yet): then a pass tries. */
  #databaseDown(): boolean {
    const health = this.#db.health();
    return !health.up && health.lastError !== undefined;
  }

  #noteOutage(): void {
    if (this.#outage) return;
    this.#outage = true;
    this.#options.log.warn({}, 'database unreachable: audit, events and history stay in the local spool until it is back');
  }

  #noteRecovery(): void {
    if (!this.#outage) return;
    this.#outage = false;
    this.#options.log.info({}, 'database back: shipping the spool');
  }

  /** Logs a failed background pass: an outage once, any other failure once per distinct message. */
  #failed(error: unknown): void {
    if (isConnectionLoss(error) || this.#databaseDown()) {
      this.#noteOutage();
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    if (message !== this.#lastError) this.#options.log.warn({ error: message }, 'spool not shipped; retrying');
    this.#lastError = message;
  }
}

/** An audit entry (src/store/records.ts AuditEntry) as a pm.audit row. */
export function auditRow(value: unknown, host: string): unknown[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const entry = value as Record<string, unknown>;
  const time = timestamp(entry.time);
  const fields = (['actor', 'command', 'action', 'process', 'reason', 'result'] as const).map((key) => text(entry[key]));
  const duration = int32(entry.durationMs);
  if (time === undefined || duration === undefined || fields.some((f) => f === undefined)) return undefined;
  return [time, host, ...fields, duration, text(entry.error) ?? null];
}

/** A daemon event (src/daemon/api.ts DaemonEvent) as a pm.events row. */
export function eventRow(value: unknown, host: string): unknown[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const event = value as Record<string, unknown>;
  const time = timestamp(event.time);
  const type = text(event.type);
  const severity = text(event.severity);
  const message = text(event.message);
  if (time === undefined || type === undefined || severity === undefined || message === undefined) return undefined;
  return [time, host, type, text(event.process) ?? null, severity, message];
}

/** A history entry (src/store/history.ts) as a pm.history row; detail goes as JSON text, cast to jsonb. */
export function historyRow(value: unknown, host: string): unknown[] | undefined {
  if (!isHistoryEntry(value)) return undefined;
  const time = timestamp(value.time);
  const process = text(value.process);
  const kind = text(value.kind);
  if (time === undefined || process === undefined || kind === undefined) return undefined;
  // jsonb refuses \u0000 in a string, as text refuses NUL.
  const detail = Object.fromEntries(Object.entries(value.detail).map(([key, v]) => [text(key) ?? key, typeof v === 'string' ? text(v) : v]));
  return [time, host, process, kind, JSON.stringify(detail)];
}

function rowOf(source: ShipperSource, value: unknown, host: string): unknown[] | undefined {
  try {
    return source.toRow(value, host);
  } catch {
    return undefined;
  }
}

/** INSERT … SELECT FROM unnest(one array per column): any number of rows in one statement, ids rising in file order. */
function insertSql(table: SpoolTable): string {
  const columns: (readonly [string, string])[] = [...TABLE_COLUMNS[table], ['spool', 'text'], ['spool_offset', 'bigint']];
  const names = columns.map(([name]) => name).join(', ');
  const arrays = columns.map(([, type], i) => `$${i + 1}::${type}[]`).join(', ');
  return `INSERT INTO pm.${table} (${names}) SELECT * FROM unnest(${arrays}) ORDER BY ${columns.length} ON CONFLICT (host, spool, spool_offset) WHERE spool IS NOT NULL DO NOTHING`;
}

/** A string PostgreSQL's text can hold (no NUL). */
function text(value: unknown): string | undefined {
  // A lone surrogate (half an emoji, from a message cut at a UTF-16 index) is not UTF-8: text
  // columns would silently replace it, jsonb refuses the whole batch.
  return typeof value === 'string' ? value.replaceAll('\0', '').replace(LONE_SURROGATE, '\uFFFD') : undefined;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** An ISO time PostgreSQL accepts, from any time Date.parse reads, years 1 to 9999. */
function timestamp(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return undefined;
  const date = new Date(ms);
  const year = date.getUTCFullYear();
  return year >= 1 && year <= 9999 ? date.toISOString() : undefined;
}

function int32(value: unknown): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return Math.min(2 ** 31 - 1, Math.max(-(2 ** 31), Math.round(value)));
}

/**
 * The file's identity: a digest of its first line (of its first HEAD_BYTES when longer), or
 * undefined while that line is not whole. Appends never change it.
 */
async function headDigest(file: FileHandle): Promise<string | undefined> {
  const buffer = Buffer.alloc(HEAD_BYTES);
  const { bytesRead } = await file.read(buffer, 0, HEAD_BYTES, 0);
  const newline = buffer.subarray(0, bytesRead).indexOf(NEWLINE);
  if (newline === -1 && bytesRead < HEAD_BYTES) return undefined;
  const head = newline === -1 ? buffer : buffer.subarray(0, newline + 1);
  return createHash('sha256').update(head).digest('hex').slice(0, 16);
}

async function openIfPresent(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** The saved cursors; none (ship everything again: the database drops repeats) when missing or unreadable. */
async function loadCursors(path: string, log: ShipperLogger): Promise<Map<SpoolName, Cursor>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const cursors = new Map<SpoolName, Cursor>();
  try {
    const parsed = JSON.parse(text) as { version?: unknown; sources?: Record<string, Partial<Cursor>> };
    if (parsed.version !== 1 || typeof parsed.sources !== 'object' || parsed.sources === null) throw new Error('not a version 1 cursor file');
    for (const [name, c] of Object.entries(parsed.sources)) {
      if (SPOOL_NAMES.includes(name as SpoolName) && typeof c.file === 'string' && typeof c.head === 'string' && Number.isSafeInteger(c.offset) && (c.offset as number) >= 0) {
        cursors.set(name as SpoolName, { file: c.file, head: c.head, offset: c.offset as number });
      }
    }
  } catch (error) {
    log.warn({ path, error: (error as Error).message }, `${path} is unreadable: shipping the spool from the start (the database ignores lines it has)`);
    return new Map();
  }
  return cursors;
}

async function saveCursors(path: string, cursors: ReadonlyMap<SpoolName, Cursor>): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify({ version: 1, sources: Object.fromEntries(cursors) }, null, 2)}\n`);
}

function compileOptions(options: ShipperOptions): CompiledOptions {
  const compiled: CompiledOptions = {
    host: options.host,
    cursorPath: join(options.stateDir, CURSOR_FILE),
    sources: [...options.sources],
    batchBytes: options.batchBytes ?? DEFAULT_BATCH_BYTES,
    intervalMs: options.intervalMs ?? DEFAULT_INTERVAL_MS,
    log: options.log ?? silent,
  };
  if (typeof compiled.host !== 'string' || compiled.host.trim() === '' || compiled.host.includes('\0')) throw invalidOption(`shipper option host must be a non-empty name, not ${JSON.stringify(compiled.host)}`);
  for (const key of ['batchBytes', 'intervalMs'] as const) {
    const value = compiled[key];
    if (!Number.isSafeInteger(value) || value < 1) throw invalidOption(`shipper option ${key} must be a whole number of at least 1, not ${String(value)}`);
  }
  const names = compiled.sources.map((s) => s.name);
  if (new Set(names).size !== names.length) throw invalidOption(`shipper sources must have distinct names, not ${names.join(', ')}`);
  return compiled;
}

function invalidOption(message: string): PmError {
  return new PmError('E_SHIP_CONFIG', message, { hint: 'this is a bug in pm: please report it', exitCode: ExitCode.invalid });
}
