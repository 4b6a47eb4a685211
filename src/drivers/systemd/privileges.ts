// What a user other than root needs to drive given units with given verbs: a polkit rule, or, where
// polkit is not wanted, sudoers lines. Both allow exactly those verbs on exactly those units, and
// nothing else: no pattern, no wildcard (in sudoers `*` matches across spaces, so `start pm-*`
// would also allow `start pm-x other.service`).
//
// When pm writes units (spec.systemd.command), install() and uninstall() also send `daemon-reload`
// and `start pm.target` (anchor.ts): `writesUnits` allows those two exactly. Writing the unit files
// themselves is no systemctl call: the unit folder must be writable by pm's user, which no rule here
// grants. Reading state (show, cat) needs no privilege, so with sudo the runner's readPrefix is [].
import { ANCHOR_TARGET } from './anchor.js';
import { SystemdError, SystemdErrorCode } from './errors.js';
import { daemonReloadArgv, UNIT_VERBS, verbArgv, type UnitVerb } from './systemctl.js';
import { validateUnitNames } from './unit-name.js';

export interface PrivilegeOptions {
  /** The account pm runs as. */
  user: string;
  /** systemctl's absolute path as sudo resolves it (default /usr/bin/systemctl). */
  systemctlPath?: string;
  /** pm writes units: also allow `daemon-reload` and the verbs pm sends to pm.target (ANCHOR_VERBS). */
  writesUnits?: boolean;
}

export interface Privileges {
  /** JavaScript for polkit (≥ 0.106, systemd ≥ 226 passes `unit` and `verb`). */
  polkitRule: string;
  /** Where it goes; polkitd reads rules.d on change. */
  polkitPath: string;
  /** sudoers lines; check with `visudo -cf FILE` before installing, mode 0440. */
  sudoers: string;
  sudoersPath: string;
  /** The systemctl command lines the sudoers text allows, as argv (after `sudo -n`). */
  commands: string[][];
  /** The runner settings that go with the sudoers text. */
  sudoRunner: { prefix: string[]; readPrefix: string[] };
  /** What both texts allow: verbs by unit (pm.target included when writesUnits), and daemon-reload. */
  allowed: { units: Record<string, UnitVerb[]>; daemonReload: boolean };
}

/** The verbs pm sends to pm.target: install() starts it (idempotent); nothing ever stops it. */
export const ANCHOR_VERBS: readonly UnitVerb[] = ['start'];

const MANAGE_UNITS = 'org.freedesktop.systemd1.manage-units';
const RELOAD_DAEMON = 'org.freedesktop.systemd1.reload-daemon';

/** The polkit rule and the sudoers alternative for `units` × `verbs`, for `options.user`. */
export function privileges(units: readonly string[], verbs: readonly UnitVerb[], options: PrivilegeOptions): Privileges {
  const names = validateUnitNames(units);
  if (names.length === 0) throw privilegeError('no units given');
  const allowedVerbs = [...new Set(verbs)];
  if (allowedVerbs.length === 0) throw privilegeError('no verbs given');
  for (const verb of allowedVerbs) {
    if (!(UNIT_VERBS as readonly string[]).includes(verb)) throw privilegeError(`unknown verb ${JSON.stringify(verb)} (one of ${UNIT_VERBS.join(', ')})`);
  }
  const user = options.user;
  if (!isUserName(user)) throw privilegeError(`${JSON.stringify(user)} is not a user name`);
  const systemctlPath = options.systemctlPath ?? '/usr/bin/systemctl';
  if (!/^\/[A-Za-z0-9_./-]+$/.test(systemctlPath)) throw privilegeError(`systemctlPath must be a plain absolute path, not ${JSON.stringify(systemctlPath)}`);

  const grants = new Map<string, UnitVerb[]>(names.map((unit) => [unit, allowedVerbs]));
  const daemonReload = options.writesUnits === true;
  // A manifest may name pm.target itself (as an existing unit): the verbs merge, in UNIT_VERBS order.
  if (daemonReload) grants.set(ANCHOR_TARGET, UNIT_VERBS.filter((verb) => ANCHOR_VERBS.includes(verb) || grants.get(ANCHOR_TARGET)?.includes(verb)));

  const commands = [...grants].flatMap(([unit, unitVerbs]) => unitVerbs.map((verb) => ['systemctl', ...verbArgv('system', verb, unit)]));
  if (daemonReload) commands.push(['systemctl', ...daemonReloadArgv()]);
  const fileTag = user.replace(/[^A-Za-z0-9_-]/g, '_');
  return {
    polkitRule: polkitRule(user, grants, daemonReload),
    polkitPath: `/etc/polkit-1/rules.d/50-pm-${fileTag}.rules`,
    sudoers: sudoersText(user, systemctlPath, commands),
    // sudo skips files in sudoers.d whose name holds a '.' or ends in '~'.
    sudoersPath: `/etc/sudoers.d/pm-${fileTag}`,
    commands,
    sudoRunner: { prefix: ['sudo', '-n'], readPrefix: [] },
    allowed: { units: Object.fromEntries(grants), daemonReload },
  };
}

/** A name polkit and sudoers can hold as it is: letters, digits, _ . - (and a trailing $), not a leading digit or '-'. */
export function isUserName(user: unknown): user is string {
  return typeof user === 'string' && user.length <= 256 && /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(user);
}


function polkitRule(user: string, units: ReadonlyMap<string, readonly UnitVerb[]>, daemonReload: boolean): string {
  // ES5 only: polkit's JavaScript engine (duktape, or old mozjs) has no let, arrows or includes.
  // reload-daemon carries no details (no unit, no verb): it is allowed whole or not at all.
  return [
    `// Written by pm: lets ${user} run exactly these systemctl verbs on exactly these units${daemonReload ? ', and daemon-reload' : ''}.`,
    // What polkit cannot narrow, said where the rule is read: the sudoers alternative is exact.
    `// polkit cannot narrow further: \`kill\` is allowed with any signal (pm sends only SIGKILL)${daemonReload ? ', and the reload-daemon action also covers daemon-reexec' : ''}; where that matters, use the alternative pm privileges --format sudoers prints, which allows exact command lines.`,
    `polkit.addRule(function (action, subject) {`,
    `  if (subject.user != ${JSON.stringify(user)}) return polkit.Result.NOT_HANDLED;`,
    ...(daemonReload ? [`  if (action.id == ${JSON.stringify(RELOAD_DAEMON)}) return polkit.Result.YES;`] : []),
    `  if (action.id != ${JSON.stringify(MANAGE_UNITS)}) return polkit.Result.NOT_HANDLED;`,
    `  var allowed = ${JSON.stringify(Object.fromEntries(units))};`,
    `  var unit = action.lookup("unit"), verb = action.lookup("verb");`,
    `  if (Object.prototype.hasOwnProperty.call(allowed, unit) && allowed[unit].indexOf(verb) >= 0) return polkit.Result.YES;`,
    `  return polkit.Result.NOT_HANDLED;`,
    `});`,
    '',
  ].join('\n');
}

function sudoersText(user: string, systemctlPath: string, commands: readonly string[][]): string {
  const lines = commands.map((argv) => `${user} ALL=(root) NOPASSWD: ${[systemctlPath, ...argv.slice(1)].map(sudoersWord).join(' ')}`);
  return [
    `# Written by pm: lets ${user} run exactly these command lines with \`sudo -n\` (sudo matches the whole argument list).`,
    ...lines,
    '',
  ].join('\n');
}

/** sudoers(5): in command arguments , : = and \ must be escaped with a backslash. */
function sudoersWord(word: string): string {
  return word.replace(/[\\,:=]/g, (char) => `\\${char}`);
}

function privilegeError(problem: string): SystemdError {
  return new SystemdError(SystemdErrorCode.unitSpec, `cannot write privileges: ${problem}`, { hint: 'give at least one unit, one verb and the user pm runs as' });
}
