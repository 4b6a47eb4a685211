import { open, type FileHandle } from 'node:fs/promises';
import { runtimeOf } from '../../manifest/runtime.js';
import { engineKeepsLogs } from '../../drivers/driver.js';
import { watch, type FSWatcher } from 'node:fs';
import type { Writable } from 'node:stream';
import { ExitCode, NotFoundError, PmError, UsageError } from '../../errors.js';
import { stringOption, type Command } from '../command.js';
import { openState } from '../state.js';

/** How much of the log is read at a time; the next read waits until the output has taken it. */
const CHUNK_BYTES = 64 * 1024;
/** fs.watch can miss appends on some file systems and cannot watch a missing file: a slow poll backs it up. */
const FOLLOW_POLL_MS = 500;

export const logsCommand: Command = {
  name: 'logs',
  summary: "Print a process's output.",
  usage: 'pm logs NAME [-f] [--tail N] [--stderr]',
  description: [
    'Prints the log file the process writes to (by default stdout and stderr together, in order, in',
    '<state-dir>/logs/NAME.log). With -f, keeps printing what is appended until interrupted. When the',
    'manifest sends stderr to its own file, --stderr prints that one.',
  ].join('\n'),
  examples: ['pm logs api', 'pm logs api -f --tail 20', 'pm logs worker --stderr'],
  options: { follow: { type: 'boolean', short: 'f' }, tail: { type: 'string' }, stderr: { type: 'boolean' } },
  interruptible: true,
  optionHelp: [
    ['-f, --follow', 'keep printing new output'],
    ['--tail N', 'start with the last N lines (default: all; 0 with -f: only what comes next)'],
    ['--stderr', 'the stderr file, when it is separate'],
  ],
  async run(values, positionals, cli) {
    const name = positionals[0];
    if (!name || positionals.length > 1) throw new UsageError('pm logs needs exactly one NAME', 'e.g. pm logs api');
    const tailText = stringOption(values, 'tail');
    if (tailText !== undefined && !/^\d+$/.test(tailText)) throw new UsageError(`--tail: "${tailText}" is not a whole number`);
    const tail = tailText === undefined ? undefined : Number(tailText);
    const state = await openState(cli);
    const record = await state.store.getRecord(name);
    if (!record) throw new NotFoundError(name);
    if (record.handle && engineKeepsLogs(record.handle) && state.driver.logs) {
      // The engine keeps the output (a container's log driver, a unit's journal): read it there, both streams unless --stderr.
      const stderrOnly = values.stderr === true;
      await state.driver.logs(record.handle, { stdout: !stderrOnly, stderr: true, follow: values.follow === true, ...(tail !== undefined && { tail }) }, cli.stdout, cli.signal);
      return ExitCode.ok;
    }
    const { logs } = runtimeOf(record.manifest);
    const stdoutPath = logs?.stdout ?? state.store.defaultLogPath(name);
    const path = values.stderr === true ? (logs?.stderr ?? stdoutPath) : stdoutPath;

    const offset = await printFrom(path, cli.stdout, tail, cli.signal);
    if (values.follow === true) await follow(path, cli.stdout, offset, cli.signal);
    return ExitCode.ok;
  },
};

/** Prints the file, or its last `tail` lines; returns the offset printing stopped at. A missing file prints nothing. */
async function printFrom(path: string, out: Writable, tail: number | undefined, signal: AbortSignal): Promise<number> {
  const file = await openLog(path);
  if (!file) return 0;
  try {
    const { size } = await file.stat();
    const start = tail === undefined ? 0 : await startOfLastLines(file, size, tail);
    return start + (await copy(file, start, size, out, signal));
  } catch (error) {
    throw readError(path, error);
  } finally {
    await file.close();
  }
}

/** Prints what the file holds past `from` (from the top again if it shrank: rotated or truncated); returns the new offset. */
async function printRange(path: string, out: Writable, from: number, signal: AbortSignal): Promise<number> {
  const file = await openLog(path);
  if (!file) return from;
  try {
    const { size } = await file.stat();
    const start = size < from ? 0 : from;
    return start + (await copy(file, start, size, out, signal));
  } catch (error) {
    throw readError(path, error);
  } finally {
    await file.close();
  }
}

/**
 * Where the last `count` lines begin. A line ends with a newline or, for the last one, with the end
 * of the file: "a\nb" holds two lines, as does "a\nb\n" (its final newline ends "b"; it does not
 * begin an empty third line).
 */
async function startOfLastLines(file: FileHandle, size: number, count: number): Promise<number> {
  if (count === 0) return size;
  const chunk = Buffer.alloc(CHUNK_BYTES);
  let newlines = 0;
  let position = size;
  while (position > 0) {
    const length = Math.min(chunk.length, position);
    position -= length;
    const { bytesRead } = await file.read(chunk, 0, length, position);
    for (let i = bytesRead - 1; i >= 0; i--) {
      const at = position + i;
      if (chunk[i] === 0x0a && at !== size - 1 && ++newlines === count) return at + 1;
    }
  }
  return 0;
}

/**
 * Streams bytes [start, end) of the file to `out`, reading the next chunk only once `out` has taken
 * the last one, so a slow reader (a pipe, a terminal) holds pm's memory to a chunk or two. Stops
 * early when `signal` aborts or `out` is closed; returns how many bytes it read.
 */
async function copy(file: FileHandle, start: number, end: number, out: Writable, signal: AbortSignal): Promise<number> {
  if (end <= start || signal.aborted || out.destroyed) return 0;
  let copied = 0;
  const stream = file.createReadStream({ start, end: end - 1, autoClose: false, highWaterMark: CHUNK_BYTES });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      copied += chunk.length;
      if (!out.write(chunk) && !(await drained(out, signal))) break;
      if (signal.aborted) break;
    }
  } finally {
    stream.destroy();
  }
  return copied;
}

/** Resolves true once `out` wants more, false when it was closed (the reader left) or `signal` aborted. */
function drained(out: Writable, signal: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const settle = (more: boolean): void => {
      out.off('drain', onDrain);
      out.off('close', onEnd);
      out.off('error', onEnd);
      signal.removeEventListener('abort', onEnd);
      resolve(more);
    };
    const onDrain = (): void => settle(true);
    const onEnd = (): void => settle(false);
    out.on('drain', onDrain);
    out.on('close', onEnd);
    out.on('error', onEnd);
    signal.addEventListener('abort', onEnd, { once: true });
    if (signal.aborted || out.destroyed) onEnd();
  });
}

/**
 * Prints what is appended to the file from `offset` on until `signal` aborts (Ctrl-C) or the output
 * is closed. Rejects when the file cannot be read; a missing file (moved away by log rotation) is
 * waited for.
 */
function follow(path: string, out: Writable, offset: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    let running = false;
    let again = false;
    let done = false;
    const finish = (error?: unknown): void => {
      if (done) return;
      done = true;
      watcher?.close();
      clearInterval(poll);
      signal.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onAbort = (): void => finish();
    // One read at a time; a wake-up during a read makes it look again when it is done.
    const pump = async (): Promise<void> => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          offset = await printRange(path, out, offset, signal);
        } while (again && !done);
      } finally {
        running = false;
      }
      if (out.destroyed) finish();
    };
    const wake = (): void => {
      pump().catch(finish);
    };
    const rewatch = (): void => {
      if (watcher || done) return;
      try {
        watcher = watch(path, wake);
        watcher.on('error', () => {
          watcher?.close();
          watcher = undefined;
        });
      } catch {
        watcher = undefined;
      }
    };
    const poll = setInterval(() => {
      rewatch();
      wake();
    }, FOLLOW_POLL_MS);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted || out.destroyed) finish();
    else {
      rewatch();
      // What was appended between the first print and the watch.
      wake();
    }
  });
}

async function openLog(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw readError(path, error);
  }
}

function readError(path: string, error: unknown): PmError {
  if (error instanceof PmError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  return new PmError('E_LOG_READ', `cannot read log file ${path}: ${code ?? (error as Error).message}`, {
    hint: code === 'EISDIR' ? 'spec.exec.logs points at a folder; point it at a file' : 'check that the file is readable by the user running pm',
    cause: error,
  });
}
