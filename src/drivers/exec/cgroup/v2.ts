// cgroup v2's one hard rule for pm: a cgroup with processes in it cannot hand controllers to the
// cgroups below it ("no internal processes"; only the root is exempt). pm sits in its cgroup G, so
// before G can enable memory, cpu, pids or io for G/pm-exec, pm leaves G for the leaf G/pm-main,
// taking along what it started there (exec processes without limits, hooks): systemd's advice for
// a service with Delegate=yes. It does so only when everything in G is pm's; otherwise the start is
// refused with that reason.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SELF_LEAF, type Hierarchy } from './detect.js';
import { exists, isWritable, readPids, readWords, writeValue } from './files.js';
import { readProcStat } from '../proc.js';

/** What G needs before its pm-exec subtree gets `controllers`. */
export interface V2Setup {
  /** pm's cgroup (G), as a directory. */
  group: string;
  /** PIDs to move from G into G/pm-main first: pm and what it started. */
  move: readonly number[];
  /** Controllers to add to G's cgroup.subtree_control. */
  enable: readonly string[];
}

/** Either the setup, or why G cannot have it: per controller (not offered to G) or for all. */
export type V2Plan = { setup: V2Setup } | { missing: readonly string[]; available: readonly string[] } | { problem: string };

export async function planV2(hierarchy: Hierarchy, controllers: readonly string[], self: number): Promise<V2Plan> {
  const group = hierarchy.dir;
  const available = await readWords(join(group, 'cgroup.controllers'));
  const missing = controllers.filter((c) => !available.includes(c));
  if (missing.length > 0) return { missing, available };
  if (!(await isWritable(group))) return { problem: `pm (uid ${process.getuid?.() ?? '?'}) cannot write its cgroup ${group}` };
  const enabled = await readWords(join(group, 'cgroup.subtree_control'));
  const enable = controllers.filter((c) => !enabled.includes(c));
  // The root has no cgroup.type, and is exempt from the rule.
  const isRoot = !(await exists(join(group, 'cgroup.type')));
  if (enable.length === 0 || isRoot) return { setup: { group, move: [], enable } };
  const members = await readPids(join(group, 'cgroup.procs'));
  const strangers: number[] = [];
  for (const pid of members) if (pid !== self && !(await descendsFrom(pid, self))) strangers.push(pid);
  if (strangers.length > 0) {
    return {
      problem: `pm's cgroup ${hierarchy.path} also holds processes pm did not start (pid ${strangers.slice(0, 5).join(', ')}${strangers.length > 5 ? ', …' : ''}), and under cgroup v2 a cgroup with processes in it cannot hand controllers to cgroups below it`,
    };
  }
  return { setup: { group, move: members, enable } };
}

/** Carries out a setup: pm (and what it started) into G/pm-main, then the controllers for G's children. */
export async function applyV2Setup(setup: V2Setup): Promise<void> {
  if (setup.move.length > 0) {
    const leaf = join(setup.group, SELF_LEAF);
    await mkdir(leaf, { recursive: true });
    for (const pid of setup.move) {
      try {
        await writeValue(join(leaf, 'cgroup.procs'), String(pid));
      } catch (err) {
        // A member that ended meanwhile is no obstacle.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }
  await enableControllers(setup.group, setup.enable);
}

/** Adds `controllers` to dir's cgroup.subtree_control (those not there yet), in one write. */
export async function enableControllers(dir: string, controllers: readonly string[]): Promise<void> {
  const enabled = await readWords(join(dir, 'cgroup.subtree_control'));
  const enable = controllers.filter((c) => !enabled.includes(c));
  if (enable.length > 0) await writeValue(join(dir, 'cgroup.subtree_control'), enable.map((c) => `+${c}`).join(' '));
}

/** True when `ancestor` is on pid's parent chain (read from /proc). */
async function descendsFrom(pid: number, ancestor: number): Promise<boolean> {
  let current = pid;
  for (let depth = 0; depth < 64 && current > 1; depth++) {
    const stat = await readProcStat(current).catch(() => undefined);
    if (stat === undefined) return false;
    if (stat.ppid === ancestor) return true;
    current = stat.ppid;
  }
  return false;
}
