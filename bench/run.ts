// What every bench script sets up before its first measurement: progress lines on stderr, the
// command as the user would type it (for the report), the machine and its load at the start, and
// a temp folder removed by the run's Cleanup, which also ends everything on Ctrl-C.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup } from './daemon/cleanup.js';
import { describeMachine, loadAverage, type Machine } from './daemon/report.js';

export interface BenchRun {
  progress: (line: string) => void;
  /** The script's own arguments. */
  args: string[];
  /** `npm run bench:NAME -- ARGS`. */
  command: string;
  startedAt: Date;
  loadAtStart: string;
  machine: Machine;
  cleanup: Cleanup;
  /** The run's temp folder, removed by `cleanup`. */
  root: string;
  /** Reports what ended the measurements (not a Ctrl-C, which Cleanup reports); the exit code it means: 1. */
  fail: (error: unknown) => 1;
  /** Runs the cleanup, reports its failures, and exits: with `code`, or 1 when a cleanup step failed. */
  exit: (code: number) => Promise<never>;
}

export async function startBenchRun(name: string): Promise<BenchRun> {
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);
  // As the user would type them (quoted where a shell needs it: --pm-daemon-args="--memory-mode fast").
  const args = process.argv.slice(2).map(shellWord);
  const command = `npm run bench:${name}${args.length > 0 ? ` -- ${args.join(' ')}` : ''}`;
  const startedAt = new Date();
  const loadAtStart = loadAverage();
  const machine = describeMachine();
  const cleanup = new Cleanup();
  cleanup.onSignals(progress);
  const root = await mkdtemp(join(tmpdir(), `pm-bench-${name}-`));
  cleanup.add('remove the temp folder', () => rm(root, { recursive: true, force: true }));
  const fail = (error: unknown): 1 => {
    if ((error as Error).message !== 'interrupted') progress(`bench failed: ${(error as Error).stack ?? String(error)}`);
    return 1;
  };
  const exit = async (code: number): Promise<never> => {
    const failures = await cleanup.run();
    for (const failure of failures) progress(`cleanup: ${failure}`);
    process.exit(failures.length > 0 ? 1 : code);
  };
  return { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit };
}

/** One argument as a shell reads it back: bare when it holds only safe characters, else in single quotes. */
function shellWord(arg: string): string {
  return /^[\w./=:,@%+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}
