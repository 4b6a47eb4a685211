// pm pause / resume / reset: requests to the running daemon, which owns the state they change.
import type { ControlVerb } from '../daemon/api.js';
import { ExitCode, UsageError } from '../errors.js';
import type { Command } from './command.js';
import { requireDaemon } from './via-daemon.js';
import { requestByFlag } from './flag-request.js';

export function controlCommand(verb: ControlVerb, text: { summary: string; description: string[]; examples: string[] }): Command {
  return {
    name: verb,
    summary: text.summary,
    usage: `pm ${verb} NAME [NAME ...]`,
    description: [...text.description, 'Needs a running pm daemon on the state directory; with a database configured (databaseUrl) the', "request is a row in pm.flags, which a daemon handles when it runs."].join('\n'),
    examples: text.examples,
    options: {},
    optionHelp: [],
    async run(_values, positionals, cli) {
      if (positionals.length === 0) throw new UsageError(`pm ${verb} needs the NAME of a process`, 'pm get lists them');
      const byFlag = await requestByFlag(cli, verb, positionals);
      if (byFlag) return byFlag.code;
      const client = await requireDaemon(cli, verb);
      for (const name of positionals) {
        const result = await client.control(verb, name, { signal: cli.signal });
        cli.stdout.write(`${result.message}\n`);
      }
      return ExitCode.ok;
    },
  };
}
