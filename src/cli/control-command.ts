// pm pause / resume / reset: requests to the running daemon, which owns the state they change.
import type { ControlVerb } from '../daemon/api.js';
import { ExitCode, UsageError } from '../errors.js';
import type { Command } from './command.js';
import { requireDaemon } from './via-daemon.js';

export function controlCommand(verb: ControlVerb, text: { summary: string; description: string[]; examples: string[] }): Command {
  return {
    name: verb,
    summary: text.summary,
    usage: `pm ${verb} NAME [NAME ...]`,
    description: [...text.description, 'Needs a running pm daemon on the state directory.'].join('\n'),
    examples: text.examples,
    options: {},
    optionHelp: [],
    async run(_values, positionals, cli) {
      if (positionals.length === 0) throw new UsageError(`pm ${verb} needs the NAME of a process`, 'pm get lists them');
      const client = await requireDaemon(cli, verb);
      for (const name of positionals) {
        const result = await client.control(verb, name, { signal: cli.signal });
        cli.stdout.write(`${result.message}\n`);
      }
      return ExitCode.ok;
    },
  };
}
