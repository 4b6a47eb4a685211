// Parsing `systemctl show -p … --timestamp=us+utc u1 u2 …`: one block per unit, blocks separated by a
// blank line, keys in D-Bus order (not -p order), one `Key=Value` per line split on the first '='.
// Blocks are matched to the requested names by Id and Names (an alias shows its real unit's Id),
// never by position. Pure.
import { SystemdError, SystemdErrorCode } from './errors.js';

/** The properties showUnits asks for. Names lets an alias be matched to the unit it names. */
export const SHOW_PROPERTIES = [
  'Id',
  'Names',
  'LoadState',
  'ActiveState',
  'SubState',
  'MainPID',
  'NRestarts',
  'ExecMainStatus',
  'ExecMainCode',
  'Result',
  'InvocationID',
  'ActiveEnterTimestamp',
  'InactiveEnterTimestamp',
  'ExecMainStartTimestamp',
  'ExecMainExitTimestamp',
  'FragmentPath',
  'NeedDaemonReload',
  'Job',
] as const;

/** systemd's ActiveState values; anything else is kept as a string. */
export type ActiveState = 'active' | 'reloading' | 'inactive' | 'failed' | 'activating' | 'deactivating' | 'maintenance' | (string & {});
export type LoadState = 'loaded' | 'not-found' | 'bad-setting' | 'error' | 'masked' | 'stub' | 'merged' | (string & {});

/** siginfo's si_code for the main process's end (ExecMainCode): how to read ExecMainStatus. */
export const ExecMainCode = { none: 0, exited: 1, killed: 2, dumped: 3 } as const;

/** A unit systemd does not know (LoadState=not-found): no file, no state. */
export interface MissingUnit {
  /** The name as it was asked for. */
  unit: string;
  found: false;
  loadState: 'not-found';
}

export interface UnitState {
  /** The name as it was asked for. */
  unit: string;
  found: true;
  /** The unit's primary name (differs from `unit` when `unit` is an alias). */
  id: string;
  loadState: LoadState;
  activeState: ActiveState;
  subState: string;
  /** Undefined when no main process runs (MainPID=0). A PID in systemd's PID namespace. */
  mainPid: number | undefined;
  /** Automatic restarts by systemd (Restart=); 0 for units pm owns (Restart=no). */
  restarts: number;
  /** The last main process's end: code 1 → status is the exit code; 2 (killed) / 3 (dumped) → a signal number; 0 → none yet. */
  execMain: { code: number; status: number; startAt: number | undefined; exitAt: number | undefined };
  /** 'success', 'exit-code', 'signal', 'core-dump', 'timeout', 'oom-kill', 'start-limit-hit', … */
  result: string;
  /** 32 hex digits; new on every start. Undefined for a unit never started since systemd booted. */
  invocationId: string | undefined;
  /** Epoch ms, or undefined when the state was never entered. */
  activeEnterAt: number | undefined;
  inactiveEnterAt: number | undefined;
  /** The unit file systemd loaded, or undefined (e.g. a transient unit). */
  fragmentPath: string | undefined;
  /** The unit file changed on disk since it was loaded: a daemon-reload is due. */
  needDaemonReload: boolean;
  /**
   * A job is queued for the unit (Job= names its id): an inactive unit with one is about to start,
   * as between the stop and the start of a `systemctl restart`.
   */
  jobQueued: boolean;
}

export type ShownUnit = UnitState | MissingUnit;

/**
 * Maps every requested unit to its block in `output`. Throws E_SYSTEMD when a requested unit has no
 * block, or a block lacks a property showUnits asked for (an older systemd, or output that is not
 * from `systemctl show`).
 */
export function parseShowOutput(output: string, requested: readonly string[]): Map<string, ShownUnit> {
  const blocks = splitBlocks(output);
  const byName = new Map<string, Map<string, string>>();
  for (const block of blocks) {
    const id = block.get('Id');
    if (id === undefined) throw malformed(`a block has no Id= line`, output);
    byName.set(id, block);
    for (const alias of (block.get('Names') ?? '').split(' ')) if (alias !== '' && !byName.has(alias)) byName.set(alias, block);
  }
  const result = new Map<string, ShownUnit>();
  for (const unit of requested) {
    const block = byName.get(unit);
    if (!block) throw malformed(`no block for ${unit}`, output);
    result.set(unit, toState(unit, block));
  }
  return result;
}

/** `Key=Value` blocks; a value may itself hold '='. Lines without '=' are ignored. */
export function splitBlocks(output: string): Array<Map<string, string>> {
  const blocks: Array<Map<string, string>> = [];
  let current: Map<string, string> | undefined;
  for (const line of output.split('\n')) {
    if (line === '') {
      current = undefined;
      continue;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    if (!current) blocks.push((current = new Map()));
    current.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return blocks;
}

/**
 * A timestamp of `systemctl show --timestamp=us+utc` (`Fri 2026-11-27 09:18:53.915922 UTC`), or
 * `@1700000000[.5]` (--timestamp=unix, which systemd 252 cuts to whole seconds) → epoch ms with
 * its fraction; empty or `n/a` → undefined (the state was never entered).
 */
export function parseTimestamp(value: string | undefined): number | undefined {
  if (value === undefined || value === '' || value === 'n/a') return undefined;
  const utc = /^[A-Z][a-z]{2} (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))? UTC$/.exec(value);
  if (utc) {
    const whole = Date.parse(`${utc[1]}T${utc[2]}Z`);
    return Number.isNaN(whole) ? undefined : whole + (utc[3] === undefined ? 0 : Number(`0.${utc[3]}`) * 1000);
  }
  const unix = /^@(\d+)(?:\.(\d+))?$/.exec(value);
  if (!unix) return undefined;
  const fraction = unix[2] === undefined ? 0 : Number(`0.${unix[2]}`);
  return Math.round((Number(unix[1]) + fraction) * 1000);
}

function toState(unit: string, block: Map<string, string>): ShownUnit {
  const loadState = block.get('LoadState') ?? '';
  if (loadState === 'not-found') return { unit, found: false, loadState: 'not-found' };
  const get = (key: (typeof SHOW_PROPERTIES)[number]): string => {
    const value = block.get(key);
    if (value === undefined) throw malformed(`no ${key}= for ${unit} (systemd older than 252?)`, [...block].map(([k, v]) => `${k}=${v}`).join('\n'));
    return value;
  };
  const mainPid = integer(get('MainPID'));
  const invocationId = get('InvocationID');
  const fragmentPath = get('FragmentPath');
  return {
    unit,
    found: true,
    id: get('Id'),
    loadState,
    activeState: get('ActiveState'),
    subState: get('SubState'),
    mainPid: mainPid > 0 ? mainPid : undefined,
    restarts: integer(get('NRestarts')),
    execMain: {
      code: integer(get('ExecMainCode')),
      status: integer(get('ExecMainStatus')),
      startAt: parseTimestamp(get('ExecMainStartTimestamp')),
      exitAt: parseTimestamp(get('ExecMainExitTimestamp')),
    },
    result: get('Result'),
    invocationId: invocationId === '' ? undefined : invocationId,
    activeEnterAt: parseTimestamp(get('ActiveEnterTimestamp')),
    inactiveEnterAt: parseTimestamp(get('InactiveEnterTimestamp')),
    fragmentPath: fragmentPath === '' ? undefined : fragmentPath,
    needDaemonReload: get('NeedDaemonReload') === 'yes',
    // systemctl prints Job= empty when no job is queued, and may leave the line out: optional.
    jobQueued: integer(block.get('Job') ?? '') > 0,
  };
}

/** A whole number from systemctl; '' and '[not set]' count as 0. */
function integer(value: string): number {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) ? n : 0;
}

function malformed(problem: string, output: string): SystemdError {
  return new SystemdError(SystemdErrorCode.other, `unexpected output from systemctl show: ${problem}`, {
    hint: `pm needs systemd 252 or later; the output began: ${JSON.stringify(output.slice(0, 200))}`,
  });
}
