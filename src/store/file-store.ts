// The embedded store: a state directory that needs no server.
//   records.jsonl           the record of every managed process: a line per change, the last line
//                           for a name wins (see RecordLog); written by the lock holder only
//   processes/<name>.json   one record per process, as pm wrote them before records.jsonl: read,
//                           and folded into records.jsonl by the first write
//   logs/<name>.log         default stdout+stderr of each process
//   ready/<name>            what a process with a notify startup probe wrote to its descriptor
//   audit.jsonl             append-only audit log, one JSON object per line
//   intents.jsonl           append-only: the instance marker of each start, written before the spawn
//   lock                    held by the pm command that is acting
import { readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { IntentLog } from './intent-log.js';
import { Journal } from './journal.js';
import { RecordLog, RECORDS_FILE, type LegacyRecords } from './record-log.js';
import { acquireLock, type StateLock } from './lock.js';
import type { AuditEntry, ProcessRecord, StartIntent } from './records.js';
import { PmError } from '../errors.js';

/** --state-dir, else $PM_STATE_DIR, else $XDG_STATE_HOME/pm, else ~/.local/state/pm. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PM_STATE_DIR) return resolve(env.PM_STATE_DIR);
  const base = env.XDG_STATE_HOME ? resolve(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return join(base, 'pm');
}

export class FileStore {
  readonly dir: string;
  readonly logsDir: string;
  private readonly readyDir: string;
  private readonly processesDir: string;
  private readonly auditPath: string;
  private readonly intents: IntentLog;
  private readonly auditJournal: Journal;
  private readonly records: RecordLog;

  private constructor(dir: string) {
    this.dir = dir;
    this.logsDir = join(dir, 'logs');
    this.readyDir = join(dir, 'ready');
    this.processesDir = join(dir, 'processes');
    this.auditPath = join(dir, 'audit.jsonl');
    this.intents = new IntentLog(join(dir, 'intents.jsonl'), join(dir, 'intents'));
    this.auditJournal = Journal.at(this.auditPath);
    this.records = new RecordLog(join(dir, RECORDS_FILE), () => this.legacyRecords());
  }

  /** Opens (and creates, mode 0700) the state directory. */
  static async open(dir: string): Promise<FileStore> {
    const store = new FileStore(resolve(dir));
    try {
      await mkdir(store.logsDir, { recursive: true, mode: 0o700 });
      await mkdir(store.readyDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new PmError('E_STATE_DIR', `cannot use state directory ${store.dir}: ${(error as Error).message}`, {
        hint: 'pass --state-dir or set PM_STATE_DIR to a folder you can write',
        cause: error,
      });
    }
    return store;
  }

  lock(command: string): Promise<StateLock> {
    return acquireLock(join(this.dir, 'lock'), command);
  }

  defaultLogPath(name: string): string {
    return join(this.logsDir, `${name}.log`);
  }

  /**
   * The file a process with a notify startup probe gets as its notification descriptor: emptied at
   * each start, so what it holds is the current run's (a file, not a pipe: a pm that exits or
   * restarts before the process notifies cannot make its write fail, and the next pm still reads it).
   */
  readyPath(name: string): string {
    return join(this.readyDir, name);
  }

  /** Every record: those of processes/ (an older pm's) overlaid with records.jsonl. */
  async listRecords(): Promise<Map<string, ProcessRecord>> {
    const records = new Map(this.legacyRecords().records.map((r) => [r.name, r]));
    for (const [name, record] of await this.records.read()) {
      if (record) records.set(name, record);
      else records.delete(name);
    }
    return new Map([...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async getRecord(name: string): Promise<ProcessRecord | undefined> {
    return (await this.listRecords()).get(name);
  }

  /** Durable when it resolves; writes made meanwhile share one fsync. Only the lock holder writes. */
  async putRecord(record: ProcessRecord): Promise<void> {
    await this.records.put(record);
  }

  async deleteRecord(name: string): Promise<void> {
    await this.records.remove(name);
  }

  /**
   * Appends one line per entry and fsyncs: an audit record survives a crash right after the action.
   * Entries appended while a write is in flight share the next write and fsync (the journal's group
   * commit): a daemon starting a wave of processes pays one fsync for the wave, not one each.
   */
  appendAudit(entries: AuditEntry | AuditEntry[]): Promise<void> {
    return this.auditJournal.append(Array.isArray(entries) ? entries : [entries]);
  }

  async readAudit(): Promise<AuditEntry[]> {
    let text: string;
    try {
      text = await readFile(this.auditPath, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    // A torn last line (crash mid-append) is skipped rather than failing the whole read.
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as AuditEntry];
        } catch {
          return [];
        }
      });
  }

  /**
   * Notes which instance marker the next start of NAME will carry, before the spawn (see IntentLog:
   * synchronous, and not fsynced on purpose).
   */
  writeIntent(intent: StartIntent): void {
    this.intents.write(intent);
  }

  /** The last intent written for each process. */
  listIntents(): StartIntent[] {
    return this.intents.list();
  }

  deleteIntent(name: string): void {
    this.intents.delete(name);
  }

  /**
   * The records an older pm kept as processes/NAME.json (none when the folder is missing), and how
   * to remove them once RecordLog has folded them in. Synchronous: the folder exists only until the
   * first write after an upgrade, and the compaction that folds them in must not yield.
   */
  private legacyRecords(): LegacyRecords {
    let files: string[];
    try {
      files = readdirSync(this.processesDir).filter((f) => f.endsWith('.json') && !f.startsWith('.')).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], remove: () => undefined };
      throw error;
    }
    const records = files.flatMap((f) => {
      const path = join(this.processesDir, f);
      // A record deleted between the listing and the read (`pm get` racing an older `pm delete`) is simply gone.
      try {
        return [parseRecord(path, readFileSync(path, 'utf8'))];
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    });
    return {
      records,
      remove: () => {
        for (const f of files) rmSync(join(this.processesDir, f), { force: true });
        try {
          rmdirSync(this.processesDir);
        } catch {
          // Something else lives there (a temp file of an older pm killed mid-write): left alone.
        }
      },
    };
  }
}

function parseRecord(path: string, text: string): ProcessRecord {
  try {
    return JSON.parse(text) as ProcessRecord;
  } catch (error) {
    throw corruptRecord(path, text, error);
  }
}

/**
 * A record pm cannot read describes a process that may still be running. Forgetting it (or moving
 * it away and applying again) would start a second instance beside it, so every command that reads
 * the records stops here until someone has looked: the hint says how to find and stop the process.
 */
function corruptRecord(path: string, text: string, cause: unknown): PmError {
  // The PID and group are near the end of the record; a torn or damaged file may still show them.
  const pid = /"pid"\s*:\s*(\d+)/.exec(text)?.[1];
  const pgid = /"pgid"\s*:\s*(\d+)/.exec(text)?.[1] ?? pid;
  const find =
    pid === undefined
      ? `find it with \`ps -eo pid,pgid,lstart,args\` (its command is in the manifest)`
      : `the file names PID ${pid}: check it is that process with \`ps -o pid,pgid,lstart,args -g ${pgid}\``;
  const stop = pgid === undefined ? 'stop it (`kill -TERM -- -PGID` stops its whole group)' : `stop it with \`kill -TERM -- -${pgid}\``;
  return new PmError('E_STATE_CORRUPT', `state file ${path} is not valid JSON; pm get, diff, apply, delete and restart refuse to run until it is dealt with, rather than forget a process that may still be running`, {
    hint: `the process it describes may still be running: ${find}, ${stop}, then remove ${path} (the next pm apply starts the process again)`,
    cause,
  });
}
