// spec.resources as numbers drivers use, and which limits each driver can enforce: a limit the
// process's driver cannot enforce is a manifest error (semantic.ts), never silently ignored.
import type { ProcessManifest, Resources } from './types.js';

export interface ResourceLimits {
  memoryBytes?: number;
  cpus?: number;
  ioWeight?: number;
  openFiles?: number;
  pids?: number;
}

const UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** `512Mi` → 536870912; a whole number of bytes stays as it is. The schema has checked the form. */
export function parseBytes(value: number | string): number {
  if (typeof value === 'number') return value;
  const match = /^([0-9]+(?:\.[0-9]+)?)([KMGT]i?)?$/.exec(value);
  if (!match) return Number.NaN;
  return Math.floor(Number(match[1]) * (UNITS[match[2] ?? ''] ?? Number.NaN));
}

export function limitsOf(manifest: ProcessManifest): ResourceLimits {
  const r: Resources = manifest.spec.resources ?? {};
  return {
    ...(r.memory !== undefined && { memoryBytes: parseBytes(r.memory) }),
    ...(r.cpus !== undefined && { cpus: r.cpus }),
    ...(r.ioWeight !== undefined && { ioWeight: r.ioWeight }),
    ...(r.openFiles !== undefined && { openFiles: r.openFiles }),
    ...(r.pids !== undefined && { pids: r.pids }),
  };
}

/**
 * Docker's blkio weight (10–1000, the scale spec.resources.ioWeight shares with docker) on the
 * cgroup v2 io.weight scale (1–10000, which systemd's IOWeight= uses too), converted as runc does,
 * so one manifest value means the same share under every driver.
 */
export function ioWeightV2(weight: number): number {
  return Math.round(1 + ((weight - 10) * 9999) / 990);
}

/**
 * The spec.resources fields each driver enforces. exec: openFiles by setrlimit, the others through a
 * cgroup of its own, which the exec driver checks it can write before a start (drivers/exec/cgroup).
 * systemd: in the unit pm writes; an existing unit (spec.systemd.unit) takes none (semantic.ts).
 */
export const ENFORCED: Record<ProcessManifest['spec']['driver'], readonly (keyof Resources)[]> = {
  exec: ['memory', 'cpus', 'ioWeight', 'openFiles', 'pids'],
  docker: ['memory', 'cpus', 'ioWeight', 'openFiles', 'pids'],
  systemd: ['memory', 'cpus', 'ioWeight', 'openFiles', 'pids'],
};
