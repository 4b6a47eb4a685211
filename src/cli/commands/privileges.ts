// pm privileges -f DIR: what the account pm runs as must be allowed for the set's systemd
// processes, as a polkit rule and a sudoers alternative, exactly those verbs on exactly those
// units. Prints only: it installs nothing and runs nothing (no input reaches a shell).
import { userInfo } from 'node:os';
import { privilegesNeeded, type PrivilegesNeed } from '../../drivers/systemd-privileges.js';
import { isUserName, type Privileges } from '../../drivers/systemd/privileges.js';
import { SETTINGS_VARIABLES, systemdSettingsOf } from '../../drivers/systemd/settings.js';
import { ExitCode, UsageError } from '../../errors.js';
import { loadDesiredSet } from '../../manifest/index.js';
import { listOption, stringOption, type Command, type Values } from '../command.js';

const FORMATS = ['both', 'polkit', 'sudoers'] as const;
type Format = (typeof FORMATS)[number];

export const privilegesCommand: Command = {
  name: 'privileges',
  summary: "Print the polkit rule (or sudoers lines) letting pm's user drive exactly the manifests' systemd units.",
  usage: 'pm privileges -f PATH [-f PATH ...] [--user NAME] [--format polkit|sudoers|both] [-o json]',
  description: [
    'For pm running as a user other than root: validates the manifests, collects the unit of every',
    'systemd process (spec.systemd.unit, or pm-<name>.service for spec.systemd.command) and prints a',
    'polkit rule allowing that user exactly the systemctl verbs pm sends (start, stop, restart, kill,',
    'reset-failed) on exactly those units, and daemon-reload and `start pm.target` when pm writes units;',
    'or, without polkit, the sudoers lines for exactly those command lines, with the settings pm then',
    'needs. Installs nothing. Nothing is needed for the user scope (PM_SYSTEMD_SCOPE=user), for root,',
    'or without systemd processes: pm says so and exits 0.',
  ].join('\n'),
  examples: [
    'pm privileges -f manifests/ --user pm',
    'pm privileges -f manifests/ --user pm --format polkit > 50-pm-pm.rules',
    'pm privileges -f manifests/ --user pm --format sudoers -o json',
  ],
  options: {
    filename: { type: 'string', short: 'f', multiple: true },
    user: { type: 'string' },
    format: { type: 'string' },
    output: { type: 'string', short: 'o' },
  },
  optionHelp: [
    ['-f, --filename PATH', 'manifest file, folder, or - for stdin (repeatable)'],
    ['--user NAME', 'the account pm runs as (default: the user running this command)'],
    ['--format FORMAT', 'polkit, sudoers or both (default both)'],
    ['-o, --output FORMAT', 'json (default: text to copy into the files)'],
  ],
  async run(values, _positionals, cli) {
    const paths = listOption(values, 'filename');
    if (paths.length === 0) throw new UsageError('pm privileges needs -f PATH', 'e.g. pm privileges -f manifests/ --user pm');
    const format = formatOption(values);
    const output = stringOption(values, 'output') ?? 'text';
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o: unknown format "${output}"`, 'use -o json, or leave -o out for text');
    const user = stringOption(values, 'user') ?? currentUser();
    if (!isUserName(user)) throw new UsageError(`--user: "${user}" is not a user name`, 'give the name of the account pm runs as, e.g. --user pm');

    const set = await loadDesiredSet(paths, { cwd: cli.cwd, stdin: cli.stdin });
    const scope = cli.env[SETTINGS_VARIABLES.scope]?.trim() === 'user' ? 'user' : 'system';
    // The user scope needs no unit folder setting (and would want XDG_RUNTIME_DIR for it).
    const settings = scope === 'user' ? { unitDir: '', systemdUnitDir: '' } : systemdSettingsOf(cli.env);
    const need = privilegesNeeded(set.processes.values(), { user, scope, unitDir: settings.unitDir, systemdUnitDir: settings.systemdUnitDir });
    cli.stdout.write(output === 'json' ? `${JSON.stringify(jsonOf(need, format), null, 2)}\n` : textOf(need, format, paths));
    return ExitCode.ok;
  },
};

function formatOption(values: Values): Format {
  const format = stringOption(values, 'format') ?? 'both';
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format: unknown format "${format}"`, `use one of ${FORMATS.join(', ')}`);
  return format as Format;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    // No passwd entry (an arbitrary uid in a container).
    throw new UsageError('cannot tell which user runs this command (no passwd entry)', 'pass --user NAME, the account pm runs as');
  }
}

/** -o json: what is needed, with the texts of the chosen format. */
function jsonOf(need: PrivilegesNeed, format: Format): object {
  const base = { user: need.user, scope: need.scope, processes: need.processes, needed: need.needed };
  if (!need.needed) return { ...base, why: need.why, message: nothingMessage(need) };
  const p = need.privileges;
  return {
    ...base,
    allowed: p.allowed,
    ...(format !== 'sudoers' && { polkit: { path: p.polkitPath, mode: '0644', rule: p.polkitRule } }),
    ...(format !== 'polkit' && {
      sudoers: { path: p.sudoersPath, mode: '0440', text: p.sudoers, check: ['visudo', '-cf', p.sudoersPath], commands: p.commands, env: need.sudoEnv },
    }),
    ...(need.unitDir && { unitDir: { ...need.unitDir, writableBy: need.user } }),
  };
}

function nothingMessage(need: Extract<PrivilegesNeed, { needed: false }>): string {
  switch (need.why) {
    case 'no-systemd-processes':
      return 'no process of the manifests has driver systemd: pm needs no systemd privileges for them (nothing to allow)';
    case 'user-scope':
      return `${SETTINGS_VARIABLES.scope}=user: pm drives ${need.user}'s own systemd (systemctl --user), which needs no privileges (nothing to allow)`;
    case 'root':
      return 'pm would run as root, which needs no privileges (nothing to allow); to allow the account pm runs as, pass --user NAME';
  }
}

/**
 * Text to copy: with --format polkit it is a valid rules file, with --format sudoers a valid sudoers
 * file (everything else in comments), so either can be saved as it is.
 */
function textOf(need: PrivilegesNeed, format: Format, paths: readonly string[]): string {
  if (!need.needed) return `${nothingMessage(need)}\n`;
  const p = need.privileges;
  const comment = format === 'sudoers' ? '# ' : '// ';
  const names = need.processes.map((u) => u.process);
  const width = Math.max(...names.map((n) => n.length));
  const unitWidth = Math.max(...need.processes.map((u) => u.unit.length));
  const summary = [
    `pm privileges for user ${need.user} (system scope): the ${need.processes.length} systemd unit${need.processes.length === 1 ? '' : 's'} of ${paths.join(', ')}`,
    ...need.processes.map((u) => `  ${u.process.padEnd(width)}   ${u.unit.padEnd(unitWidth)}   ${u.writtenByPm ? 'pm writes it' : 'existing unit'}`),
    `Allowed: ${allowedLine(p.allowed)}.`,
    ...(need.unitDir ? unitDirNote(need.user, need.unitDir, need.processes.filter((u) => u.writtenByPm).map((u) => u.process)) : []),
    '',
  ];
  const polkit = [
    `polkit (polkit 0.106 or later): save as ${p.polkitPath}, owned by root, mode 0644; polkitd reads it at once.`,
  ];
  const sudoers = [
    `${format === 'both' ? 'Or, without polkit, ' : ''}sudoers: save these lines as FILE, check them with \`visudo -cf FILE\`, then install`,
    `FILE as ${p.sudoersPath}, owned by root, mode 0440 (a broken file there stops sudo working). Run pm`,
    'with these settings (reading state needs no privilege, so reads go without sudo):',
    ...Object.entries(need.sudoEnv).map(([key, value]) => `  ${key}=${shellWord(value)}`),
  ];
  return [
    ...summary.map((line) => commented(comment, line)),
    ...(format === 'sudoers' ? [] : [...polkit.map((line) => commented('// ', line)), p.polkitRule]),
    ...(format === 'polkit' ? [] : [...sudoers.map((line) => commented('# ', line)), p.sudoers]),
  ].join('\n');
}

function allowedLine(allowed: Privileges['allowed']): string {
  const byVerbs = new Map<string, string[]>();
  for (const [unit, verbs] of Object.entries(allowed.units)) byVerbs.set(verbs.join(', '), [...(byVerbs.get(verbs.join(', ')) ?? []), unit]);
  const parts = [...byVerbs].map(([verbs, units]) => `${verbs} on ${units.join(', ')}`);
  return [...parts, ...(allowed.daemonReload ? ['daemon-reload'] : [])].join('; ');
}

/** Folders of systemd's unit path that hold units other than pm's: never to be given to pm's user. */
const SHARED_UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system', '/run/systemd/transient'];
/** An example of a folder in systemd's (system) unit path that is usually empty. */
const EXAMPLE_UNIT_DIR = '/usr/local/lib/systemd/system';

function unitDirNote(user: string, unitDir: { path: string; systemdPath: string }, writers: readonly string[]): string[] {
  const seen = unitDir.systemdPath === unitDir.path ? '' : ` (${unitDir.systemdPath} to systemd)`;
  const shared = SHARED_UNIT_DIRS.includes(unitDir.systemdPath.replace(/\/+$/, ''));
  return [
    `pm writes units (${writers.join(', ')}): ${user} must also be able to write the folder ${SETTINGS_VARIABLES.unitDir} names,`,
    `now ${unitDir.path}${seen}: one systemd reads units from (\`systemd-analyze unit-paths\`), of pm's own.`,
    ...(shared
      ? [
          `That one holds other units too: never give it to ${user}. Instead, e.g. (as root):`,
          `  mkdir -p ${EXAMPLE_UNIT_DIR} && chown ${shellWord(user)} ${EXAMPLE_UNIT_DIR}`,
          `and run pm with ${SETTINGS_VARIABLES.unitDir}=${EXAMPLE_UNIT_DIR} (if nothing else installs units there).`,
        ]
      : [`As root: chown ${shellWord(user)} ${shellWord(unitDir.path)} (pm writes pm-<name>.service, pm.target and pm.target.d/ there).`]),
    'Note: whoever can write a unit folder and daemon-reload can run any program as root. For least',
    'privilege, have pm drive existing units only (spec.systemd.unit): then none of this is needed.',
  ];
}

/** Every line of `text` as a comment (a path with a line break stays inside the comment). */
function commented(prefix: string, text: string): string {
  return text === '' ? '' : text.split(/\r?\n|\r/).map((line) => `${prefix}${line}`).join('\n');
}

/** A word as a POSIX shell reads it back, for lines meant to be copied. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
