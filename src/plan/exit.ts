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

/**
 * Whether the restart policy answers this exit with a restart. An exit no pm witnessed (its code
 * unknown) counts as a failure for a service — a service is meant to run, and after a restart of
 * pm every exit of what it adopted is unwitnessed — and as a possible success for a oneshot job.
 */
export function policyRestarts(manifest: ProcessManifest, exit: ExitStatus | undefined): boolean {
  const policy = manifest.spec.restartPolicy.policy;
  if (policy === 'always') return true;
  if (policy === 'never') return false;
  const verdict = exit ? exitVerdict(exit) : 'unknown';
  return verdict === 'failed' || (verdict === 'unknown' && manifest.spec.type === 'service');
}

/** A restart request (pm restart, resume) not yet handled: newer than the last start, restart and handling. */
export function restartPending(record: { restartRequestedAt?: string; startedAt?: string; restartedAt?: string; restartHandledAt?: string }): boolean {
  const requested = record.restartRequestedAt;
  if (requested === undefined) return false;
  return [record.startedAt, record.restartedAt, record.restartHandledAt].every((t) => t === undefined || requested > t);
}
