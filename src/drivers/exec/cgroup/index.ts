// A cgroup of its own for each run of an exec process with memory, cpus, pids or ioWeight limits:
// <pm's cgroup>/pm-exec/<process>-<instance> in each hierarchy a limit needs (cgroup v1: memory,
// cpu, pids, blkio, each its own; v2: one). The run joins it before its first instruction (see
// gate.ts) and it is removed once the run has ended. Whether this machine lets pm do it is asked
// first (check), so apply refuses a limit it cannot enforce before it changes anything.
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StartError } from '../../../errors.js';
import type { ResourceLimits } from '../../../manifest/resources.js';
import { dirIn, hierarchiesOf, parseProcCgroup, readCgroupSource, type CgroupSource, type Hierarchy } from './detect.js';
import { exists, isWritable, removeCgroup, writeValue } from './files.js';
import { cgroupLimitsOf, controllerOf, settingsFor, type CgroupLimit, type Setting, type Write } from './settings.js';
import { applyV2Setup, enableControllers, planV2, type V2Setup } from './v2.js';

export { cgroupLimitsOf, type CgroupLimit } from './settings.js';

/** The folder under pm's cgroup that holds one cgroup per run. */
export const SUBTREE = 'pm-exec';
/** v1 controllers whose hierarchies hold runs' cgroups. */
const V1_CONTROLLERS = ['memory', 'cpu', 'pids', 'blkio'];

/** The cgroups of one run, one directory per hierarchy. */
export class RunCgroup {
  readonly dirs: readonly string[];

  constructor(dirs: readonly string[]) {
    this.dirs = dirs;
  }

  /** Moves `pid` into every one of them (the caller holds the process back until this is done). */
  async join(pid: number): Promise<void> {
    for (const dir of this.dirs) await writeValue(join(dir, 'cgroup.procs'), String(pid));
  }

  /** Removes the empty ones; true when none is left. Safe to call again. */
  async remove(): Promise<boolean> {
    const removed = await Promise.all(this.dirs.map((dir) => removeCgroup(dir)));
    return removed.every(Boolean);
  }
}

/** Why some limits cannot be enforced here, and what the user can do about it. */
interface Problem {
  limits: CgroupLimit[];
  detail: string;
  /** access: pm may not write a hierarchy with the controller; io: no I/O scheduler offers weights. */
  fix: 'access' | 'io';
}

/** Where a run's cgroup goes in one hierarchy, and what is written there. */
interface Placement {
  hierarchy: Hierarchy;
  settings: Setting[];
  v2?: V2Setup;
}

export interface CgroupsOptions {
  /** Stands in for /proc/self/cgroup and /proc/self/mountinfo (a test's fake hierarchy). */
  source?: () => Promise<CgroupSource | undefined>;
  /** pm's own PID, as the hierarchy's cgroup.procs files name it. */
  pid?: number;
}

export class Cgroups {
  readonly #source: () => Promise<CgroupSource | undefined>;
  readonly #pid: number;
  /** The hierarchies, read once: pm's cgroup does not change under it (its own v2 move keeps the path, see detect.ts). */
  #hierarchies: Promise<Hierarchy[]> | undefined;

  constructor(options: CgroupsOptions = {}) {
    this.#source = options.source ?? readCgroupSource;
    this.#pid = options.pid ?? process.pid;
  }

  /** Rejects with a StartError naming each limit of `limits` this machine does not let pm enforce. Changes nothing. */
  async check(name: string, limits: ResourceLimits): Promise<void> {
    const { problems } = await this.#plan(limits);
    if (problems.length > 0) throw startError(name, problems);
  }

  /**
   * Makes the run's cgroups, with the limits written; undefined when `limits` needs none. Rejects
   * with a StartError, leaving nothing behind, when a limit cannot be enforced.
   */
  async create(name: string, instance: string, limits: ResourceLimits): Promise<RunCgroup | undefined> {
    if (cgroupLimitsOf(limits).length === 0) return undefined;
    if (!/^[A-Za-z0-9]{1,64}$/.test(instance)) throw new TypeError(`instance marker ${JSON.stringify(instance)}: letters and digits only`);
    const { placements, problems } = await this.#plan(limits);
    if (problems.length > 0) throw startError(name, problems);
    const made: string[] = [];
    try {
      for (const placement of placements) {
        const base = join(placement.hierarchy.dir, SUBTREE);
        const controllers = placement.settings.map((s) => s.controller);
        if (placement.v2) await applyV2Setup(placement.v2);
        const dir = join(base, `${name}-${instance}`);
        // An existing one is this very run's, from a start that failed before its spawn: reused.
        await makeLeaf(base, dir, placement.hierarchy.version === 2 ? controllers : []);
        made.push(dir);
        for (const setting of placement.settings) await writeSetting(name, dir, setting);
      }
    } catch (err) {
      await new RunCgroup(made).remove();
      if (err instanceof StartError) throw err;
      const all: Problem = { limits: cgroupLimitsOf(limits), detail: '', fix: 'access' };
      throw new StartError(name, `cannot set up its cgroup: ${(err as Error).message}`, fixFor(all), err);
    }
    return new RunCgroup(made);
  }

  /** The cgroups of the run with this instance marker that exist under pm's subtree, if any. */
  async ofInstance(instance: string): Promise<RunCgroup | undefined> {
    const dirs: string[] = [];
    for (const base of await this.#bases()) {
      for (const entry of await readdir(base).catch(() => [] as string[])) if (entry.endsWith(`-${instance}`)) dirs.push(join(base, entry));
    }
    return dirs.length > 0 ? new RunCgroup(dirs) : undefined;
  }

  /** The cgroups of run `instance` that process `pid` is in now (wherever the pm that made them sat), from /proc/PID/cgroup. */
  async ofProcess(pid: number, instance: string): Promise<RunCgroup | undefined> {
    const text = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    const mine = await this.#hierarchiesOnce();
    const dirs: string[] = [];
    for (const entry of parseProcCgroup(text)) {
      const parent = entry.path.slice(0, entry.path.lastIndexOf('/'));
      if (!parent.endsWith(`/${SUBTREE}`) || !entry.path.endsWith(`-${instance}`)) continue;
      const version = entry.id === 0 && entry.controllers.length === 0 ? 2 : 1;
      const hierarchy = mine.find((h) => h.version === version && (version === 2 || h.controllers.every((c) => entry.controllers.includes(c))));
      if (hierarchy) dirs.push(dirIn(hierarchy.mount, entry.path));
    }
    return dirs.length > 0 ? new RunCgroup(dirs) : undefined;
  }

  /** Removes the empty cgroups of `name`'s earlier runs (one a crashed pm left behind); runs with members are kept. */
  async sweep(name: string): Promise<void> {
    const ours = new RegExp(`^${name.replace(/[^A-Za-z0-9]/g, '\\$&')}-[A-Za-z0-9]+$`);
    for (const base of await this.#bases()) {
      const entries = (await readdir(base).catch(() => [] as string[])).filter((e) => ours.test(e));
      await Promise.all(entries.map((entry) => removeCgroup(join(base, entry))));
    }
  }

  #hierarchiesOnce(): Promise<Hierarchy[]> {
    this.#hierarchies ??= this.#source().then((source) => (source ? hierarchiesOf(source) : []));
    return this.#hierarchies;
  }

  /** pm's subtree in each hierarchy that may hold runs' cgroups. */
  async #bases(): Promise<string[]> {
    const hierarchies = await this.#hierarchiesOnce();
    return hierarchies.filter((h) => h.version === 2 || h.controllers.some((c) => V1_CONTROLLERS.includes(c))).map((h) => join(h.dir, SUBTREE));
  }

  /** Where each limit's cgroup goes, or why it cannot. Reads only. */
  async #plan(limits: ResourceLimits): Promise<{ placements: Placement[]; problems: Problem[] }> {
    const wanted = cgroupLimitsOf(limits);
    if (wanted.length === 0) return { placements: [], problems: [] };
    const hierarchies = await this.#hierarchiesOnce();
    if (hierarchies.length === 0) {
      const detail = process.platform === 'linux' ? 'pm finds no cgroup hierarchy (/proc/self/cgroup, /proc/self/mountinfo)' : `cgroups are Linux only (this is ${process.platform})`;
      return { placements: [], problems: [{ limits: wanted, detail, fix: 'access' }] };
    }
    const problems: Problem[] = [];
    const byHierarchy = new Map<Hierarchy, Setting[]>();
    const unified = hierarchies.find((h) => h.version === 2);
    for (const limit of wanted) {
      // A controller bound to a v1 hierarchy is not available in v2 (a hybrid host): v1 first.
      const hierarchy = hierarchies.find((h) => h.version === 1 && h.controllers.includes(controllerOf(limit, 1))) ?? unified;
      if (!hierarchy) {
        problems.push({ limits: [limit], detail: `no cgroup hierarchy here has the ${controllerOf(limit, 1)} (v1) or ${controllerOf(limit, 2)} (v2) controller`, fix: 'access' });
        continue;
      }
      const setting = settingsFor(limits, hierarchy.version).find((s) => s.limit === limit);
      if (setting) byHierarchy.set(hierarchy, [...(byHierarchy.get(hierarchy) ?? []), setting]);
    }
    const placements: Placement[] = [];
    for (const [hierarchy, settings] of byHierarchy) {
      const found = hierarchy.version === 1 ? await checkV1(hierarchy, settings) : await this.#checkV2(hierarchy, settings);
      if ('problems' in found) problems.push(...found.problems);
      else placements.push(found.placement);
    }
    return { placements, problems: mergeProblems(problems) };
  }

  async #checkV2(hierarchy: Hierarchy, settings: Setting[]): Promise<{ placement: Placement } | { problems: Problem[] }> {
    const plan = await planV2(
      hierarchy,
      settings.map((s) => s.controller),
      this.#pid,
    );
    if ('setup' in plan) {
      // Below the root, pm's cgroup shows the files a new cgroup gets (io.weight needs a scheduler offering it).
      const problems: Problem[] = [];
      if (await exists(join(hierarchy.dir, 'cgroup.type'))) problems.push(...(await missingChoices(hierarchy.dir, settings)));
      return problems.length > 0 ? { problems } : { placement: { hierarchy, settings, v2: plan.setup } };
    }
    if ('problem' in plan) return { problems: [{ limits: settings.map((s) => s.limit), detail: plan.problem, fix: 'access' }] };
    const offered = plan.available.length > 0 ? plan.available.join(' ') : 'none';
    return {
      problems: settings
        .filter((s) => plan.missing.includes(s.controller))
        .map((s) => ({ limits: [s.limit], detail: `the ${s.controller} controller is not enabled for pm's cgroup ${hierarchy.path} (cgroup v2; its cgroup.controllers: ${offered})`, fix: 'access' })),
    };
  }
}

/** What the user can do, for the limits a problem names. */
function fixFor(problem: Problem): string {
  const fields = problem.limits.map((l) => `resources.${l}`).join(', ');
  if (problem.fix === 'io') return `give the disk an I/O scheduler with weights (bfq), or remove ${fields}`;
  return `run pm as root, or in a cgroup delegated to it (a systemd unit with Delegate=yes); or run the process with driver docker or systemd; or remove ${fields}`;
}

/** A v1 hierarchy: pm must be able to write its cgroup there (and the subtree, when it exists). */
async function checkV1(hierarchy: Hierarchy, settings: Setting[]): Promise<{ placement: Placement } | { problems: Problem[] }> {
  const base = join(hierarchy.dir, SUBTREE);
  const target = (await exists(base)) ? base : hierarchy.dir;
  if (!(await isWritable(target))) {
    return { problems: [{ limits: settings.map((s) => s.limit), detail: `pm (uid ${process.getuid?.() ?? '?'}) cannot write ${target} (cgroup v1 ${hierarchy.controllers.join(',')})`, fix: 'access' }] };
  }
  // The root shows no weight file even when a scheduler offers one: its bfq (or cfq) files say so there.
  const weightAtRoot = hierarchy.path === '/' && (await readdir(hierarchy.dir).catch(() => [] as string[])).some((f) => f.startsWith('blkio.bfq.') || f === 'blkio.weight');
  const problems = weightAtRoot ? [] : await missingChoices(hierarchy.dir, settings);
  return problems.length > 0 ? { problems } : { placement: { hierarchy, settings } };
}

/** Settings with a choice of files (a proportional I/O weight) none of which `dir` has. */
async function missingChoices(dir: string, settings: readonly Setting[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const setting of settings) {
    for (const write of setting.writes) {
      if (!write.optional && write.choices.length > 1 && !(await firstPresent(dir, write.choices))) problems.push(missingFiles(setting, write, dir));
    }
  }
  return problems;
}

/**
 * Makes the subtree (v2: handing it `controllers`) and the run's cgroup in it. Once more if the
 * subtree vanished in between: another pm removed it, empty, at that moment.
 */
async function makeLeaf(base: string, dir: string, controllers: readonly string[]): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(base, { recursive: true });
      if (controllers.length > 0) await enableControllers(base, controllers);
      await mkdir(dir, { recursive: true });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw err;
    }
  }
}

async function writeSetting(name: string, dir: string, setting: Setting): Promise<void> {
  for (const write of setting.writes) {
    const choice = await firstPresent(dir, write.choices);
    if (choice) await writeValue(join(dir, choice[0]), choice[1]);
    else if (!write.optional) throw startError(name, [missingFiles(setting, write, dir)]);
  }
}

async function firstPresent(dir: string, choices: Write['choices']): Promise<readonly [string, string] | undefined> {
  for (const choice of choices) if (await exists(join(dir, choice[0]))) return choice;
  return undefined;
}

function missingFiles(setting: Setting, write: Write, dir: string): Problem {
  const detail = `${dir} has no ${write.choices.map(([file]) => file).join(' nor ')}`;
  return setting.limit === 'ioWeight'
    ? { limits: ['ioWeight'], detail: `${detail} (no I/O scheduler with proportional weights on this machine's disks)`, fix: 'io' }
    : { limits: [setting.limit], detail: `${detail} (the ${setting.controller} controller is not available there)`, fix: 'access' };
}

/** Limits with the same reason and fix become one problem. */
function mergeProblems(problems: Problem[]): Problem[] {
  const merged = new Map<string, Problem>();
  for (const problem of problems) {
    const key = `${problem.fix}\n${problem.detail}`;
    const known = merged.get(key);
    if (known) known.limits.push(...problem.limits.filter((l) => !known.limits.includes(l)));
    else merged.set(key, { ...problem, limits: [...problem.limits] });
  }
  return [...merged.values()];
}

function startError(name: string, problems: Problem[]): StartError {
  const text = problems.map((p) => `${p.limits.map((l) => `resources.${l}`).join(', ')} cannot be enforced: ${p.detail}`).join('; ');
  // One fix per kind, naming every limit it concerns.
  const kinds = [...new Set(problems.map((p) => p.fix))];
  const fixes = kinds.map((fix) => fixFor({ fix, detail: '', limits: [...new Set(problems.filter((p) => p.fix === fix).flatMap((p) => p.limits))] })).join('; ');
  return new StartError(name, text, fixes);
}
