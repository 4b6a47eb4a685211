// The drivers pm has, behind one router. exec is built in; docker is loaded when a process first
// needs it (see router.ts).
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { ExecDriver } from './exec/index.js';
import { DriverRouter } from './router.js';

export interface DriverOptions {
  /** The state directory: with the host name, it makes the owner label of pm's containers. */
  stateDir: string;
}

/**
 * This pm's mark on what it creates in shared engines (the pm.owner label): the daemon and the CLI
 * on one state directory share it, another state directory on the same engine does not.
 */
export function ownerOf(stateDir: string): string {
  return createHash('sha256').update(`${hostname()}\0${resolve(stateDir)}`).digest('hex').slice(0, 16);
}

export function createDrivers(options: DriverOptions): DriverRouter {
  const owner = ownerOf(options.stateDir);
  return new DriverRouter({
    exec: () => Promise.resolve(new ExecDriver()),
    docker: async () => (await import('./docker-process.js')).createDockerProcessDriver({ owner }),
  });
}
