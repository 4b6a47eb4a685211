import { open, stat } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { ExitCode, NotFoundError, UsageError } from '../../errors.js';
import { stringOption, type Command } from '../command.js';
import { openState } from '../state.js';

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
  optionHelp: [
    ['-f, --follow', 'keep printing new output'],
    ['--tail N', 'start with the last N lines (default: all)'],
    ['--stderr', 'the stderr file, when it is separate'],
  ],
  async run(values, positionals, cli) {
    const name = positionals[0];
    if (!name || positionals.length > 1) throw new UsageError('pm logs needs exactly one NAME', 'e.g. pm logs api');
    const tailText = stringOption(values, 'tail');
    const tail = tailText === undefined ? undefined : Number(tailText);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new UsageError(`--tail: "${tailText}" is not a whole number`);
    const state = await openState(cli);
    const record = await state.store.getRecord(name);
    if (!record) throw new NotFoundError(name);
    const logs = record.manifest.spec.exec.logs;
    const stdoutPath = logs?.stdout ?? state.store.defaultLogPath(name);
    const path = values.stderr === true ? (logs?.stderr ?? stdoutPath) : stdoutPath;

    let offset = await printFrom(path, cli.stdout, tail);
    if (values.follow !== true) return ExitCode.ok;
    await new Promise<void>((resolve) => {
      let busy = false;
      const pump = async (): Promise<void> => {
        if (busy) return;
        busy = true;
        try {
          offset = await printRange(path, cli.stdout, offset);
        } finally {
          busy = false;
        }
      };
      // fs.watch gives prompt updates but fails on a file that does not exist (yet, or after
      // rotation) and can miss appends on some file systems: a slow poll backs it up.
      let watcher: FSWatcher | undefined;
      const rewatch = (): void => {
        if (watcher) return;
        try {
          watcher = watch(path, () => void pump());
          watcher.on('error', () => {
            watcher?.close();
            watcher = undefined;
          });
        } catch {
          watcher = undefined;
        }
      };
      rewatch();
      const poll = setInterval(() => {
        rewatch();
        void pump();
      }, 500);
      cli.signal.addEventListener('abort', () => {
        watcher?.close();
        clearInterval(poll);
        resolve();
      });
    });
    return ExitCode.ok;
  },
};

async function printFrom(path: string, out: NodeJS.WritableStream, tail: number | undefined): Promise<number> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return 0;
  }
  if (tail === undefined) return printRange(path, out, 0);
  // Read backwards in chunks until enough newlines are seen.
  const file = await open(path, 'r');
  try {
    let start = size;
    let newlines = 0;
    const chunk = Buffer.alloc(64 * 1024);
    while (start > 0 && newlines <= tail) {
      const length = Math.min(chunk.length, start);
      start -= length;
      await file.read(chunk, 0, length, start);
      for (let i = length - 1; i >= 0; i--) {
        if (chunk[i] === 0x0a && !(start + i === size - 1)) newlines++;
        if (newlines > tail) {
          start += i + 1;
          break;
        }
      }
    }
    return printRange(path, out, start);
  } finally {
    await file.close();
  }
}

async function printRange(path: string, out: NodeJS.WritableStream, from: number): Promise<number> {
  let file;
  try {
    file = await open(path, 'r');
  } catch {
    return from;
  }
  try {
    const { size } = await file.stat();
    // Truncated (rotated by someone): start again from the top.
    let position = size < from ? 0 : from;
    const buffer = Buffer.alloc(64 * 1024);
    while (position < size) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - position), position);
      if (bytesRead === 0) break;
      out.write(Buffer.from(buffer.subarray(0, bytesRead)));
      position += bytesRead;
    }
    return position;
  } finally {
    await file.close();
  }
}
