// What bench/reconfig.ts asks of a manager beyond bench/daemon's Manager: change one process's
// configuration (its CONFIG variable) the way that manager's users do. Every process starts with
// CONFIG=INITIAL_CONFIG; the child is bench/daemon/reporter.c, unchanged, and the value a child
// runs with is read from the kernel (/proc/PID/environ: what it was exec'd with), not from the child.
import { readFileSync } from 'node:fs';
import type { Manager } from '../daemon/manager.js';

/** Every process's CONFIG when its manager starts it. */
export const INITIAL_CONFIG = 'v0';

export const RECONFIG_KEYS = ['pm', 'pm2', 'supervisord', 'systemd'] as const;
export type ReconfigKey = (typeof RECONFIG_KEYS)[number];

export interface Reconfigurable {
  readonly key: ReconfigKey;
  /** How the manager is started, with placeholders (shown in the report). */
  readonly command: string;
  /** What a trial does to change one process's CONFIG, in the manager's own terms (shown). */
  readonly reconfigPath: string;
  /**
   * Changes process `name`'s CONFIG to `value` through the manager's normal configuration path
   * (a file written, and the command its users then run, if any); resolves once that command has
   * returned. The restart it causes may come before or after.
   */
  reconfigure(name: string, value: string): Promise<void>;
  /** The pid, as the bench sees it, of a child that reported `pid` (its own getpid()). */
  hostPid(pid: number): number;
}

/** A manager of bench/reconfig.ts: started with every process at CONFIG=INITIAL_CONFIG. */
export type ReconfigManager = Manager & Reconfigurable;

/** CONFIG in the environment pid was exec'd with; undefined when it is gone or has none. */
export function configOf(pid: number): string | undefined {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return undefined;
  }
  const entry = environ.split('\0').find((e) => e.startsWith('CONFIG='));
  return entry?.slice('CONFIG='.length);
}
