// What pm remembers about each process it manages: the last-applied manifest and how to find
// the running instance again.
import type { ProcessManifest, ManifestSource } from '../manifest/types.js';
import type { ExitStatus, ProcessHandle } from '../drivers/driver.js';

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
  /** ISO time of the newest `pm restart` request; honoured when newer than startedAt. */
  restartRequestedAt?: string;
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
