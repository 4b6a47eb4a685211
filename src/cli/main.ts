#!/usr/bin/env -S node --max-semi-space-size=1
// pm's entry point: picks the command, turns every error into one clear message and an exit code.
// The young generation is capped at 1 MiB per semi-space (V8 grows it to 16–32 MiB after a burst
// and keeps it): 25–30 MiB less resident for a daemon with hundreds of processes, and no slower
// for `pm diff` of 10,000 (docs/benchmarks.md). `npm start` passes the same flag.
import { pmVersion } from '../util/version.js';
import { ExitCode, ManifestError, PmError, formatManifestIssue } from '../errors.js';
import { defaultStateDir } from '../store/file-store.js';
import { commandHelp, parseCommandArgs, styles, stringOption, type Cli, type Command } from './command.js';
// Commands load on demand: `pm get` should not pay for the manifest validator it never uses.
const commandLoaders: Record<string, () => Promise<Command>> = {
  validate: async () => (await import('./commands/validate.js')).validateCommand,
  diff: async () => (await import('./commands/diff.js')).diffCommand,
  apply: async () => (await import('./commands/apply.js')).applyCommand,
  get: async () => (await import('./commands/get.js')).getCommand,
  delete: async () => (await import('./commands/delete.js')).deleteCommand,
  logs: async () => (await import('./commands/logs.js')).logsCommand,
  restart: async () => (await import('./commands/restart.js')).restartCommand,
  pause: async () => (await import('./commands/pause.js')).pauseCommand,
  resume: async () => (await import('./commands/resume.js')).resumeCommand,
  reset: async () => (await import('./commands/reset.js')).resetCommand,
  daemon: async () => (await import('./commands/daemon.js')).daemonCommand,
  config: async () => (await import('./commands/config.js')).configCommand,
  db: async () => (await import('./commands/db.js')).dbCommand,
  audit: async () => (await import('./commands/audit.js')).auditCommand,
  events: async () => (await import('./commands/events.js')).eventsCommand,
  history: async () => (await import('./commands/history.js')).historyCommand,
  privileges: async () => (await import('./commands/privileges.js')).privilegesCommand,
};

function version(): string {
  return pmVersion();
}

async function mainHelp(): Promise<string> {
  const commands = await Promise.all(Object.values(commandLoaders).map((load) => load()));
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'pm: a declarative process manager. Describe processes in YAML manifests; pm makes what runs match.',
    '',
    'Usage: pm COMMAND [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}   ${c.summary}`),
    '',
    'Run `pm COMMAND --help` for a command\'s options and examples.',
    '',
    'Exit codes: 0 success (diff: no changes), 1 failure (diff: changes), 2 invalid input (nothing changed),',
    '3 state locked by another pm command, 130 interrupted.',
    '',
  ].join('\n');
}

// `pm get | head -1` closes the pipe early: that is the reader's choice, not an error, and must not
// abort an apply halfway through.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' && rest[0] ? commandLoaders[rest[0]] : undefined;
    process.stdout.write(topic ? commandHelp(await topic()) : await mainHelp());
    return ExitCode.ok;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`pm ${version()}\n`);
    return ExitCode.ok;
  }
  const load = Object.hasOwn(commandLoaders, name) ? commandLoaders[name] : undefined;
  const { errStyle } = styles(process.stdout, process.stderr, process.env, argv.includes('--no-color'));
  if (!load) {
    process.stderr.write(`${errStyle.red('error')}: unknown command "${name}"\n  hint: run pm --help to list the commands\n`);
    return ExitCode.invalid;
  }

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    // First signal: stop waiting, release the lock, exit cleanly. A second one: leave at once.
    if (++interrupts > 1) process.exit(ExitCode.interrupted);
    controller.abort(new Error(`received ${signal}`));
  };
  try {
    const command = await load();
    // Only commands that wind down on their own take over Ctrl-C; for the rest Node's default
    // (end at once) is right.
    if (command.interruptible) {
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    }
    const { values, positionals } = parseCommandArgs(command, rest);
    if (values.help === true) {
      process.stdout.write(commandHelp(command));
      return ExitCode.ok;
    }
    const cli: Cli = {
      stdout: process.stdout,
      stderr: process.stderr,
      stdin: process.stdin,
      env: process.env,
      cwd: process.cwd(),
      ...styles(process.stdout, process.stderr, process.env, values['no-color'] === true),
      stateDir: stringOption(values, 'state-dir') ?? defaultStateDir(process.env),
      signal: controller.signal,
    };
    return await command.run(values, positionals, cli);
  } catch (error) {
    return report(error, errStyle);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function report(error: unknown, style: ReturnType<typeof styles>['errStyle']): number {
  if (error instanceof ManifestError) {
    for (const issue of error.issues) process.stderr.write(`${style.red('error')}: ${formatManifestIssue(issue)}\n`);
    process.stderr.write(`${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof PmError) {
    process.stderr.write(`${style.red('error')}: ${error.message}\n${error.hint ? `  hint: ${error.hint}\n` : ''}`);
    return error.exitCode;
  }
  process.stderr.write(`${style.red('internal error')}: ${(error as Error)?.stack ?? String(error)}\n  please report this as a bug\n`);
  return ExitCode.failed;
}

const code = await main(process.argv.slice(2));
// Let stdout drain before exiting; children were unref'd, so nothing else keeps pm alive.
process.exitCode = code;
