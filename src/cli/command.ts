// The shape every command file exports, and what every command gets to work with.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
import { parseSelector, type Selector } from '../plan/selector.js';
import { makeStyle, wantsColor, type Style } from './output/style.js';

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Cli {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Colour for stdout. */
  style: Style;
  /** Colour for stderr. */
  errStyle: Style;
  stateDir: string;
  /** Aborted on SIGINT / SIGTERM. */
  signal: AbortSignal;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  description: string;
  examples: string[];
  options: OptionsConfig;
  /** Option help lines: [flag text, description]. */
  optionHelp: [string, string][];
  /**
   * The command watches `cli.signal` and winds down cleanly on Ctrl-C (releasing the lock). Other
   * commands keep Node's default: the first Ctrl-C ends them at once.
   */
  interruptible?: boolean;
  run(values: Values, positionals: string[], cli: Cli): Promise<number>;
}

export const globalOptions: OptionsConfig = {
  'state-dir': { type: 'string' },
  'no-color': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export const globalOptionHelp: [string, string][] = [
  ['--state-dir DIR', 'state directory (default $PM_STATE_DIR, else $XDG_STATE_HOME/pm, else ~/.local/state/pm)'],
  ['--no-color', 'no colour, even on a terminal (NO_COLOR is honoured too)'],
  ['-h, --help', 'show help for the command'],
];

export function parseCommandArgs(command: Command, argv: string[]): { values: Values; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options: { ...globalOptions, ...command.options }, allowPositionals: true, strict: true });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (error) {
    throw new UsageError(`pm ${command.name}: ${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`, `see pm ${command.name} --help`);
  }
}

export function commandHelp(command: Command): string {
  const rows = [...command.optionHelp, ...globalOptionHelp];
  const width = Math.max(...rows.map(([flag]) => flag.length));
  return [
    `${command.summary}`,
    '',
    `Usage: ${command.usage}`,
    '',
    command.description,
    '',
    'Options:',
    ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}   ${text}`),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

export function styles(stdout: NodeJS.WriteStream, stderr: NodeJS.WriteStream, env: NodeJS.ProcessEnv, noColor: boolean): { style: Style; errStyle: Style } {
  return { style: makeStyle(wantsColor(stdout, env, noColor)), errStyle: makeStyle(wantsColor(stderr, env, noColor)) };
}

export function stringOption(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function listOption(values: Values, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}

/** `-l key=value[,key=value]`, checked; undefined when not given. */
export function selectorOption(values: Values): Selector | undefined {
  const text = stringOption(values, 'selector');
  if (text === undefined) return undefined;
  const parsed = parseSelector(text);
  if ('error' in parsed) throw new UsageError(`-l: ${parsed.error}`, 'write it as key=value[,key=value], e.g. -l tier=web');
  return parsed.selector;
}

/**
 * --prune and -l for apply and diff. -l only narrows what --prune may delete, so it needs --prune;
 * and every stdin apply shares one scope (`-`), so pruning from stdin needs -l to say which.
 */
export function pruneScopeOptions(values: Values, paths: readonly string[]): { prune: boolean; selector: Selector | undefined } {
  const prune = values.prune === true;
  const selector = selectorOption(values);
  if (selector && !prune) throw new UsageError('-l selects what --prune may delete; it needs --prune', 'add --prune, or drop -l');
  if (prune && !selector && paths.includes('-')) {
    throw new UsageError('--prune with -f - needs -l', 'every manifest set read from stdin shares one prune scope: say with -l which processes this one owns');
  }
  return { prune, selector };
}

/** `--parallel N`: a whole number of at least 1 (default 32). */
export function parallelOption(values: Values): number {
  const text = stringOption(values, 'parallel') ?? '32';
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--parallel: "${text}" is not a whole number of at least 1`);
  return n;
}
