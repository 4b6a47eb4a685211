// Human sentences for plan reasons: shared by `pm diff`, `pm apply` and the audit log.
import type { ExitStatus } from '../drivers/driver.js';
import type { Action, Reason } from './types.js';
import type { FieldChange } from './diff.js';

export function describeExit(exit: ExitStatus): string {
  // Unknown code with a signal: pm stopped a process it was not the parent of.
  if (!exit.known) return exit.signal ? `was stopped by pm (${exit.signal})` : 'exited while no pm was watching (exit code unknown)';
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}

export function describeReason(reason: Reason, changes: readonly FieldChange[] = []): string {
  switch (reason.code) {
    case 'NotStarted':
      return reason.lastError ? `its last start failed: ${reason.lastError}` : 'declared but not running yet';
    case 'Exited':
      return `${describeExit(reason.exit)}; restartPolicy ${reason.policy}`;
    case 'SpecChanged':
      return `changed: ${changes.filter((c) => c.needsRestart).map((c) => c.path).join(', ')}`;
    case 'RestartRequested':
      return `restart requested at ${reason.requestedAt}`;
    case 'DependencyRestarted':
      return `dependency ${reason.dependency} restarts and this process declares dependsOn ${reason.dependency} with restart: true`;
    case 'CompletionUnknown':
      return `${reason.dependent} needs it completed, and it ended while no pm was watching (exit code unknown): run it again`;
    case 'ConfigChanged':
      return `changed without restart: ${changes.map((c) => c.path).join(', ')}`;
    case 'Pruned':
      return `no manifest declares it any more (applied from ${reason.source}); --prune`;
    case 'DeleteRequested':
      return 'deletion requested';
  }
}

export function describeAction(action: Action): string {
  return describeReason(action.reason, action.changes);
}

/** `replace spec.exec.env.PORT: "8080" → "8081"` */
export function describeChange(change: FieldChange): string {
  const show = (v: unknown): string => JSON.stringify(v);
  switch (change.op) {
    case 'add':
      return `+ ${change.path}: ${show(change.to)}`;
    case 'remove':
      return `- ${change.path}: ${show(change.from)}`;
    case 'replace':
      return `~ ${change.path}: ${show(change.from)} → ${show(change.to)}`;
  }
}
