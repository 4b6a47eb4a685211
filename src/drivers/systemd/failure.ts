// Explaining a failed unit: what ended it (from its state), its last journal lines when this user
// can read them, and otherwise where its output goes (StandardOutput=/StandardError= from
// `systemctl cat`). Every part degrades to saying what could not be read; nothing here throws
// for a missing journal.
import { SystemdError, SystemdErrorCode } from './errors.js';
import { exitStatusOf } from './observe.js';
import { ExecMainCode, type UnitState } from './show.js';
import type { CallOptions, Systemctl } from './systemctl.js';

/** How many journal lines E_SYSTEMD_FAILED quotes. */
export const FAILURE_LOG_LINES = 10;

/** True when the unit's last run failed (systemd's failed state, or a Result other than success). */
export function hasFailed(state: UnitState): boolean {
  return state.activeState === 'failed' || (state.result !== 'success' && state.result !== '');
}

/** The E_SYSTEMD_FAILED for a failed unit, with its last log lines or where its output goes. */
export async function describeFailure(systemctl: Systemctl, state: UnitState, options: CallOptions = {}): Promise<SystemdError> {
  const unit = state.unit;
  const why = failureSummary(state);
  const journal = await systemctl.journal(unit, FAILURE_LOG_LINES, options);
  const lines = 'lines' in journal ? journal.lines : [];
  const outputs = await outputTargets(systemctl, unit, options);
  const where = outputs.length > 0 ? `its output goes to ${outputs.join(' and ')}` : `see where its output goes with \`systemctl cat ${unit}\``;
  const logPart =
    lines.length > 0
      ? `; last ${lines.length} journal line${lines.length === 1 ? '' : 's'}:\n  ${lines.join('\n  ')}`
      : `; no journal lines (${'unreadable' in journal ? journal.unreadable : 'journald has none for it: it may not run, or the unit logs to files'})`;
  return new SystemdError(SystemdErrorCode.failed, `${unit} failed: ${why}${logPart}`, {
    unit,
    hint: `${where}; \`systemctl status ${unit}\` shows its state`,
  });
}

/**
 * systemd's own exit codes for a main process that failed before the program was executed
 * (systemd.exec(5) "Process Exit Codes"): the common ones, named.
 */
const SETUP_FAILURES: Readonly<Record<number, string>> = {
  200: 'CHDIR: the working directory could not be entered',
  203: 'EXEC: the program could not be executed',
  209: 'STDOUT: standard output could not be set up (is the log folder there?)',
  216: 'GROUP: the group could not be set',
  217: 'USER: the user could not be set (does it exist?)',
  222: 'STDERR: standard error could not be set up',
};
const FIRST_SETUP_CODE = 200;
const LAST_SETUP_CODE = 245;

/**
 * True when the last run's program was executed and then ended (exit or signal): not a failure
 * to start. A program exiting with 200–245 itself is taken for systemd's setup failure.
 */
export function programRan(state: UnitState): boolean {
  const { code, status } = state.execMain;
  if (code === ExecMainCode.killed || code === ExecMainCode.dumped) return true;
  return code === ExecMainCode.exited && (status < FIRST_SETUP_CODE || status > LAST_SETUP_CODE);
}

/** "exited with code 3 (Result=exit-code)", "killed by SIGKILL (Result=signal)", … */
export function failureSummary(state: UnitState): string {
  const exit = exitStatusOf(state, 0);
  const result = `Result=${state.result || 'unknown'}`;
  if (exit.known && exit.code !== null && !programRan(state)) {
    const name = SETUP_FAILURES[exit.code] ?? 'systemd could not set up the process (see systemd.exec(5), "Process Exit Codes")';
    return `its main process exited with code ${exit.code} before the program ran: ${name} (${result})`;
  }
  if (exit.known && exit.code !== null) return `its main process exited with code ${exit.code} (${result})`;
  if (exit.known && exit.signal !== null) return `its main process was killed by ${exit.signal} (${result})`;
  return `${result}, ActiveState=${state.activeState}`;
}

/** The file:/append:/truncate: targets of StandardOutput= and StandardError= (last assignment wins). */
export function parseOutputTargets(unitText: string): string[] {
  const found = new Map<string, string>();
  for (const raw of unitText.split('\n')) {
    const match = /^\s*(StandardOutput|StandardError)\s*=\s*(.*?)\s*$/.exec(raw);
    if (match?.[1] !== undefined && match[2] !== undefined) found.set(match[1], match[2]);
  }
  const targets: string[] = [];
  for (const [key, value] of found) {
    const file = /^(?:file|append|truncate):(.+)$/.exec(value)?.[1];
    const text = file !== undefined ? file.replace(/%%/g, '%') : `${value || 'the default'} (${key}=)`;
    if (!targets.includes(text)) targets.push(text);
  }
  return targets;
}

async function outputTargets(systemctl: Systemctl, unit: string, options: CallOptions): Promise<string[]> {
  try {
    return parseOutputTargets(await systemctl.cat(unit, options));
  } catch (error) {
    if (error instanceof SystemdError) return [];
    throw error;
  }
}
