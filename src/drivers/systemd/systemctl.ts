// The systemctl runner: argv only, through a configurable prefix ([] as root, ['sudo', '-n'] for
// least privilege, ['nsenter', …] to reach a systemd in another namespace), with a timeout and an
// AbortSignal on every call, and every failure classified into a SystemdError.
//
// The command lines for verbs come from verbArgv() alone, which privileges.ts uses too: sudo
// matches the whole argument list, so the sudoers lines pm prints must be exactly what runs here.
import { classifyFailure, spawnFailure, SystemdError, SystemdErrorCode, timeoutFailure } from './errors.js';
import { runCommand, streamCommand, type RunOptions } from './run.js';
import { parseShowOutput, SHOW_PROPERTIES, type ShownUnit } from './show.js';
import { validateUnitName, validateUnitNames } from './unit-name.js';

export type Scope = 'system' | 'user';

/** The verbs pm sends for a unit; `kill` always with SIGKILL (a stop whose grace period ran out). */
export const UNIT_VERBS = ['start', 'stop', 'restart', 'kill', 'reset-failed'] as const;
export type UnitVerb = (typeof UNIT_VERBS)[number];

export interface SystemctlOptions {
  /** Prepended to every command: [] (default), ['sudo', '-n'], ['nsenter', '-t', PID, '-m', '-p', '--']. */
  prefix?: readonly string[];
  /**
   * Prepended to read-only commands (show, cat, journalctl) instead of `prefix`; defaults to
   * `prefix`. With sudo, set it to []: reading state needs no privilege, and sudoers allows only
   * the exact verb lines.
   */
  readPrefix?: readonly string[];
  scope?: Scope;
  /** Hard limit on each call (default 30 s); the process group is killed when it passes. */
  timeoutMs?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Overrides the runner's timeoutMs for this call. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const COMMON = ['--no-pager', '--no-ask-password'] as const;

/** What follows `systemctl` for a verb on one unit. The unit must already be validated. */
export function verbArgv(scope: Scope, verb: UnitVerb, unit: string): string[] {
  // No --quiet: it drops the "Job for … failed" line that tells a failed start from other errors.
  const head = [`--${scope}`, ...COMMON];
  switch (verb) {
    case 'start':
    case 'restart':
    case 'reset-failed':
      return [...head, verb, unit];
    // pm waits for the stop itself (and sends SIGKILL after its own grace period): see SystemdDriver.stop.
    case 'stop':
      return [...head, '--no-block', 'stop', unit];
    case 'kill':
      return [...head, '--signal=SIGKILL', 'kill', unit];
  }
}

/** What follows `systemctl` for daemon-reload (system scope): sudoers lines must match it exactly. */
export function daemonReloadArgv(scope: Scope = 'system'): string[] {
  return [`--${scope}`, ...COMMON, 'daemon-reload'];
}

export class Systemctl {
  readonly prefix: readonly string[];
  readonly readPrefix: readonly string[];
  readonly scope: Scope;
  readonly timeoutMs: number;

  constructor(options: SystemctlOptions = {}) {
    const prefix = options.prefix ?? [];
    for (const part of [...prefix, ...(options.readPrefix ?? [])]) {
      if (typeof part !== 'string' || part === '') throw new TypeError(`Systemctl: every prefix word must be a non-empty string, not ${JSON.stringify(part)}`);
    }
    const scope = options.scope ?? 'system';
    if (scope !== 'system' && scope !== 'user') throw new TypeError(`Systemctl: scope must be 'system' or 'user', not ${JSON.stringify(scope)}`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new TypeError(`Systemctl: timeoutMs must be a positive integer, not ${JSON.stringify(timeoutMs)}`);
    this.prefix = [...prefix];
    this.readPrefix = [...(options.readPrefix ?? prefix)];
    this.scope = scope;
    this.timeoutMs = timeoutMs;
  }

  /** One verb on one unit (validated first). Resolves on success; rejects with a SystemdError. */
  async verb(verb: UnitVerb, unit: string, options: CallOptions = {}): Promise<void> {
    validateUnitName(unit);
    await this.#systemctl(this.prefix, verbArgv(this.scope, verb, unit), [unit], options);
  }

  async daemonReload(options: CallOptions = {}): Promise<void> {
    await this.#systemctl(this.prefix, daemonReloadArgv(this.scope), [], options);
  }

  /**
   * ONE `systemctl show` for all `units` (validated first, duplicates dropped), mapped by Id and
   * Names. Units systemd does not know come back as `{ found: false }`; nothing throws for them.
   */
  async showUnits(units: readonly string[], options: CallOptions = {}): Promise<Map<string, ShownUnit>> {
    const names = validateUnitNames(units);
    if (names.length === 0) return new Map();
    const stdout = await this.#systemctl(this.readPrefix, this.showArgv(names, SHOW_PROPERTIES), names, options);
    return parseShowOutput(stdout, names);
  }

  /** Other properties of one unit, raw (e.g. MemoryMax, DropInPaths): Key → value. */
  async showProperties(unit: string, properties: readonly string[], options: CallOptions = {}): Promise<Map<string, string>> {
    validateUnitName(unit);
    for (const p of properties) if (!/^[A-Za-z]+$/.test(p)) throw new TypeError(`showProperties: not a property name: ${JSON.stringify(p)}`);
    const stdout = await this.#systemctl(this.readPrefix, this.showArgv([unit], properties), [unit], options);
    const values = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) values.set(line.slice(0, eq), line.slice(eq + 1));
    }
    return values;
  }

  /** `systemctl cat UNIT`: the unit file and its drop-ins as systemd reads them. */
  async cat(unit: string, options: CallOptions = {}): Promise<string> {
    validateUnitName(unit);
    return this.#systemctl(this.readPrefix, [`--${this.scope}`, ...COMMON, 'cat', unit], [unit], options);
  }

  /**
   * The unit's last journal lines, or why there are none: journald may not run, or this user may
   * not read the system journal (exit 1, "insufficient permissions" on stderr). Never throws for that.
   */
  async journal(unit: string, lines: number, options: CallOptions = {}): Promise<{ lines: string[] } | { unreadable: string }> {
    validateUnitName(unit);
    const scopeFlag = this.scope === 'user' ? ['--user'] : [];
    const argv = [...this.readPrefix, 'journalctl', ...scopeFlag, '-u', unit, '-n', String(lines), '--no-pager', '-o', 'cat', '-q'];
    const outcome = await runCommand(argv, this.#runOptions(options));
    if (outcome.kind === 'spawn-error') return { unreadable: `journalctl could not be run (${outcome.error.code ?? outcome.error.message})` };
    if (outcome.kind === 'timeout') return { unreadable: `journalctl did not answer within ${options.timeoutMs ?? this.timeoutMs} ms` };
    const complaint = outcome.stderr.trim();
    if (outcome.exitCode !== 0 || complaint !== '') return { unreadable: complaint || `journalctl exited with ${outcome.exitCode ?? outcome.signal}` };
    return { lines: outcome.stdout.split('\n').filter((line) => line !== '') };
  }

  /**
   * The unit's journal to `out` (`journalctl -u UNIT -o cat`), its last `tail` lines or all, and
   * with `follow` what comes next until `signal` aborts. Throws E_SYSTEMD when journalctl cannot
   * be run or refuses (journald not running, no right to read the system journal).
   */
  async streamJournal(unit: string, options: { tail?: number; follow: boolean }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    validateUnitName(unit);
    const argv = [...this.readPrefix, 'journalctl', ...(this.scope === 'user' ? ['--user'] : []), '-u', unit, '--no-pager', '-o', 'cat', '-q', ...(options.tail !== undefined ? ['-n', String(options.tail)] : []), ...(options.follow ? ['-f'] : [])];
    const outcome = await streamCommand(argv, out, signal);
    if ('spawnError' in outcome) throw spawnFailure(argv, outcome.spawnError);
    if (outcome.aborted || outcome.exitCode === 0) return;
    throw new SystemdError(SystemdErrorCode.other, `journalctl could not read ${unit}'s journal (exit ${outcome.exitCode}): ${outcome.stderr.trim() || 'no message'}`, {
      unit,
      argv,
      hint: 'journald must run, and pm\'s user must be allowed to read the journal (the systemd-journal or adm group)',
    });
  }

  /** `show -p A,B --timestamp=us+utc u1 u2`: what follows `systemctl` (us+utc: --timestamp=unix is cut to whole seconds). */
  showArgv(units: readonly string[], properties: readonly string[]): string[] {
    return [`--${this.scope}`, ...COMMON, 'show', '-p', properties.join(','), '--timestamp=us+utc', ...units];
  }

  async #systemctl(prefix: readonly string[], args: readonly string[], units: readonly string[], options: CallOptions): Promise<string> {
    const argv = [...prefix, 'systemctl', ...args];
    const outcome = await runCommand(argv, this.#runOptions(options));
    if (outcome.kind === 'spawn-error') throw spawnFailure(argv, outcome.error);
    if (outcome.kind === 'timeout') throw timeoutFailure(argv, options.timeoutMs ?? this.timeoutMs, units);
    if (outcome.exitCode === 0) return outcome.stdout;
    throw classifyFailure({ argv, units, exitCode: outcome.exitCode, stderr: outcome.stderr || outcome.stdout, scope: this.scope });
  }

  #runOptions(options: CallOptions): RunOptions {
    return { timeoutMs: options.timeoutMs ?? this.timeoutMs, ...(options.signal && { signal: options.signal }) };
  }
}

export function isSystemdError(error: unknown, code: SystemdErrorCode): error is SystemdError {
  return error instanceof SystemdError && error.code === code;
}
