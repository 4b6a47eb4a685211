// One error class for the systemd driver, one stable code per failure mode a user can act on, and
// the classifier that turns a failed systemctl run into one of them. Classification reads
// systemctl's stderr: systemctl sets LC_ALL=C here, and its messages are not translated anyway.
import { PmError } from '../../errors.js';

export const SystemdErrorCode = {
  /** systemd is not PID 1 here, or systemctl cannot reach it over D-Bus (or is not installed). */
  notRunning: 'E_SYSTEMD_NOT_RUNNING',
  unitNotFound: 'E_SYSTEMD_UNIT_NOT_FOUND',
  /** polkit refused, or sudo -n wanted a password / has no rule for the exact command line. */
  accessDenied: 'E_SYSTEMD_ACCESS_DENIED',
  /** systemctl did not finish within its timeout (it was killed; a queued job may still run). */
  timeout: 'E_SYSTEMD_TIMEOUT',
  /** The unit failed (a start job failed, or the unit sits in the failed state). */
  failed: 'E_SYSTEMD_FAILED',
  /** A unit name systemd.unit(5) does not allow: refused before any call. */
  unitName: 'E_SYSTEMD_UNIT_NAME',
  /** A unit spec renderUnit refuses (bad program path, newline in a value, bad limit). */
  unitSpec: 'E_SYSTEMD_UNIT_SPEC',
  /** The unit pm wrote did not load (LoadState bad-setting / error), or is masked. */
  unitInvalid: 'E_SYSTEMD_UNIT_INVALID',
  /** A unit of the same name elsewhere (e.g. /etc/systemd/system) wins over the file pm wrote. */
  unitShadowed: 'E_SYSTEMD_UNIT_SHADOWED',
  /** systemctl failed in a way none of the above describes; its stderr is in the message. */
  other: 'E_SYSTEMD',
} as const;
export type SystemdErrorCode = (typeof SystemdErrorCode)[keyof typeof SystemdErrorCode];

export class SystemdError extends PmError {
  declare readonly code: SystemdErrorCode;
  /** The unit concerned, when there is one. */
  readonly unit: string | undefined;
  /** The argv that failed (prefix included), for logs. Holds unit names and verbs only, never environment. */
  readonly argv: readonly string[] | undefined;
  constructor(code: SystemdErrorCode, message: string, options: { hint?: string; unit?: string; argv?: readonly string[]; cause?: unknown } = {}) {
    super(code, message, { hint: options.hint, cause: options.cause });
    this.unit = options.unit;
    this.argv = options.argv;
  }
}

export interface FailedRun {
  /** Everything that was run: prefix, `systemctl`, options, verb, units. */
  argv: readonly string[];
  /** The units named in the call, to tell which one a message is about. */
  units: readonly string[];
  exitCode: number | null;
  stderr: string;
  scope: 'system' | 'user';
}

const NOT_BOOTED = /System has not been booted with systemd|Host is down/;
const NO_BUS = /Failed to connect to bus|Failed to get D-Bus connection|Failed to connect to user scope bus|DBUS_SESSION_BUS_ADDRESS|XDG_RUNTIME_DIR/;
const POLKIT_DENIED = /Interactive authentication required|Access denied/;
const SUDO_DENIED = /sudo: a password is required|sudo: a terminal is required|is not allowed to execute|is not in the sudoers file|may not run sudo/;
const UNIT_MISSING = /Unit (\S+?)\.? (?:not found|not loaded|could not be found)|Unit (\S+) does not exist/;
const UNIT_MASKED = /Unit (\S+?) is masked/;
const JOB_FAILED = /Job for (\S+?) (?:failed|canceled)/;

/** The error a failed systemctl run stands for. Pure: the caller adds journal lines to E_SYSTEMD_FAILED. */
export function classifyFailure(run: FailedRun): SystemdError {
  const text = run.stderr.trim();
  const said = text === '' ? `exit status ${run.exitCode ?? 'unknown'}, nothing on stderr` : firstLines(text, 4);
  const base = { argv: run.argv };
  if (SUDO_DENIED.test(text)) {
    return new SystemdError(SystemdErrorCode.accessDenied, `sudo refused to run systemctl: ${said}`, {
      ...base,
      unit: run.units[0],
      hint: 'sudo -n never asks for a password and matches the whole command line: install the sudoers lines from the systemd driver\'s privileges() for these units and verbs, exactly as printed',
    });
  }
  if (POLKIT_DENIED.test(text)) {
    return new SystemdError(SystemdErrorCode.accessDenied, `systemd refused the request: ${said}`, {
      ...base,
      unit: run.units[0],
      hint: 'this user may not manage the unit: install the polkit rule from the systemd driver\'s privileges() (in /etc/polkit-1/rules.d/), or run pm as root, or through sudo -n with the matching sudoers lines',
    });
  }
  if (NOT_BOOTED.test(text)) {
    return new SystemdError(SystemdErrorCode.notRunning, `systemd is not running here: ${said}`, {
      ...base,
      hint: 'this machine (or container) does not run systemd as PID 1: use the exec or docker driver here, or run pm where systemd is the init system',
    });
  }
  if (NO_BUS.test(text)) {
    return new SystemdError(SystemdErrorCode.notRunning, `systemctl cannot reach systemd: ${said}`, {
      ...base,
      hint:
        run.scope === 'user'
          ? 'the user manager is not reachable: log in as that user, or enable lingering (loginctl enable-linger USER) and set XDG_RUNTIME_DIR=/run/user/UID'
          : 'as a user other than root, systemctl talks to systemd over the system D-Bus: check that dbus is running (systemctl status dbus), or run pm as root',
    });
  }
  const masked = UNIT_MASKED.exec(text);
  if (masked) {
    const unit = masked[1] ?? run.units[0];
    return new SystemdError(SystemdErrorCode.unitInvalid, `${unit} is masked: ${said}`, {
      ...base,
      unit,
      hint: `unmask it (systemctl unmask ${unit}) if it should run`,
    });
  }
  const missing = UNIT_MISSING.exec(text);
  if (missing) {
    const unit = missing[1] ?? missing[2] ?? run.units[0];
    return new SystemdError(SystemdErrorCode.unitNotFound, `unit ${unit} not found: ${said}`, {
      ...base,
      unit,
      hint: `check the name (systemctl list-units --all ${unit ?? ''}); a unit pm owns must be installed first (pm apply)`,
    });
  }
  const job = JOB_FAILED.exec(text);
  if (job) {
    const unit = job[1] ?? run.units[0];
    return new SystemdError(SystemdErrorCode.failed, `${unit} failed to ${verbOf(run.argv) ?? 'run'}: ${firstLines(text, 1)}`, {
      ...base,
      unit,
      hint: `see systemctl status ${unit}`,
    });
  }
  return new SystemdError(SystemdErrorCode.other, `systemctl failed: ${said}`, {
    ...base,
    unit: run.units[0],
    hint: `run it by hand to see more: ${run.argv.join(' ')}`,
  });
}

/** For a program that could not be run at all (ENOENT / EACCES from spawn). */
export function spawnFailure(argv: readonly string[], error: NodeJS.ErrnoException): SystemdError {
  const program = argv[0] ?? 'systemctl';
  return new SystemdError(SystemdErrorCode.notRunning, `cannot run ${program}: ${error.code ?? error.message}`, {
    argv,
    cause: error,
    hint: error.code === 'ENOENT' ? `${program} is not installed or not in PATH: the systemd driver needs systemd's systemctl (and the prefix's programs)` : `check the permissions of ${program}`,
  });
}

export function timeoutFailure(argv: readonly string[], timeoutMs: number, units: readonly string[]): SystemdError {
  return new SystemdError(SystemdErrorCode.timeout, `systemctl did not finish within ${timeoutMs} ms (killed): ${argv.join(' ')}`, {
    argv,
    unit: units[0],
    hint: 'systemd may be busy, or a start/stop job waits on the unit: a job already queued still runs, look with `systemctl list-jobs`; raise the driver\'s timeoutMs if units take longer',
  });
}

/** The verb of a systemctl argv (the first word after `systemctl` that is not an option). */
function verbOf(argv: readonly string[]): string | undefined {
  const at = argv.indexOf('systemctl');
  return argv.slice(at + 1).find((word) => !word.startsWith('-'));
}

function firstLines(text: string, count: number): string {
  return text.split('\n').slice(0, count).join(' / ');
}
