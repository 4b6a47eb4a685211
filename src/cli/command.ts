// The shape every command file exports, and what every command gets to work with.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';
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
