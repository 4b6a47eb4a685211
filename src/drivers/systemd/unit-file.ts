// Rendering the .service file of a unit pm owns. Pure. Every value that reaches the file is either
// quoted the way systemd unquotes it or refused: a newline in any value would start a new
// directive (INI injection), so it is refused everywhere.
//
// Quoting (systemd.service(5), systemd.exec(5); the recipe is nixpkgs' utils.escapeSystemdExecArg):
// - ExecStart: specifiers (%) are expanded on the whole line first, then the line is split into
//   words with C unescaping inside double quotes, then $VAR / ${VAR} are expanded at exec time.
//   So each argument is JSON.stringify(arg) (a C-compatible quoted string), then % → %% and $ → $$.
// - Environment="K=V": specifiers, then the same unquoting; no $ expansion. So JSON.stringify,
//   then % → %%.
// - Description, WorkingDirectory, User, Group, StandardOutput paths: specifiers only: % → %%.
import { constants } from 'node:os';
import { SystemdError, SystemdErrorCode } from './errors.js';

export interface UnitLimits {
  /** MemoryMax=, bytes. */
  memoryBytes?: number;
  /** CPUQuota=, percent of one CPU (200 = two CPUs). */
  cpuQuotaPercent?: number;
  /** IOWeight=, 1–10000 (systemd's default is 100). */
  ioWeight?: number;
  /** LimitNOFILE=, soft and hard. */
  nofile?: number;
  /** TasksMax=, processes and threads. */
  tasks?: number;
}

export interface UnitSpec {
  description: string;
  /** argv; command[0] is an absolute program path. */
  command: readonly string[];
  env: Readonly<Record<string, string>>;
  /**
   * Where the environment goes instead of Environment= lines, as systemd names the path: a file
   * only root (or pm's user) reads. Environment= values are public: any local user reads them with
   * `systemctl show -p Environment`. The file's text is renderEnvironmentFile(env).
   */
  environmentFile?: string;
  user?: string;
  group?: string;
  workingDirectory?: string;
  /** Absolute paths; output is appended (StandardOutput=append:). They may be equal. */
  stdoutPath: string;
  stderrPath: string;
  /** KillSignal=: sent to every process of the unit on stop. */
  stopSignal: NodeJS.Signals;
  /** TimeoutStopSec=: after it, systemd sends SIGKILL. Must be > 0 (0 means "wait forever" to systemd). */
  gracePeriodSeconds: number;
  limits?: UnitLimits;
}

/** The file's first line; uninstall and tests recognise pm's files by it. */
export const UNIT_FILE_MARKER = '# Written by pm: edits are overwritten by the next pm apply and removed with the process.';

/** The unit file text for `spec`. Throws E_SYSTEMD_UNIT_SPEC naming the field and the rule broken. */
export function renderUnit(spec: UnitSpec): string {
  const lines: string[] = [UNIT_FILE_MARKER, '[Unit]', `Description=${specifierSafe('description', spec.description)}`, '', '[Service]'];
  // Type=exec: `systemctl start` returns once the program was executed, and fails (instead of
  // reporting a start) when it cannot be: missing program, bad user, bad working directory.
  lines.push('Type=exec');
  lines.push(`ExecStart=${execStartLine(spec.command)}`);
  if (spec.environmentFile !== undefined) {
    // Checked here too, so a bad name fails before any file is written.
    renderEnvironmentFile(spec.env);
    lines.push(`EnvironmentFile=${absolutePath('environmentFile', spec.environmentFile)}`);
  } else {
    for (const key of Object.keys(spec.env).sort()) lines.push(`Environment=${environmentAssignment(key, spec.env[key] ?? '')}`);
  }
  if (spec.user !== undefined) lines.push(`User=${accountName('user', spec.user)}`);
  if (spec.group !== undefined) lines.push(`Group=${accountName('group', spec.group)}`);
  if (spec.workingDirectory !== undefined) lines.push(`WorkingDirectory=${absolutePath('workingDirectory', spec.workingDirectory)}`);
  lines.push(`StandardOutput=append:${absolutePath('stdoutPath', spec.stdoutPath)}`);
  lines.push(`StandardError=append:${absolutePath('stderrPath', spec.stderrPath)}`);
  lines.push(`KillSignal=${signalName(spec.stopSignal)}`);
  lines.push(`TimeoutStopSec=${seconds('gracePeriodSeconds', spec.gracePeriodSeconds)}`);
  // pm restarts, not systemd: one backoff and breaker policy for every driver, and pm must see
  // every exit (with Restart= systemd would hide exits behind its own restarts and counters).
  lines.push('Restart=no');
  lines.push(...limitLines(spec.limits ?? {}));
  return `${lines.join('\n')}\n`;
}

/** ExecStart's value: the program, then every argument, each quoted. */
export function execStartLine(command: readonly string[]): string {
  if (!Array.isArray(command) || command.length === 0) throw specError('command', 'it is empty: give the program and its arguments as a list');
  const [program, ...args] = command;
  return [programPath(program), ...args.map((arg, i) => execArgument(`command[${i + 1}]`, arg))].join(' ');
}

/** One ExecStart word: JSON-quoted (C escapes systemd undoes), then % and $ doubled. */
export function execArgument(field: string, value: unknown): string {
  return JSON.stringify(plainValue(field, value)).replace(/%/g, '%%').replace(/\$/g, '$$$$');
}

/** `"KEY=value"` for Environment=; `$` is literal there, `%` is a specifier. */
export function environmentAssignment(key: string, value: unknown): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw specError(`env.${key}`, 'an environment variable name is letters, digits and _, not starting with a digit');
  return JSON.stringify(`${key}=${plainValue(`env.${key}`, value)}`).replace(/%/g, '%%');
}

/**
 * The text of an EnvironmentFile= (systemd.exec(5)): one KEY="VALUE" per line. Inside double
 * quotes systemd's parser takes \\ \" \$ and \` as the character itself, and expands nothing, so
 * those four are escaped and every other character (%, spaces at either end, #, ') is literal.
 */
export function renderEnvironmentFile(env: Readonly<Record<string, string>>): string {
  const lines = Object.keys(env)
    .sort()
    .map((key) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw specError(`env.${key}`, 'an environment variable name is letters, digits and _, not starting with a digit');
      return `${key}="${plainValue(`env.${key}`, env[key]).replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
    });
  return `${ENV_FILE_MARKER}\n${lines.join('\n')}\n`;
}

/** The first line of the environment files pm writes. */
export const ENV_FILE_MARKER = '# Written by pm: the environment of a unit pm owns (mode 0600; removed with the process).';

/**
 * The executable: absolute, normalised, and free of quotes, backslashes and control characters,
 * which no quoting gets past systemd ("Executable name contains special characters"). It cannot
 * begin with one of ExecStart's prefix characters (@ - : + !) since it begins with '/'.
 */
function programPath(value: unknown): string {
  const path = plainValue('command[0]', value);
  if (!path.startsWith('/')) throw specError('command[0]', `the program must be an absolute path, not ${JSON.stringify(path)}`);
  if (/["'\\]/.test(path)) throw specError('command[0]', `the program path ${JSON.stringify(path)} holds a quote or backslash, which systemd refuses in an executable name`);
  if (/\s/.test(path)) throw specError('command[0]', `the program path ${JSON.stringify(path)} holds whitespace: use a path (or symlink) without it`);
  if (!isNormalized(path) || path.endsWith('/')) throw specError('command[0]', `the program path ${JSON.stringify(path)} is not normalised (no //, /./, /../ or trailing /)`);
  return execArgument('command[0]', path);
}

function absolutePath(field: string, value: unknown): string {
  const path = plainValue(field, value);
  if (!path.startsWith('/')) throw specError(field, `must be an absolute path, not ${JSON.stringify(path)}`);
  if (!isNormalized(path)) throw specError(field, `${JSON.stringify(path)} is not normalised (no //, /./ or /../)`);
  if (path !== path.trim()) throw specError(field, `${JSON.stringify(path)} begins or ends with whitespace, which systemd strips`);
  return path.replace(/%/g, '%%');
}

function specifierSafe(field: string, value: unknown): string {
  const text = plainValue(field, value);
  return text.trim().replace(/%/g, '%%');
}

function accountName(field: string, value: unknown): string {
  const name = plainValue(field, value);
  if (!/^(?:[A-Za-z_][A-Za-z0-9_.-]{0,255}\$?|\d+)$/.test(name)) {
    throw specError(field, `${JSON.stringify(name)} is not a user or group name (letters, digits, _ . -, not starting with a digit or '-'), nor a numeric id`);
  }
  return name;
}

function signalName(value: unknown): string {
  if (typeof value !== 'string' || !/^SIG[A-Z0-9]+$/.test(value) || !(value in constants.signals)) {
    throw specError('stopSignal', `${JSON.stringify(value)} is not a signal name such as SIGTERM`);
  }
  return value;
}

/** A timespan systemd reads exactly: whole seconds, else milliseconds. */
function seconds(field: string, value: unknown): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw specError(field, `must be a number of seconds > 0 (to systemd, 0 would mean "wait forever"), not ${JSON.stringify(value)}`);
  }
  const ms = Math.max(1, Math.round(value * 1000));
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function limitLines(limits: UnitLimits): string[] {
  const lines: string[] = [];
  if (limits.memoryBytes !== undefined) lines.push(`MemoryMax=${wholeNumber('limits.memoryBytes', limits.memoryBytes, 1)}`);
  if (limits.cpuQuotaPercent !== undefined) lines.push(`CPUQuota=${wholeNumber('limits.cpuQuotaPercent', limits.cpuQuotaPercent, 1)}%`);
  if (limits.ioWeight !== undefined) lines.push(`IOWeight=${wholeNumber('limits.ioWeight', limits.ioWeight, 1, 10_000)}`);
  if (limits.nofile !== undefined) lines.push(`LimitNOFILE=${wholeNumber('limits.nofile', limits.nofile, 1)}`);
  if (limits.tasks !== undefined) lines.push(`TasksMax=${wholeNumber('limits.tasks', limits.tasks, 1)}`);
  return lines;
}

function wholeNumber(field: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): string {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw specError(field, `must be a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'any' : max}, not ${JSON.stringify(value)}`);
  }
  return String(value);
}

/**
 * A string with no line break, NUL or lone surrogate: a line break would end the directive, NUL
 * cannot be in an argv, and a lone surrogate has no UTF-8 form (JSON.stringify would write \udXXX,
 * which systemd rejects).
 */
function plainValue(field: string, value: unknown): string {
  if (typeof value !== 'string') throw specError(field, `must be a string, not ${value === null ? 'null' : typeof value}`);
  if (/[\n\r]/.test(value)) throw specError(field, `${JSON.stringify(value)} holds a line break, which would start a new line of the unit file`);
  if (value.includes('\0')) throw specError(field, `${JSON.stringify(value)} holds a NUL character`);
  if (LONE_SURROGATE.test(value)) throw specError(field, `${JSON.stringify(value)} holds a lone UTF-16 surrogate (not valid Unicode)`);
  return value;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isNormalized(path: string): boolean {
  return !/\/\/|\/\.\.?(?:\/|$)/.test(path);
}

function specError(field: string, problem: string): SystemdError {
  return new SystemdError(SystemdErrorCode.unitSpec, `cannot write the unit: ${field}: ${problem}`, {
    hint: 'fix the process spec; pm writes only what systemd reads back exactly',
  });
}
