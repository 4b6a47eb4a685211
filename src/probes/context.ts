// What a probe of one instance may ask its driver: a container's HEALTHCHECK status, and running an
// exec probe's command inside it. Absent for drivers that have neither (exec).
import type { Driver, ProcessHandle } from '../drivers/driver.js';
import type { ProbeContext } from './runners.js';

export function driverProbeHooks(driver: Driver, handle: ProcessHandle | undefined): Pick<ProbeContext, 'health' | 'execIn'> {
  // Only a container has an inside to run in and a HEALTHCHECK: exec processes' probes run on the host.
  if (handle?.driver !== 'docker') return {};
  return {
    ...(driver.health && { health: () => driver.health?.(handle) ?? Promise.resolve('none' as const) }),
    ...(driver.execIn && { execIn: (command: readonly string[], timeoutMs: number, signal?: AbortSignal) => driver.execIn?.(handle, command, timeoutMs, signal) ?? Promise.reject(new Error('no exec in this driver')) }),
  };
}
