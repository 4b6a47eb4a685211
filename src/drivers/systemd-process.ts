// The systemd driver as pm's planner, daemon and apply see it. A manifest with driver systemd names
// either an existing unit (spec.systemd.unit: started, stopped, restarted and observed, never
// written) or a command pm turns into pm-<name>.service (spec.systemd.command). pm restarts, not
// systemd (the unit pm writes has Restart=no): one backoff and circuit breaker for every driver,
// and every exit is seen.
//
// pm supervises the UNIT, not one run of it: a unit restarted by someone else (systemctl restart,
// a package upgrade, an existing unit's own Restart=) is still running as far as pm is concerned,
// so it is neither counted as a failure nor stopped and started again. Only a unit that is no
// longer active has exited.
//
// Exits are learned by polling: every waitExit of this driver shares ONE `systemctl show` of all
// the units waited on per poll (ExitPoller), so 100 units cost one process spawn per poll, not 100;
// inspections made together (the daemon's resync, pm get) share one read too (ShowBatcher).
import { stat } from 'node:fs/promises';
import { StartError } from '../errors.js';
import { ioWeightV2, limitsOf } from '../manifest/resources.js';
import { systemdSpecOf } from '../manifest/runtime.js';
import type { ExitStatus, Observation, ProcessHandle, StartRequest, StopOptions, StopResult, SystemdHandle } from './driver.js';
import { findProgram } from './exec/preflight.js';
import type { ProcessDriver } from './router.js';
import { ExitPoller } from './systemd/exit-poller.js';
import { observationOf } from './systemd/observe.js';
import { ShowBatcher } from './systemd/show-batch.js';
import { OWNED_PREFIX, renderUnit, SystemdDriver, SystemdError, SystemdErrorCode, Systemctl, WAIT_POLL_MS, type UnitLimits, type UnitSpec } from './systemd/index.js';
import type { SystemdSettings } from './systemd/settings.js';

export function createSystemdProcessDriver(settings: SystemdSettings): ProcessDriver {
  const systemctl = new Systemctl({ prefix: settings.prefix, readPrefix: settings.readPrefix, scope: settings.scope, timeoutMs: settings.timeoutMs });
  const driver = new SystemdDriver({ systemctl, unitDir: settings.unitDir, systemdUnitDir: settings.systemdUnitDir });
  return new SystemdProcessDriver(driver, systemctl, settings);
}

export function unitLimitsOf(request: Pick<StartRequest, 'manifest'>): UnitLimits {
  const limits = limitsOf(request.manifest);
  return {
    ...(limits.memoryBytes !== undefined && { memoryBytes: limits.memoryBytes }),
    ...(limits.cpus !== undefined && { cpuQuotaPercent: Math.max(1, Math.round(limits.cpus * 100)) }),
    ...(limits.ioWeight !== undefined && { ioWeight: ioWeightV2(limits.ioWeight) }),
    ...(limits.openFiles !== undefined && { nofile: limits.openFiles }),
    ...(limits.pids !== undefined && { tasks: limits.pids }),
  };
}

/** The unit file pm writes for a spec.systemd.command process; the program already resolved to an absolute path. */
export function unitSpecOf(request: Pick<StartRequest, 'name' | 'manifest' | 'declaredEnv' | 'logs'>, program: string): UnitSpec {
  const systemd = systemdSpecOf(request.manifest);
  const [, ...args] = systemd.command ?? [];
  const { stop } = request.manifest.spec;
  const limits = unitLimitsOf(request);
  return {
    description: `pm process ${request.name}`,
    command: [program, ...args],
    env: request.declaredEnv ?? {},
    ...(systemd.user !== undefined && { user: systemd.user }),
    ...(systemd.group !== undefined && { group: systemd.group }),
    ...(systemd.cwd !== undefined && { workingDirectory: systemd.cwd }),
    stdoutPath: request.logs.stdout,
    stderrPath: request.logs.stderr,
    stopSignal: stop.signal,
    // 0 is "wait for ever" to systemd; pm's own stop sends SIGKILL after the grace period anyway.
    gracePeriodSeconds: Math.max(0.001, stop.gracePeriodSeconds),
    ...(Object.keys(limits).length > 0 && { limits }),
  };
}

class SystemdProcessDriver implements ProcessDriver {
  readonly #poller: ExitPoller;
  readonly #states: ShowBatcher;

  constructor(
    private readonly driver: SystemdDriver,
    private readonly systemctl: Systemctl,
    private readonly settings: SystemdSettings,
  ) {
    this.#poller = new ExitPoller(systemctl, { pollMs: settings.pollMs ?? WAIT_POLL_MS });
    this.#states = new ShowBatcher(systemctl);
  }

  /**
   * Before anything is stopped: an existing unit is known to systemd; for a unit pm writes, the
   * program is found, the folder exists, and the unit file can be written exactly.
   */
  async check(request: StartRequest): Promise<void> {
    const systemd = systemdSpecOf(request.manifest);
    if (systemd.unit !== undefined) {
      const state = (await this.systemctl.showUnits([systemd.unit])).get(systemd.unit);
      if (!state?.found) {
        throw new SystemdError(SystemdErrorCode.unitNotFound, `${request.name}: unit ${systemd.unit} is not known to systemd (${this.settings.scope} scope)`, {
          unit: systemd.unit,
          hint: `install the unit first (systemctl ${this.settings.scope === 'user' ? '--user ' : ''}list-unit-files ${systemd.unit}), or correct spec.systemd.unit`,
        });
      }
      return;
    }
    await this.#unitSpec(request);
  }

  async start(request: StartRequest): Promise<ProcessHandle> {
    const systemd = systemdSpecOf(request.manifest);
    if (systemd.unit !== undefined) return this.driver.start(systemd.unit);
    const installed = await this.driver.install(request.name, await this.#unitSpec(request));
    // A running unit keeps the settings it started with: a changed file needs a new run.
    const running = installed.changed && (await this.driver.inspect({ driver: 'systemd', unit: installed.unit, owned: true })).state === 'running';
    return running ? this.driver.restart(installed.unit) : this.driver.start(installed.unit);
  }

  async inspect(handle: ProcessHandle): Promise<Observation> {
    const unit = unitOnly(systemdHandle(handle));
    return observationOf(await this.#states.show(unit.unit), unit, Date.now());
  }

  /** The unit's KillSignal (the manifest's stop.signal for a unit pm writes), then SIGKILL after the grace period. */
  stop(handle: ProcessHandle, options: StopOptions): Promise<StopResult> {
    return this.driver.stop(systemdHandle(handle).unit, { gracePeriodMs: options.gracePeriodMs });
  }

  waitExit(handle: ProcessHandle, signal?: AbortSignal): Promise<ExitStatus> {
    return this.#poller.wait(unitOnly(systemdHandle(handle)), signal);
  }

  /** An existing unit's output is in the journal; a unit pm writes sends it to pm's log files, which pm logs reads itself. */
  logs(handle: ProcessHandle, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    return this.systemctl.streamJournal(systemdHandle(handle).unit, { follow: options.follow, ...(options.tail !== undefined && { tail: options.tail }) }, out, signal);
  }

  /** A unit pm wrote is stopped and its file removed; an existing unit is left as it is (stopped). */
  async remove(handle: ProcessHandle): Promise<void> {
    const unit = systemdHandle(handle);
    if (!unit.owned) return;
    const name = unit.unit.slice(OWNED_PREFIX.length, -'.service'.length);
    await this.driver.uninstall(name, { gracePeriodMs: 0 });
  }

  /**
   * Nothing to recover: starting a unit that already runs is a no-op that returns its run, so a
   * start whose record was lost is found by the next start.
   */
  recover(): Promise<ProcessHandle | undefined> {
    return Promise.resolve(undefined);
  }

  close(): Promise<void> {
    this.#poller.close();
    return Promise.resolve();
  }

  async #unitSpec(request: StartRequest): Promise<UnitSpec> {
    const systemd = systemdSpecOf(request.manifest);
    const command = systemd.command ?? [];
    const workDir = systemd.cwd ?? process.cwd();
    const info = await stat(workDir).catch(() => undefined);
    if (!info?.isDirectory()) throw new StartError(request.name, `cwd ${workDir} ${info ? 'is not a directory' : 'does not exist'}`, 'create the folder or fix spec.systemd.cwd');
    if (this.settings.scope === 'user' && (systemd.user !== undefined || systemd.group !== undefined)) {
      throw new StartError(request.name, 'spec.systemd.user and group need the system scope: a user manager cannot switch users', 'remove them, or run pm with PM_SYSTEMD_SCOPE=system');
    }
    const searchPath = request.declaredEnv?.PATH ?? request.env.PATH ?? process.env.PATH ?? '';
    const program = await findProgram(command[0] ?? '', workDir, searchPath);
    if (program === undefined) {
      throw new StartError(request.name, `command "${command[0] ?? ''}" is not an executable file found ${command[0]?.includes('/') ? `at ${command[0]}` : `in PATH (${searchPath || 'empty'})`}`, 'give an absolute path in spec.systemd.command, or install the program');
    }
    const spec = unitSpecOf(request, program);
    try {
      // Refuses what systemd would read back differently (a newline in an argument, say).
      renderUnit(spec);
    } catch (error) {
      throw new StartError(request.name, (error as Error).message, 'fix spec.systemd: pm writes only what systemd reads back exactly');
    }
    return spec;
  }
}

/** The handle without its run: observed as the unit (see the top of this file). */
function unitOnly(handle: SystemdHandle): SystemdHandle {
  const { invocationId: _run, ...unit } = handle;
  return unit;
}

function systemdHandle(handle: ProcessHandle): SystemdHandle {
  if (handle.driver !== 'systemd') throw new TypeError(`the systemd driver was given a ${handle.driver} handle`);
  return handle;
}
