// One reading of how a process ended, shared by the planner, the executor and `pm get`.
import type { ExitStatus } from '../drivers/driver.js';
import type { ProcessManifest } from '../manifest/types.js';

/** succeeded: code 0; failed: another code or a signal; unknown: it ended while no pm was its parent. */
export type ExitVerdict = 'succeeded' | 'failed' | 'unknown';

export function exitVerdict(exit: ExitStatus): ExitVerdict {
  if (!exit.known) return 'unknown';
  return exit.code === 0 && exit.signal === null ? 'succeeded' : 'failed';
}

/**
 * Whether an exit completes the process (what `condition: completed` waits for): only a witnessed
 * code 0, and only for a process that is allowed to finish (not restartPolicy always).
 */
export function completesProcess(exit: ExitStatus, manifest: ProcessManifest): boolean {
  return exitVerdict(exit) === 'succeeded' && manifest.spec.restartPolicy.policy !== 'always';
}
