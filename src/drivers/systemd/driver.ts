// The systemd driver: systemd runs the process, pm tells it what to run and watches.
//
// Two kinds of units. Units pm owns (pm-<name>.service) are written by install() into unitDir and
// removed by uninstall(). Units pm manages but does not own are only observed, started, stopped
// and restarted: pm never writes them. Both are found again by name; the SystemdHandle adds the
// InvocationID of the run it describes, so a run started by someone else is seen as a new run.
//
// Exits are learned by polling `systemctl show` (waitExit; the daemon should instead poll all its
// units at once with observeMany): there is no cheap per-unit push channel without a D-Bus client.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExitStatus, Observation, StopResult, SystemdHandle } from '../driver.js';
import { ANCHOR_TARGET, dropInPath, removeAnchor, writeAnchor, writeAtomically } from './anchor.js';
import { SystemdError, SystemdErrorCode } from './errors.js';
import { describeFailure, hasFailed, programRan } from './failure.js';
import { exitStatusOf, isStopped, observationOf, unknownExit } from './observe.js';
import type { ShownUnit } from './show.js';
import { isSystemdError, type CallOptions, type Systemctl } from './systemctl.js';
import { renderEnvironmentFile, renderUnit, UNIT_FILE_MARKER, type UnitSpec } from './unit-file.js';
import { OWNED_PREFIX, ownedUnitName, validateUnitName } from './unit-name.js';

/**
 * How often waitExit() asks systemd about the unit. Each poll is one `systemctl show` process
 * (a few ms of CPU), so an exit is seen within this plus one call; 200 ms keeps one waiting unit
 * at 5 spawns a second. The daemon polls all its units in one observeMany() call instead.
 */
export const WAIT_POLL_MS = 200;
/** How often stop() looks while a stop runs: short, since a restart waits on it. */
export const STOP_POLL_MS = 50;
/** After `systemctl kill --signal=SIGKILL` the unit ends within moments, unless a process is stuck in the kernel. */
const KILL_WAIT_MS = 10_000;

export interface SystemdDriverOptions {
  systemctl: Systemctl;
  /** Where pm writes the units it owns, e.g. /run/systemd/system (runtime: gone after a reboot). */
  unitDir: string;
  /**
   * The same folder as systemd names it in FragmentPath; defaults to unitDir. Differs when pm
   * reaches another mount namespace's folder, e.g. /proc/PID/root/run/systemd/system.
   */
  systemdUnitDir?: string;
  waitPollMs?: number;
  stopPollMs?: number;
  /** Epoch ms; injected so tests need no real clock. */
  now?: () => number;
}

export interface InstallResult {
  unit: string;
  /** Where pm wrote it (unitDir). */
  path: string;
  /** False when the file already held exactly this text. */
  changed: boolean;
  /** Drop-ins someone else added (they change the unit pm wrote): worth a warning. */
  dropIns: string[];
}

export interface UninstallResult {
  unit: string;
  /** False when there was no file to remove. */
  removed: boolean;
  stop: StopResult;
}

export class SystemdDriver {
  readonly #systemctl: Systemctl;
  readonly #unitDir: string;
  readonly #systemdUnitDir: string;
  readonly #waitPollMs: number;
  readonly #stopPollMs: number;
  readonly #now: () => number;

  constructor(options: SystemdDriverOptions) {
    if (!options.unitDir.startsWith('/')) throw new TypeError(`SystemdDriver: unitDir must be absolute, not ${JSON.stringify(options.unitDir)}`);
    this.#systemctl = options.systemctl;
    this.#unitDir = options.unitDir;
    this.#systemdUnitDir = options.systemdUnitDir ?? options.unitDir;
    this.#waitPollMs = positive('waitPollMs', options.waitPollMs ?? WAIT_POLL_MS);
    this.#stopPollMs = positive('stopPollMs', options.stopPollMs ?? STOP_POLL_MS);
    this.#now = options.now ?? Date.now;
  }

  /**
   * Writes pm-<name>.service (atomically: temp file + rename, mode 0600), its environment in
   * pm-env/<unit>.env (mode 0600, named by EnvironmentFile=: Environment= values would be readable
   * by every user through `systemctl show`), its pm.target drop-in (anchor.ts: keeps its exit status), reloads systemd,
   * and checks that systemd loaded *that* file: a same-named unit in a folder that wins
   * (/etc/systemd/system) or a mask is an error. A running unit keeps its old settings until
   * restarted.
   *
   * When nothing was written and systemd already has exactly these files loaded and in force (the
   * unit's FragmentPath is ours; pm.target is active with this unit's drop-in; neither needs a
   * reload), the reload and `start pm.target` are skipped: a daemon-reload costs some 180 ms and
   * re-reads every unit, and a restart after a crash installs the same text again. Anything else
   * (a reload that failed last time, pm.target stopped, a reboot with a persistent folder) takes
   * the full path.
   */
  async install(name: string, spec: UnitSpec, options: CallOptions = {}): Promise<InstallResult> {
    const unit = ownedUnitName(name);
    // The environment goes to a file of its own, never into Environment= (public through `systemctl show`).
    const hasEnv = Object.keys(spec.env).length > 0;
    const text = renderUnit(hasEnv ? { ...spec, environmentFile: join(this.#systemdUnitDir, ENV_DIR, `${unit}.env`) } : spec);
    const path = join(this.#unitDir, unit);
    const existing = await readIfThere(path);
    if (existing !== undefined && !existing.startsWith(UNIT_FILE_MARKER)) throw notOurs(unit, path);
    const envPath = join(this.#unitDir, ENV_DIR, `${unit}.env`);
    const envText = hasEnv ? renderEnvironmentFile(spec.env) : undefined;
    const envBefore = await readIfThere(envPath);
    const envChanged = envBefore !== envText;
    if (envChanged) {
      if (envText === undefined) await rm(envPath, { force: true });
      else await writeAtomically(envPath, envText, 0o600);
    }
    const changed = existing !== text || envChanged;
    if (existing !== text) await writeAtomically(path, text, 0o600);
    const anchorWritten = await writeAnchor(this.#unitDir, unit);
    const properties = ['Id', 'LoadState', 'LoadError', 'FragmentPath', 'DropInPaths', 'NeedDaemonReload'];
    if (!changed && !anchorWritten) {
      const [current, anchor] = await Promise.all([
        this.#systemctl.showProperties(unit, properties, options),
        this.#systemctl.showProperties(ANCHOR_TARGET, ['ActiveState', 'DropInPaths', 'NeedDaemonReload'], options),
      ]);
      const inForce =
        current.get('LoadState') === 'loaded' &&
        current.get('FragmentPath') === join(this.#systemdUnitDir, unit) &&
        current.get('NeedDaemonReload') === 'no' &&
        anchor.get('ActiveState') === 'active' &&
        anchor.get('NeedDaemonReload') === 'no' &&
        dropInsOf(anchor).includes(dropInPath(this.#systemdUnitDir, unit));
      if (inForce) return { unit, path, changed: false, dropIns: dropInsOf(current) };
    }
    await this.#systemctl.daemonReload(options);
    const loaded = await this.#systemctl.showProperties(unit, properties, options);
    this.#checkLoaded(unit, loaded);
    // Idempotent: the anchor must be active to keep the unit's exit status (see anchor.ts).
    await this.#systemctl.verb('start', ANCHOR_TARGET, options);
    return { unit, path, changed, dropIns: dropInsOf(loaded) };
  }

  /**
   * Stops the unit (if it runs), forgets its failed state, removes the file pm wrote and its
   * pm.target drop-in, and reloads.
   * A file at that path that pm did not write is left alone (an error).
   */
  async uninstall(name: string, stopOptions: { gracePeriodMs: number }, options: CallOptions = {}): Promise<UninstallResult> {
    const unit = ownedUnitName(name);
    const path = join(this.#unitDir, unit);
    const existing = await readFile(path, 'utf8').catch(() => undefined);
    if (existing !== undefined && !existing.startsWith(UNIT_FILE_MARKER)) throw notOurs(unit, path);
    const stop = await this.stop(unit, stopOptions, options);
    await this.#systemctl.verb('reset-failed', unit, options).catch(ignoreNotFound);
    const anchored = await removeAnchor(this.#unitDir, unit);
    if (existing === undefined) {
      if (anchored) await this.#systemctl.daemonReload(options);
      return { unit, removed: false, stop };
    }
    await rm(path, { force: true });
    await rm(join(this.#unitDir, ENV_DIR, `${unit}.env`), { force: true });
    await this.#systemctl.daemonReload(options);
    return { unit, removed: true, stop };
  }

  /**
   * `systemctl start` (waits for the job: with Type=exec, until the program was executed). A unit
   * already running is left as it is, and the handle describes that run. A start job that fails
   * before the program ran rejects with E_SYSTEMD_FAILED carrying the unit's last log lines; one
   * whose program ran and ended at once resolves, and the exit is observed (#jobWithExplanation).
   */
  async start(unit: string, options: CallOptions = {}): Promise<SystemdHandle> {
    await this.#jobWithExplanation('start', unit, options);
    return this.#handle(unit, options);
  }

  /** `systemctl restart`: a new run (a new InvocationID) even when it was running. */
  async restart(unit: string, options: CallOptions = {}): Promise<SystemdHandle> {
    await this.#jobWithExplanation('restart', unit, options);
    return this.#handle(unit, options);
  }

  /**
   * Stops the unit with its own KillSignal; when it still runs after `gracePeriodMs`, SIGKILL to all
   * its processes (`systemctl kill --signal=SIGKILL`). systemd's TimeoutStopSec may end it sooner
   * (Result=timeout also counts as forced). Safe on a unit that is stopped or unknown.
   */
  async stop(unit: string, stopOptions: { gracePeriodMs: number }, options: CallOptions = {}): Promise<StopResult> {
    validateUnitName(unit);
    const before = await this.#show(unit, options);
    if (!before.found || isStopped(before)) return { forced: false, wasRunning: false, ...(before.found && { exit: exitStatusOf(before, this.#now()) }) };
    await this.#systemctl.verb('stop', unit, options);
    let state = await this.#pollUntilStopped(unit, this.#now() + Math.max(0, stopOptions.gracePeriodMs), options);
    let forced = false;
    if (!state) {
      forced = true;
      await this.#systemctl.verb('kill', unit, options).catch(ignoreNotFound);
      state = await this.#pollUntilStopped(unit, this.#now() + KILL_WAIT_MS, options);
      if (!state) {
        throw new SystemdError(SystemdErrorCode.other, `${unit} still runs ${KILL_WAIT_MS} ms after SIGKILL`, {
          unit,
          hint: `a process may be stuck in the kernel (state D): look with \`systemctl status ${unit}\``,
        });
      }
    }
    if (state.found && state.result === 'timeout') forced = true;
    return { forced, wasRunning: true, ...(state.found && { exit: exitStatusOf(state, this.#now()) }) };
  }

  /** What the handle's run is doing now (see observationOf). */
  async inspect(handle: SystemdHandle, options: CallOptions = {}): Promise<Observation> {
    return observationOf(await this.#show(handle.unit, options), handle, this.#now());
  }

  /**
   * Resolves when the handle's run is over: the unit is inactive or failed, or another run started
   * (InvocationID changed: then the exit is unknown). Polls every waitPollMs; `signal` ends the
   * wait (rejects with its reason).
   */
  async waitExit(handle: SystemdHandle, signal?: AbortSignal): Promise<ExitStatus> {
    validateUnitName(handle.unit);
    while (true) {
      signal?.throwIfAborted();
      const state = await this.#show(handle.unit, signal ? { signal } : {});
      const now = this.#now();
      if (!state.found) return unknownExit(now);
      if (handle.invocationId !== undefined && state.invocationId !== undefined && state.invocationId !== handle.invocationId) return unknownExit(now);
      if (isStopped(state)) return exitStatusOf(state, now);
      await sleep(this.#waitPollMs, undefined, signal ? { signal } : {}).catch(() => signal?.throwIfAborted());
    }
  }

  /** All units' states in one `systemctl show` call: the daemon's poll. Map them with observationOf. */
  observeMany(units: readonly string[], options: CallOptions = {}): Promise<Map<string, ShownUnit>> {
    return this.#systemctl.showUnits(units, options);
  }

  /** The E_SYSTEMD_FAILED describing the unit's failed last run, or undefined when it has not failed. */
  async failure(unit: string, options: CallOptions = {}): Promise<SystemdError | undefined> {
    const state = await this.#show(unit, options);
    if (!state.found || !hasFailed(state)) return undefined;
    return describeFailure(this.#systemctl, state, options);
  }

  /** The folder pm writes owned units to. */
  get unitDir(): string {
    return this.#unitDir;
  }

  /**
   * Runs a start/restart job. A failed job whose program did run (it exited or died before systemd
   * saw the exec succeed: Type=exec races a program that ends at once) is a start followed by an
   * exit, as with the exec driver: the handle is returned and the exit observed. A job that failed
   * before the program ran (systemd's own exit codes 200–245, or another Result) rejects.
   */
  async #jobWithExplanation(verb: 'start' | 'restart', unit: string, options: CallOptions): Promise<void> {
    try {
      await this.#systemctl.verb(verb, unit, options);
    } catch (error) {
      if (!isSystemdError(error, SystemdErrorCode.failed)) throw error;
      const state = await this.#show(unit, options).catch(() => undefined);
      if (!state?.found) throw error;
      if (programRan(state)) return;
      throw await describeFailure(this.#systemctl, state, options);
    }
  }

  async #handle(unit: string, options: CallOptions): Promise<SystemdHandle> {
    const state = await this.#show(unit, options);
    if (!state.found) throw new SystemdError(SystemdErrorCode.unitNotFound, `unit ${unit} not found after it was started`, { unit, hint: 'it was removed meanwhile: run pm apply again' });
    return {
      driver: 'systemd',
      unit,
      // Existing units pm manages cannot be named pm-… (manifest validation): those are the ones pm writes.
      owned: unit.startsWith(OWNED_PREFIX),
      ...(state.invocationId !== undefined && { invocationId: state.invocationId }),
      ...(state.mainPid !== undefined && { pid: state.mainPid }),
    };
  }

  async #show(unit: string, options: CallOptions): Promise<ShownUnit> {
    const state = (await this.#systemctl.showUnits([unit], options)).get(unit);
    // showUnits maps every requested name or throws.
    if (!state) throw new SystemdError(SystemdErrorCode.other, `no state for ${unit}`, { unit });
    return state;
  }

  /** Polls until the unit is stopped; undefined when the deadline passes first. */
  async #pollUntilStopped(unit: string, deadline: number, options: CallOptions): Promise<ShownUnit | undefined> {
    while (true) {
      const state = await this.#show(unit, options);
      if (isStopped(state)) return state;
      const left = deadline - this.#now();
      if (left <= 0) return undefined;
      await sleep(Math.min(this.#stopPollMs, left), undefined, options.signal ? { signal: options.signal } : {}).catch(() => options.signal?.throwIfAborted());
    }
  }

  #checkLoaded(unit: string, loaded: Map<string, string>): void {
    const loadState = loaded.get('LoadState') ?? '';
    const fragment = loaded.get('FragmentPath') ?? '';
    const expected = join(this.#systemdUnitDir, unit);
    if (loadState === 'masked') {
      throw new SystemdError(SystemdErrorCode.unitInvalid, `${unit} is masked (${fragment || 'linked to /dev/null'}): systemd will not start it`, {
        unit,
        hint: `unmask it (systemctl unmask ${unit}) if pm should run it`,
      });
    }
    if (loadState === 'not-found') {
      throw new SystemdError(SystemdErrorCode.unitInvalid, `systemd did not find ${unit} after daemon-reload: it does not load units from ${this.#systemdUnitDir}`, {
        unit,
        hint: 'set the driver\'s unitDir to a folder in systemd\'s unit path (systemd-analyze unit-paths), e.g. /run/systemd/system',
      });
    }
    if (fragment !== expected) {
      throw new SystemdError(SystemdErrorCode.unitShadowed, `${unit} is loaded from ${fragment || '(no file)'}, not from the file pm wrote (${expected})`, {
        unit,
        hint: `a unit of the same name in a folder that takes precedence overrides pm's: remove or rename ${fragment || 'it'} (or rename the process), then run pm apply again`,
      });
    }
    if (loadState !== 'loaded') {
      throw new SystemdError(SystemdErrorCode.unitInvalid, `systemd could not load ${unit} (LoadState=${loadState}): ${loaded.get('LoadError') ?? ''}`, {
        unit,
        hint: `check it with \`systemd-analyze verify ${expected}\``,
      });
    }
  }
}

/** Beside the units pm writes: their environment files (a name systemd never takes for a unit or drop-in folder). */
const ENV_DIR = 'pm-env';

async function readIfThere(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

function dropInsOf(loaded: Map<string, string>): string[] {
  return (loaded.get('DropInPaths') ?? '').split(' ').filter((p) => p !== '');
}

function ignoreNotFound(error: unknown): void {
  if (!isSystemdError(error, SystemdErrorCode.unitNotFound)) throw error;
}

function notOurs(unit: string, path: string): SystemdError {
  return new SystemdError(SystemdErrorCode.unitShadowed, `${path} exists and was not written by pm: left as it is`, {
    unit,
    hint: `pm owns only the files it wrote (their first line is "${UNIT_FILE_MARKER}"): move that file away, or rename the process`,
  });
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`SystemdDriver: ${name} must be a positive number of ms, not ${JSON.stringify(value)}`);
  return value;
}
