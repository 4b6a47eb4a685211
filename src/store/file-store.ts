// The embedded store: a state directory that needs no server.
//   processes/<name>.json   one record per managed process (atomic writes)
//   logs/<name>.log         default stdout+stderr of each process
//   ready/<name>            what a process with a notify startup probe wrote to its descriptor
//   audit.jsonl             append-only audit log, one JSON object per line
//   intents.jsonl           append-only: the instance marker of each start, written before the spawn
//   lock                    held by the pm command that is acting
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeFileAtomic, fsyncDir } from './atomic.js';
import { IntentLog } from './intent-log.js';
import { Journal } from './journal.js';
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

  private constructor(dir: string) {
    this.dir = dir;
    this.logsDir = join(dir, 'logs');
    this.readyDir = join(dir, 'ready');
    this.processesDir = join(dir, 'processes');
    this.auditPath = join(dir, 'audit.jsonl');
    this.intents = new IntentLog(join(dir, 'intents.jsonl'), join(dir, 'intents'));
    this.auditJournal = Journal.at(this.auditPath);
  }

  /** Opens (and creates, mode 0700) the state directory. */
  static async open(dir: string): Promise<FileStore> {
    const store = new FileStore(resolve(dir));
    try {
      await mkdir(store.processesDir, { recursive: true, mode: 0o700 });
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

  async listRecords(): Promise<Map<string, ProcessRecord>> {
    const files = (await readdir(this.processesDir)).filter((f) => f.endsWith('.json') && !f.startsWith('.')).sort();
    // A record deleted between readdir and readFile (`pm get` racing `pm delete`) is simply gone.
    const records = await Promise.all(files.map((f) => this.readRecordFile(join(this.processesDir, f)).catch(absentIfMissing)));
    return new Map(records.filter((r) => r !== undefined).map((r) => [r.name, r]));
  }

  async getRecord(name: string): Promise<ProcessRecord | undefined> {
    return this.readRecordFile(this.recordPath(name)).catch(absentIfMissing);
  }

  async putRecord(record: ProcessRecord): Promise<void> {
    await writeFileAtomic(this.recordPath(record.name), `${JSON.stringify(record, null, 2)}\n`);
  }

  async deleteRecord(name: string): Promise<void> {
    await unlink(this.recordPath(name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await fsyncDir(this.processesDir);
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

  private recordPath(name: string): string {
    // Names are DNS-1123 labels (validated), so they are safe file names.
    return join(this.processesDir, `${name}.json`);
  }

  private async readRecordFile(path: string): Promise<ProcessRecord> {
    const text = await readFile(path, 'utf8');
    try {
      return JSON.parse(text) as ProcessRecord;
    } catch (error) {
      throw corruptRecord(path, text, error);
    }
  }
}

function absentIfMissing(error: unknown): undefined {
  if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw error;
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
