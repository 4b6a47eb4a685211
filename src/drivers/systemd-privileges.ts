// What an unprivileged pm needs for the systemd processes of a desired set (`pm privileges`): the
// units the manifests name (spec.systemd.unit) or make pm write (pm-<name>.service for
// spec.systemd.command), every verb pm sends them, and, when pm writes units, daemon-reload,
// `start pm.target` and a unit folder it can write. Pure: the command prints what this returns.
import type { DesiredProcess } from '../manifest/types.js';
import { systemdSpecOf } from '../manifest/runtime.js';
import { privileges, type Privileges } from './systemd/privileges.js';
import { SETTINGS_VARIABLES } from './systemd/settings.js';
import { UNIT_VERBS, type Scope } from './systemd/systemctl.js';
import { ownedUnitName } from './systemd/unit-name.js';

export interface SystemdProcessUnit {
  process: string;
  unit: string;
  /** spec.systemd.command: pm writes the unit (and needs daemon-reload and a unit folder for it). */
  writtenByPm: boolean;
}

/** Why nothing needs allowing. */
export const NOTHING_NEEDED = {
  noSystemdProcesses: 'no-systemd-processes',
  userScope: 'user-scope',
  root: 'root',
} as const;
export type NothingNeeded = (typeof NOTHING_NEEDED)[keyof typeof NOTHING_NEEDED];

export interface PrivilegesNeedOptions {
  /** The account pm runs as. */
  user: string;
  scope: Scope;
  /** Where pm writes units (PM_SYSTEMD_UNIT_DIR), and that folder as systemd names it. */
  unitDir: string;
  systemdUnitDir: string;
}

export type PrivilegesNeed =
  | { needed: false; why: NothingNeeded; user: string; scope: Scope; processes: SystemdProcessUnit[] }
  | {
      needed: true;
      user: string;
      scope: Scope;
      processes: SystemdProcessUnit[];
      privileges: Privileges;
      /** The runner settings that go with the sudoers text, as pm's environment takes them. */
      sudoEnv: Record<string, string>;
      /** When pm writes units: the folder pm's user must be able to write. */
      unitDir?: { path: string; systemdPath: string };
    };

/** The systemd processes of the set, in name order, with the unit pm drives for each. */
export function systemdUnitsOf(processes: Iterable<DesiredProcess>): SystemdProcessUnit[] {
  const units: SystemdProcessUnit[] = [];
  for (const { name, manifest } of processes) {
    if (manifest.spec.driver !== 'systemd') continue;
    const { unit } = systemdSpecOf(manifest);
    units.push(unit === undefined ? { process: name, unit: ownedUnitName(name), writtenByPm: true } : { process: name, unit, writtenByPm: false });
  }
  return units;
}

/**
 * What `options.user` must be allowed for `processes`: every verb pm sends (UNIT_VERBS) on each
 * unit, plus daemon-reload and pm.target when pm writes one. Nothing for the user scope (a user's
 * own manager) or for root.
 */
export function privilegesNeeded(processes: Iterable<DesiredProcess>, options: PrivilegesNeedOptions): PrivilegesNeed {
  const units = systemdUnitsOf(processes);
  const base = { user: options.user, scope: options.scope, processes: units };
  if (units.length === 0) return { needed: false, why: NOTHING_NEEDED.noSystemdProcesses, ...base };
  if (options.scope === 'user') return { needed: false, why: NOTHING_NEEDED.userScope, ...base };
  if (options.user === 'root') return { needed: false, why: NOTHING_NEEDED.root, ...base };
  const writesUnits = units.some((u) => u.writtenByPm);
  const result = privileges(
    units.map((u) => u.unit),
    UNIT_VERBS,
    { user: options.user, writesUnits },
  );
  const { prefix, readPrefix } = result.sudoRunner;
  return {
    needed: true,
    ...base,
    privileges: result,
    // An empty variable counts as unset (the read prefix would then be the write prefix): [] says none.
    sudoEnv: { [SETTINGS_VARIABLES.prefix]: prefix.join(' '), [SETTINGS_VARIABLES.readPrefix]: readPrefix.length === 0 ? '[]' : JSON.stringify(readPrefix) },
    ...(writesUnits && { unitDir: { path: options.unitDir, systemdPath: options.systemdUnitDir } }),
  };
}
