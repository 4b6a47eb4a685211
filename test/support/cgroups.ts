// Real cgroups for exec driver tests: whether this machine lets pm write them (the tests skip with
// the reason when it does not, and fail instead under PM_TEST_STRICT=1), where a process's run
// cgroups are, and removing every run cgroup a test caused, pass or fail.
import { readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { hierarchiesOf, parseProcCgroup, readCgroupSource, dirIn } from '../../src/drivers/exec/cgroup/detect.js';
import { Cgroups, SUBTREE } from '../../src/drivers/exec/cgroup/index.js';
import { waitFor } from './wait.js';

const strict = process.env.PM_TEST_STRICT === '1';

/** Why pm cannot put exec processes in cgroups with memory, cpus and pids limits here; undefined when it can. */
async function unavailableReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `cgroups are Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the cgroup tests run pm as root (a delegated cgroup would do for pm, not for these tests)';
  try {
    await new Cgroups().check('probe', { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pids: 20 });
    return undefined;
  } catch (error) {
    return `pm cannot write cgroups here: ${(error as Error).message}`;
  }
}

/**
 * For test options: `{ skip: await cgroupSkip() }`. The reason to skip when pm cannot write cgroups
 * here; false when it can, or under PM_TEST_STRICT=1 (so the tests run and fail with the reason).
 */
export async function cgroupSkip(): Promise<string | false> {
  const reason = await unavailableReason();
  if (reason === undefined) return false;
  // Under cgroup v2, a test runner that shares its cgroup with other processes (a CI shell, other
  // test files) cannot hand controllers down: a property of where the suite runs, not a missing
  // component, so it is a skip even under PM_TEST_STRICT=1.
  if (/holds processes pm did not start/.test(reason)) return reason;
  return strict ? false : reason;
}

let names = 0;

/** A process name unique to this test process and call, so its run cgroups are the test's own. */
export function cgroupProcessName(label: string): string {
  return `cg${process.pid}n${++names}-${label}`;
}

/** The directories of pm's subtree (pm-exec) in each hierarchy that may hold run cgroups. */
export async function subtreeDirs(): Promise<string[]> {
  const source = await readCgroupSource();
  if (!source) return [];
  return hierarchiesOf(source)
    .filter((h) => h.version === 2 || h.controllers.some((c) => ['memory', 'cpu', 'pids', 'blkio'].includes(c)))
    .map((h) => join(h.dir, SUBTREE));
}

/** The run cgroups of process `name` that exist now (any instance). */
export async function runCgroupsOf(name: string): Promise<string[]> {
  const found: string[] = [];
  for (const base of await subtreeDirs()) {
    for (const entry of await readdir(base).catch(() => [] as string[])) if (entry.startsWith(`${name}-`)) found.push(join(base, entry));
  }
  return found;
}

/** The cgroup directories `pid` is in, by controller (`memory`, `cpu,cpuacct`, … ; `` for v2), read from /proc/PID/cgroup. */
export async function cgroupDirsOf(pid: number): Promise<Map<string, string>> {
  const source = await readCgroupSource();
  if (!source) return new Map();
  const hierarchies = hierarchiesOf(source);
  const dirs = new Map<string, string>();
  for (const entry of parseProcCgroup(await readFile(`/proc/${pid}/cgroup`, 'utf8'))) {
    const key = entry.controllers.join(',');
    const hierarchy = hierarchies.find((h) => (entry.id === 0 ? h.version === 2 : h.version === 1 && h.controllers.join(',') === key));
    if (hierarchy) dirs.set(key, dirIn(hierarchy.mount, entry.path));
  }
  return dirs;
}

/** A cgroup file's content, trimmed. */
export async function cgroupFile(dir: string, file: string): Promise<string> {
  return (await readFile(join(dir, file), 'utf8')).trim();
}

/**
 * Removes, when the test ends, every run cgroup of these process names: their processes (the
 * test's own) SIGKILLed first, then the directories, then pm's subtree where it is left empty.
 */
export function removeRunCgroupsAfter(t: TestContext, processNames: () => readonly string[]): void {
  t.after(async () => {
    const dirs = (await Promise.all(processNames().map(runCgroupsOf))).flat();
    for (const dir of dirs) {
      const pids = (await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    await waitFor(
      async () => {
        for (const dir of dirs) await rmdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : error));
        return (await Promise.all(processNames().map(runCgroupsOf))).flat().length === 0;
      },
      { timeoutMs: 5_000, message: 'the test\'s run cgroups to be removed' },
    );
    // Empty and shared: another pm may be making a cgroup in it right now, which wins (EBUSY).
    for (const base of await subtreeDirs()) await rmdir(base).catch(() => undefined);
  });
}
