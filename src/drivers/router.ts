// One Driver for the planner, the daemon and apply, whatever runs each process: a request goes to
// the driver its manifest names (spec.driver), a handle to the driver that made it (handle.driver).
// The router also keeps each driver's back-end health from the outcome of its calls (backends()):
// an unreachable engine degrades that driver alone, and the first call that succeeds clears it.
// The docker driver is loaded on first use, so a pm with only exec processes never loads dockerode
// nor needs an engine; while the engine is unreachable, exec processes are unaffected.
import type { HealthStatus } from '../probes/runners.js';
import { PmError } from '../errors.js';
import type { Driver, ExitStatus, Observation, ProcessHandle, StartRequest, StopOptions, StopResult } from './driver.js';

export type DriverName = ProcessHandle['driver'];

/** What the daemon's supervisor needs beyond Driver: forgetting a handle, and finding an unrecorded start. */
export interface ProcessDriver extends Driver {
  forget?(handle: ProcessHandle): void;
  /** The process started with this instance marker that no record names (a kill between start and record). */
  recover?(instance: string): Promise<ProcessHandle | undefined>;
  /** Ends background work (event streams, connections). */
  close?(): Promise<void>;
}

export type DriverFactories = { [name in DriverName]?: () => Promise<ProcessDriver> };

/**
 * Errors that say a driver's back end cannot be reached or refuses pm altogether (not that one
 * process is wrong): while the last call to a driver ended with one of these, it is degraded.
 */
const BACKEND_DOWN_CODES = new Set(['E_DOCKER_UNREACHABLE', 'E_DOCKER_PERMISSION', 'E_DOCKER_HOST', 'E_SYSTEMD_NOT_RUNNING', 'E_SYSTEMD_SETTINGS']);
/**
 * Errors that say so only when a read fails with them: a timeout or a refusal of `systemctl start`
 * concerns that one unit (a slow Type=notify unit, a unit the polkit rule does not name), while a
 * state read that times out or is refused concerns every unit.
 */
const BACKEND_DOWN_ON_READ = new Set(['E_DOCKER_TIMEOUT', 'E_SYSTEMD_TIMEOUT', 'E_SYSTEMD_ACCESS_DENIED']);

/** A loaded driver's back end as its last call found it. */
export interface BackendHealth {
  driver: DriverName;
  /** False while the last call failed because the back end could not be reached (engine down, systemd refusing). */
  up: boolean;
  /** ISO time of the last change of `up` (or of the first call). */
  since: string;
  /** Why it is down: the last such error's code and message. */
  lastError?: string;
}

export class DriverRouter implements ProcessDriver {
  readonly #factories: DriverFactories;
  readonly #loaded = new Map<DriverName, Promise<ProcessDriver>>();
  /** Drivers whose load has finished, for the calls that must answer synchronously. */
  readonly #ready = new Map<DriverName, ProcessDriver>();
  readonly #health = new Map<DriverName, BackendHealth>();
  readonly #listeners = new Set<(health: BackendHealth, before: BackendHealth | undefined) => void>();

  constructor(factories: DriverFactories) {
    this.#factories = factories;
  }

  check(request: StartRequest): Promise<void> {
    return this.#call(request.manifest.spec.driver, 'write', (d) => d.check(request));
  }

  start(request: StartRequest): Promise<ProcessHandle> {
    return this.#call(request.manifest.spec.driver, 'write', (d) => d.start(request));
  }

  inspect(handle: ProcessHandle): Promise<Observation> {
    return this.#call(handle.driver, 'read', (d) => d.inspect(handle));
  }

  stop(handle: ProcessHandle, options: StopOptions): Promise<StopResult> {
    return this.#call(handle.driver, 'write', (d) => d.stop(handle, options));
  }

  waitExit(handle: ProcessHandle, signal?: AbortSignal): Promise<ExitStatus> {
    return this.#call(handle.driver, 'read', (d) => d.waitExit(handle, signal));
  }

  /** Only through a driver already loaded: a process it spawned implies it is. */
  onExit(handle: ProcessHandle, exited: (exit: ExitStatus) => void): (() => void) | undefined {
    return this.#ready.get(handle.driver)?.onExit?.(handle, exited);
  }

  execIn(handle: ProcessHandle, command: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<number> {
    return this.#for(handle.driver).then((d) => {
      if (!d.execIn) throw new PmError('E_DRIVER', `driver ${handle.driver} runs no commands inside its processes`);
      return d.execIn(handle, command, timeoutMs, signal);
    });
  }

  logs(handle: ProcessHandle, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    return this.#for(handle.driver).then((d) => {
      if (!d.logs) throw new PmError('E_DRIVER', `driver ${handle.driver} keeps no output of its own: pm writes its log files`);
      return d.logs(handle, options, out, signal);
    });
  }

  health(handle: ProcessHandle): Promise<HealthStatus> {
    return this.#for(handle.driver).then((d) => d.health?.(handle) ?? 'none');
  }

  remove(handle: ProcessHandle): Promise<void> {
    return this.#for(handle.driver).then((d) => d.remove?.(handle));
  }

  forget(handle: ProcessHandle): void {
    // Only a driver already loaded can hold anything about the handle.
    void this.#loaded.get(handle.driver)?.then((d) => d.forget?.(handle));
  }

  /** Asks the driver that would have started it: the intent names the manifest, so the driver. */
  async recoverFor(driver: DriverName, instance: string): Promise<ProcessHandle | undefined> {
    const loaded = await this.#for(driver);
    return loaded.recover?.(instance);
  }

  /** Calls `listener` whenever a driver's back end goes down or comes back (not for its first, healthy call). */
  watchBackends(listener: (health: BackendHealth, before: BackendHealth | undefined) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Each driver used so far, with its back end's health: the daemon's /readyz and pm_driver_up. */
  backends(): BackendHealth[] {
    return [...this.#health.values()].map((h) => ({ ...h }));
  }

  async close(): Promise<void> {
    const drivers = await Promise.allSettled(this.#loaded.values());
    await Promise.all(drivers.map((d) => (d.status === 'fulfilled' ? d.value.close?.() : undefined)));
  }

  /** Runs `call` on the driver, noting whether its back end answered. */
  async #call<T>(name: DriverName, kind: 'read' | 'write', call: (driver: ProcessDriver) => Promise<T>): Promise<T> {
    try {
      const result = await call(await this.#for(name));
      this.#note(name, undefined);
      return result;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      // Another failure (one bad image, one unit that fails) says nothing about the back end.
      const down = typeof code === 'string' && (BACKEND_DOWN_CODES.has(code) || (kind === 'read' && BACKEND_DOWN_ON_READ.has(code)));
      if (down) this.#note(name, `${code}: ${(error as Error).message}`);
      else if (!this.#health.has(name)) this.#note(name, undefined);
      throw error;
    }
  }

  #note(name: DriverName, downBecause: string | undefined): void {
    const before = this.#health.get(name);
    const up = downBecause === undefined;
    if (before && before.up === up && before.lastError === downBecause) return;
    const since = before && before.up === up ? before.since : new Date().toISOString();
    const health: BackendHealth = { driver: name, up, since, ...(downBecause !== undefined && { lastError: downBecause }) };
    this.#health.set(name, health);
    if (before || !up) for (const listener of this.#listeners) listener({ ...health }, before);
  }

  #for(name: DriverName): Promise<ProcessDriver> {
    let loaded = this.#loaded.get(name);
    if (!loaded) {
      const factory = this.#factories[name];
      if (!factory) return Promise.reject(new PmError('E_DRIVER', `driver ${name} is not available in this pm`));
      loaded = factory();
      loaded.then((driver) => this.#ready.set(name, driver), () => undefined);
      // A failed load (a missing module) is not cached: the next call tries again.
      loaded.catch(() => this.#loaded.delete(name));
      this.#loaded.set(name, loaded);
    }
    return loaded;
  }
}
