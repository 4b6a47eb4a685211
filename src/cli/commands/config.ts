// pm config show: the effective daemon config and where each value came from.
import { ExitCode, UsageError } from '../../errors.js';
import { configKeys, formatConfig, loadConfig, loadEnvFile } from '../../config/index.js';
import { stringOption, type Command, type OptionsConfig } from '../command.js';

// One flag per config key that has one (the schema's x-flag); --state-dir is already global.
const keyFlags = configKeys().filter((s) => s.flag !== undefined && s.flag !== 'state-dir');

export const configCommand: Command = {
  name: 'config',
  summary: 'Show the effective daemon configuration and where each value came from.',
  usage: 'pm config show [--config PATH] [--env-file PATH] [-o yaml|json] [--KEY VALUE ...]',
  description: [
    'Builds the daemon config as the daemon would: schema defaults < config file < PM_* environment',
    'variables < flags, then prints every key, its value and its source. Secrets print as ****.',
    'The file is --config PATH, else $PM_CONFIG, else $XDG_CONFIG_HOME/pm/config.yaml (or',
    '~/.config/pm/config.yaml) when it exists. --env-file loads a .env file first (it never',
    'overrides variables already set). Keys, variables and flags: schemas/config.schema.json.',
  ].join('\n'),
  examples: ['pm config show', 'pm config show --config /etc/pm/config.yaml -o yaml', 'PM_PARALLEL=4 pm config show --log-level debug'],
  options: {
    config: { type: 'string' },
    'env-file': { type: 'string' },
    output: { type: 'string', short: 'o' },
    ...Object.fromEntries(keyFlags.map((s) => [s.flag, { type: 'string' }])) as OptionsConfig,
  },
  optionHelp: [
    ['--config PATH', 'config file (default $PM_CONFIG, else $XDG_CONFIG_HOME/pm/config.yaml)'],
    ['--env-file PATH', 'load PM_* variables from a .env file (set variables win)'],
    ['-o, --output FORMAT', 'yaml or json (default: a table)'],
    ...keyFlags.map((s): [string, string] => [`--${s.flag} VALUE`, `${s.key} (env ${s.env})`]),
  ],
  async run(values, positionals, cli) {
    const [sub, ...extra] = positionals;
    if (sub !== 'show' || extra.length > 0) throw new UsageError(`pm config: expected "show"${sub === undefined ? '' : `, got "${positionals.join(' ')}"`}`, 'run pm config show');
    const format = stringOption(values, 'output') ?? 'table';
    if (format !== 'table' && format !== 'json' && format !== 'yaml') throw new UsageError(`-o: unknown format "${format}"`, 'use yaml or json');
    const envFile = stringOption(values, 'env-file');
    const env = envFile === undefined ? cli.env : await loadEnvFile(envFile, cli.env);
    const file = stringOption(values, 'config');
    const loaded = await loadConfig({ ...(file === undefined ? {} : { file }), env, flags: values, cwd: cli.cwd });
    cli.stdout.write(formatConfig(loaded, format));
    return ExitCode.ok;
  },
};
