// How pm reaches systemd, read from pm's environment like DOCKER_HOST for the docker driver, so the
// daemon and every CLI command on the same environment agree. Read when a systemd process first
// needs the driver: a bad setting fails those processes (with this error), never the others.
import { PmError } from '../../errors.js';
import type { Scope } from './systemctl.js';

export interface SystemdSettings {
  scope: Scope;
  /** Before every systemctl command that changes something: [], ['sudo', '-n'], ['nsenter', …]. */
  prefix: string[];
  /** Before show / cat / journalctl. */
  readPrefix: string[];
  /** Where pm writes the units it owns, as pm reaches it. */
  unitDir: string;
  /** The same folder as systemd names it (differs when pm reaches it through /proc/PID/root). */
  systemdUnitDir: string;
  timeoutMs: number;
  /** How often exits are polled (one `systemctl show` for all units). */
  pollMs?: number;
}

export const SETTINGS_VARIABLES = {
  scope: 'PM_SYSTEMD_SCOPE',
  prefix: 'PM_SYSTEMCTL_PREFIX',
  readPrefix: 'PM_SYSTEMCTL_READ_PREFIX',
  unitDir: 'PM_SYSTEMD_UNIT_DIR',
  systemdUnitDir: 'PM_SYSTEMD_UNIT_DIR_SEEN_BY_SYSTEMD',
  timeoutMs: 'PM_SYSTEMCTL_TIMEOUT_MS',
  pollMs: 'PM_SYSTEMD_POLL_MS',
} as const;

/** The settings `env` gives; defaults for what it leaves unset (an empty variable counts as unset). */
export function systemdSettingsOf(env: NodeJS.ProcessEnv): SystemdSettings {
  const value = (key: keyof typeof SETTINGS_VARIABLES): string | undefined => {
    const text = env[SETTINGS_VARIABLES[key]];
    return text === undefined || text.trim() === '' ? undefined : text.trim();
  };
  const scope = value('scope') ?? 'system';
  if (scope !== 'system' && scope !== 'user') throw settingError('scope', scope, 'system (units of the machine, the default) or user (units of the user pm runs as)');
  const prefix = argvOf('prefix', value('prefix'));
  const readPrefix = value('readPrefix') === undefined ? prefix : argvOf('readPrefix', value('readPrefix'));
  const unitDir = value('unitDir') ?? defaultUnitDir(scope, env);
  if (!unitDir.startsWith('/')) throw settingError('unitDir', unitDir, 'an absolute path');
  const systemdUnitDir = value('systemdUnitDir') ?? unitDir;
  if (!systemdUnitDir.startsWith('/')) throw settingError('systemdUnitDir', systemdUnitDir, 'an absolute path');
  const timeoutMs = positiveInteger('timeoutMs', value('timeoutMs')) ?? 30_000;
  const pollMs = positiveInteger('pollMs', value('pollMs'));
  return { scope, prefix, readPrefix, unitDir, systemdUnitDir, timeoutMs, ...(pollMs !== undefined && { pollMs }) };
}

/**
 * Runtime folders: units pm writes there vanish with a reboot, and the daemon writes them again as
 * it starts them, so nothing stale survives a machine that was reset.
 */
function defaultUnitDir(scope: 'system' | 'user', env: NodeJS.ProcessEnv): string {
  if (scope === 'system') return '/run/systemd/system';
  const runtime = env.XDG_RUNTIME_DIR;
  if (!runtime?.startsWith('/')) {
    throw new PmError('E_SYSTEMD_SETTINGS', `${SETTINGS_VARIABLES.scope}=user needs XDG_RUNTIME_DIR (where the user manager reads runtime units), and it is not set`, {
      hint: `run pm in the user's login session, or set ${SETTINGS_VARIABLES.unitDir} to a folder in \`systemd-analyze --user unit-paths\``,
    });
  }
  return `${runtime}/systemd/user`;
}

/** Words separated by spaces (`sudo -n`), or a JSON array of strings for words with spaces (`[]` for none). Never a shell. */
function argvOf(key: keyof typeof SETTINGS_VARIABLES, text: string | undefined): string[] {
  if (text === undefined) return [];
  if (text.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw settingError(key, text, 'a JSON array of strings, such as ["sudo","-n"], or words separated by spaces');
    }
    if (!Array.isArray(parsed) || parsed.some((word) => typeof word !== 'string' || word === '')) throw settingError(key, text, 'a JSON array of non-empty strings');
    return parsed as string[];
  }
  return text.split(/\s+/);
}

function positiveInteger(key: keyof typeof SETTINGS_VARIABLES, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw settingError(key, text, 'a whole number of milliseconds above 0');
  return n;
}

function settingError(key: keyof typeof SETTINGS_VARIABLES, text: string, expected: string): PmError {
  return new PmError('E_SYSTEMD_SETTINGS', `${SETTINGS_VARIABLES[key]}=${text} is not valid: it takes ${expected}`, { hint: `correct or unset ${SETTINGS_VARIABLES[key]} (docs/drivers.md lists the systemd settings)` });
}
