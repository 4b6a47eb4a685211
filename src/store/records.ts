// What pm remembers about each process it manages: the last-applied manifest and how to find
// the running instance again.
import type { ProcessManifest, ManifestSource } from '../manifest/types.js';
import type { ExitStatus, ProcessHandle } from '../drivers/driver.js';
import type { BackoffState } from '../plan/backoff.js';
import type { BreakerState } from '../plan/breaker.js';

export interface ProcessRecord {
  name: string;
  /** The last-applied manifest, normalized: what the next plan diffs against. */
  manifest: ProcessManifest;
  source: ManifestSource;
  /** ISO time of the apply that last wrote `manifest`. */
  appliedAt: string;
  /** The current or last instance; absent until the first successful start. */
  handle?: ProcessHandle;
  /** ISO time the current or last instance started. */
  startedAt?: string;
  /** How the last instance ended, when pm learned it. */
  lastExit?: ExitStatus;
  /** Successful starts so far; restarts = starts - 1. */
  starts: number;
  /** Why the last start failed before the process ran (bad command, cwd, user); cleared by a successful start. */
  lastError?: string;
  /** manifestDigest of the manifest whose start failed (lastError): its retries back off; a new manifest is tried at once. */
  failedManifest?: string;
  /** ISO time of the newest `pm restart` request; honoured when newer than startedAt and restartedAt. */
  restartRequestedAt?: string;
  /**
   * ISO time of the last deliberate restart (spec change, request, cascade; by stop and start or by
   * the restart script). Dependents that declare `restart: true` restart when it is newer than
   * their own start; a crash recovery does not set it, so it does not cascade.
   */
  restartedAt?: string;
  /** ISO time the newest restart request was handled, also when its restart script failed (then restartedAt stays older). */
  restartHandledAt?: string;
  /** Why the last restart script failed; cleared when one succeeds. */
  restartError?: string;
  /** Restart backoff, counted by the daemon: survives a daemon restart. */
  backoff?: BackoffState;
  /** Circuit breaker, kept by the daemon: survives a daemon restart. */
  breaker?: BreakerState;
  /** Held stopped by `pm pause` until `pm resume`. */
  paused?: { at: string; by: string };
}

export interface AuditEntry {
  time: string;
  /** The OS user that ran the command. */
  actor: string;
  /** The pm command, e.g. "apply". */
  command: string;
  action: string;
  process: string;
  reason: string;
  result: 'ok' | 'failed' | 'skipped';
  durationMs: number;
  error?: string;
}

/** Written before a start: the marker the new instance will carry, and what it is started from. */
export interface StartIntent {
  name: string;
  instance: string;
  manifest: ProcessManifest;
  source: ManifestSource;
  /** ISO time, just before the spawn. */
  at: string;
}
