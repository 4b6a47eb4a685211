import { loadDesiredSet } from '../../manifest/index.js';
import { ExitCode, UsageError } from '../../errors.js';
import { listOption, type Command } from '../command.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'Check manifests without touching anything.',
  usage: 'pm validate -f PATH [-f PATH ...]',
  description:
    'Loads every manifest under the paths (files, folders searched recursively for .yaml/.yml, or - for\nstandard input) and checks the whole set: schema, duplicate names, unknown dependencies, cycles,\nports. Every problem is printed as file:line:col with a hint. Exit code 0 when valid, 2 otherwise.',
  examples: ['pm validate -f manifests/', 'cat api.yaml | pm validate -f -'],
  options: { filename: { type: 'string', short: 'f', multiple: true } },
  optionHelp: [['-f, --filename PATH', 'manifest file, folder, or - for stdin (repeatable)']],
  async run(values, _positionals, cli) {
    const paths = listOption(values, 'filename');
    if (paths.length === 0) throw new UsageError('pm validate needs -f PATH', 'e.g. pm validate -f manifests/');
    const set = await loadDesiredSet(paths, { cwd: cli.cwd, stdin: cli.stdin });
    const n = set.processes.size;
    cli.stdout.write(`${cli.style.green('valid')}: ${n} process${n === 1 ? '' : 'es'} in ${paths.join(', ')}\n`);
    return ExitCode.ok;
  },
};
