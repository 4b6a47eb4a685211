// The systemd driver's public surface; src/drivers/systemd-process.ts wires it to manifests.
export { SystemdDriver, WAIT_POLL_MS, STOP_POLL_MS, type SystemdDriverOptions, type InstallResult, type UninstallResult } from './driver.js';
export { Systemctl, UNIT_VERBS, verbArgv, isSystemdError, type SystemctlOptions, type CallOptions, type Scope, type UnitVerb } from './systemctl.js';
export { SystemdError, SystemdErrorCode, classifyFailure } from './errors.js';
export { parseShowOutput, SHOW_PROPERTIES, type ShownUnit, type UnitState, type MissingUnit, type ActiveState, type LoadState } from './show.js';
export { validateUnitName, unitNameProblem, ownedUnitName, OWNED_PREFIX } from './unit-name.js';
export { renderUnit, UNIT_FILE_MARKER, type UnitSpec, type UnitLimits } from './unit-file.js';
export { observationOf, exitStatusOf, isStopped } from './observe.js';
export { privileges, type Privileges, type PrivilegeOptions } from './privileges.js';
export { describeFailure, failureSummary, hasFailed } from './failure.js';
export { ExitPoller } from './exit-poller.js';
export { systemdSettingsOf, SETTINGS_VARIABLES, type SystemdSettings } from './settings.js';
