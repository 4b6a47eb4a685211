// spec.resources as cgroup files, per cgroup version: what pm writes into a process's own cgroup.
import { ioWeightV2, type ResourceLimits } from '../../../manifest/resources.js';

/** The spec.resources fields a cgroup enforces (openFiles is an rlimit: prlimit). */
export type CgroupLimit = 'memory' | 'cpus' | 'pids' | 'ioWeight';
export const CGROUP_LIMITS: readonly CgroupLimit[] = ['memory', 'cpus', 'pids', 'ioWeight'];

/** CFS period, µs: cpus × period is the quota, as docker and systemd (CPUQuota=) set it. */
export const CPU_PERIOD_US = 100_000;
/** The kernel refuses a quota under 1 ms. */
const MIN_CPU_QUOTA_US = 1_000;

/** One file to write: the first of `choices` that exists gets its value; `optional` ones are skipped when none does. */
export interface Write {
  choices: readonly (readonly [file: string, value: string])[];
  optional?: boolean;
}

/** What one limit takes: its controller (as the version names it) and the files, in order. */
export interface Setting {
  limit: CgroupLimit;
  controller: string;
  writes: readonly Write[];
}

/** The limits of `limits` a cgroup must enforce, in CGROUP_LIMITS order. */
export function cgroupLimitsOf(limits: ResourceLimits): CgroupLimit[] {
  const present: Record<CgroupLimit, boolean> = {
    memory: limits.memoryBytes !== undefined,
    cpus: limits.cpus !== undefined,
    pids: limits.pids !== undefined,
    ioWeight: limits.ioWeight !== undefined,
  };
  return CGROUP_LIMITS.filter((limit) => present[limit]);
}

/** The controller that enforces `limit` under cgroup `version`. */
export function controllerOf(limit: CgroupLimit, version: 1 | 2): string {
  switch (limit) {
    case 'memory':
      return 'memory';
    case 'cpus':
      return 'cpu';
    case 'pids':
      return 'pids';
    case 'ioWeight':
      return version === 1 ? 'blkio' : 'io';
  }
}

/**
 * The files for `limits`. memory caps RAM and swap together (memsw / swap.max where the kernel
 * accounts swap), so a process over it is OOM-killed rather than swapped out without end. ioWeight is
 * Docker's 10–1000 scale: v1 blkio weights and v2's io.bfq.weight take it as is, v2's io.weight
 * (1–10000) converted as runc converts it.
 */
export function settingsFor(limits: ResourceLimits, version: 1 | 2): Setting[] {
  const settings: Setting[] = [];
  const one = (file: string, value: string | number, optional = false): Write => ({ choices: [[file, String(value)]], ...(optional && { optional }) });
  const { memoryBytes, cpus, pids, ioWeight } = limits;
  if (memoryBytes !== undefined) {
    const writes = version === 1 ? [one('memory.limit_in_bytes', memoryBytes), one('memory.memsw.limit_in_bytes', memoryBytes, true)] : [one('memory.max', memoryBytes), one('memory.swap.max', 0, true)];
    settings.push({ limit: 'memory', controller: 'memory', writes });
  }
  if (cpus !== undefined) {
    const quota = Math.max(MIN_CPU_QUOTA_US, Math.round(cpus * CPU_PERIOD_US));
    const writes = version === 1 ? [one('cpu.cfs_period_us', CPU_PERIOD_US), one('cpu.cfs_quota_us', quota)] : [one('cpu.max', `${quota} ${CPU_PERIOD_US}`)];
    settings.push({ limit: 'cpus', controller: 'cpu', writes });
  }
  if (pids !== undefined) settings.push({ limit: 'pids', controller: 'pids', writes: [one('pids.max', pids)] });
  if (ioWeight !== undefined) {
    const choices: Write['choices'] =
      version === 1
        ? [
            ['blkio.weight', String(ioWeight)],
            ['blkio.bfq.weight', String(ioWeight)],
          ]
        : [
            ['io.weight', `default ${ioWeightV2(ioWeight)}`],
            ['io.bfq.weight', String(ioWeight)],
          ];
    settings.push({ limit: 'ioWeight', controller: controllerOf('ioWeight', version), writes: [{ choices }] });
  }
  return settings;
}
