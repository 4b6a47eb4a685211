// pm daemon: converge continuously. Argument parsing only; the daemon itself is src/daemon/run.ts.
import { ExitCode, UsageError } from '../../errors.js';
import { configKeys, loadConfig, loadEnvFile, type LoadConfigOptions } from '../../config/index.js';
import { applyMemoryMode } from '../../daemon/memory-mode.js';
import { pmVersion } from '../../util/version.js';
import { stringOption, type Command, type OptionsConfig } from '../command.js';

// One flag per config key that has one (the schema's x-flag); --state-dir is already global.
const keyFlags = configKeys().filter((s) => s.flag !== undefined && s.flag !== 'state-dir');

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'Keep the processes of a manifest directory as declared, continuously.',
  usage: 'pm daemon [-f DIR] [--config PATH] [--env-file PATH] [--KEY VALUE ...]',
  description: [
    'Applies DIR (default ./manifests, or the config key manifests) and keeps it applied: it watches',
    'the directory, restarts processes that exit according to their restart policy (with backoff',
    'and a circuit breaker), runs their probes, and serves /healthz, /readyz, /metrics and the API',
    '(default http://127.0.0.1:7070). While it runs, pm apply, get, restart and delete go through it.',
    'An invalid change to DIR is reported and ignored: the last good set stays in force.',
    'SIGHUP reloads the config and DIR; SIGTERM or Ctrl-C stops the daemon (the processes keep',
    'running unless shutdown is stop), and a new daemon adopts them. Config: pm config show.',
  ].join('\n'),
  examples: ['pm daemon', 'pm daemon -f /etc/pm/manifests --listen 127.0.0.1:7171', 'PM_LOG_FORMAT=json pm daemon --shutdown stop'],
  interruptible: true,
  options: {
    filename: { type: 'string', short: 'f' },
    config: { type: 'string' },
    'env-file': { type: 'string' },
    ...(Object.fromEntries(keyFlags.map((s) => [s.flag, { type: 'string' }])) as OptionsConfig),
  },
  optionHelp: [
    ['-f, --filename DIR', 'manifest file or directory (same as --manifests; default ./manifests)'],
    ['--config PATH', 'config file (default $PM_CONFIG, else $XDG_CONFIG_HOME/pm/config.yaml)'],
    ['--env-file PATH', 'load PM_* variables from a .env file (set variables win)'],
    ...keyFlags.map((s): [string, string] => [`--${s.flag} VALUE`, `${s.key} (env ${s.env})`]),
  ],
  async run(values, positionals, cli) {
    if (positionals.length > 0) throw new UsageError(`pm daemon takes no arguments, got "${positionals.join(' ')}"`, 'pass the manifest directory with -f DIR');
    const filename = stringOption(values, 'filename');
    if (filename !== undefined && stringOption(values, 'manifests') !== undefined) throw new UsageError('-f and --manifests say the same thing', 'pass one of them');
    const envFile = stringOption(values, 'env-file');
    const env = envFile === undefined ? cli.env : await loadEnvFile(envFile, cli.env);
    const file = stringOption(values, 'config');
    const flags = { ...values, ...(filename !== undefined && { manifests: filename }) };
    const configOptions: LoadConfigOptions = { ...(file === undefined ? {} : { file }), env, flags, cwd: cli.cwd };
    const loaded = await loadConfig(configOptions);
    applyMemoryMode(loaded.config.memoryMode);
    const { runDaemon } = await import('../../daemon/run.js');
    await runDaemon({ configOptions, loaded, version: pmVersion(), signal: cli.signal, stdout: cli.stdout });
    return ExitCode.ok;
  },
};
