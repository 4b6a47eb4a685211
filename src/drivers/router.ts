// One Driver for the planner, the daemon and apply, whatever runs each process: a request goes to
// the driver its manifest names (spec.driver), a handle to the driver that made it (handle.driver).
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

export class DriverRouter implements ProcessDriver {
  readonly #factories: DriverFactories;
  readonly #loaded = new Map<DriverName, Promise<ProcessDriver>>();

  constructor(factories: DriverFactories) {
    this.#factories = factories;
  }

  check(request: StartRequest): Promise<void> {
    return this.#for(request.manifest.spec.driver).then((d) => d.check(request));
  }

  start(request: StartRequest): Promise<ProcessHandle> {
    return this.#for(request.manifest.spec.driver).then((d) => d.start(request));
  }

  inspect(handle: ProcessHandle): Promise<Observation> {
    return this.#for(handle.driver).then((d) => d.inspect(handle));
  }

  stop(handle: ProcessHandle, options: StopOptions): Promise<StopResult> {
    return this.#for(handle.driver).then((d) => d.stop(handle, options));
  }

  waitExit(handle: ProcessHandle, signal?: AbortSignal): Promise<ExitStatus> {
    return this.#for(handle.driver).then((d) => d.waitExit(handle, signal));
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

  async close(): Promise<void> {
    const drivers = await Promise.allSettled(this.#loaded.values());
    await Promise.all(drivers.map((d) => (d.status === 'fulfilled' ? d.value.close?.() : undefined)));
  }

  #for(name: DriverName): Promise<ProcessDriver> {
    let loaded = this.#loaded.get(name);
    if (!loaded) {
      const factory = this.#factories[name];
      if (!factory) return Promise.reject(new PmError('E_DRIVER', `driver ${name} is not available in this pm`));
      loaded = factory();
      // A failed load (a missing module) is not cached: the next call tries again.
      loaded.catch(() => this.#loaded.delete(name));
      this.#loaded.set(name, loaded);
    }
    return loaded;
  }
}
