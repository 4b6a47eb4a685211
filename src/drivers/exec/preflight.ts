// Checks that a start can succeed — the working directory exists, the program is found and
// executable, and every resource limit can be enforced here — before apply stops anything, so a
// typo in a command never costs a running version and a limit is never silently dropped.
import { limitsOf } from '../../manifest/resources.js';
import { execSpecOf } from '../../manifest/runtime.js';
import { SH } from './cgroup/gate.js';
import { cgroupLimitsOf, type Cgroups } from './cgroup/index.js';
import { PRLIMIT } from './spawn.js';
import { access, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { StartError } from '../../errors.js';
import type { StartRequest } from '../driver.js';

export async function checkStartable(request: StartRequest, cgroups: Cgroups): Promise<void> {
  const { name, env } = request;
  const { command, cwd } = execSpecOf(request.manifest);
  const workDir = cwd ?? process.cwd();
  const limits = limitsOf(request.manifest);
  const inCgroup = cgroupLimitsOf(limits);
  const program = command[0];
  const searchPath = env.PATH ?? process.env.PATH ?? '';
  // Every look at the filesystem at once: each is a thread-pool round trip, and on a daemon busy
  // starting a set each round trip waits for its event loop (bench:coldstart). The first problem
  // in the order below is the one reported.
  const [info, prlimit, cgroupsOk, shell, found] = await Promise.all([
    stat(workDir).catch(() => undefined),
    limits.openFiles === undefined ? true : isExecutableFile(PRLIMIT),
    inCgroup.length === 0 ? undefined : cgroups.check(name, limits).then(() => undefined, (error: unknown) => error),
    inCgroup.length === 0 ? true : isExecutableFile(SH),
    findProgram(program, workDir, searchPath),
  ]);
  if (!info?.isDirectory()) {
    throw new StartError(name, `cwd ${workDir} ${info ? 'is not a directory' : 'does not exist'}`, 'create the folder or fix spec.exec.cwd');
  }
  if (!prlimit) {
    throw new StartError(name, `resources.openFiles needs ${PRLIMIT} (util-linux), which is missing`, 'install util-linux, or remove resources.openFiles');
  }
  if (cgroupsOk !== undefined) throw cgroupsOk;
  if (!shell) {
    throw new StartError(name, `${inCgroup.map((l) => `resources.${l}`).join(', ')} need ${SH}, which is missing (it puts the process in its cgroup before the program starts)`, `install a shell as ${SH}, or remove the limits`);
  }
  if (found !== undefined) return;
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    throw new StartError(name, `command "${program}" is not an executable file (looked at ${path})`, 'check the path in spec.exec.command and that the file is executable');
  }
  throw new StartError(name, `command "${program}" not found in PATH`, `PATH is ${searchPath || '(empty)'}; give an absolute path in spec.exec.command or set PATH in spec.exec.env`);
}

/**
 * The absolute path of an executable file `program` names: a path (relative to `workDir`), or a name
 * looked up in `searchPath` as execvp would (the first folder that has it). Undefined when there is
 * none. The folders are looked in at once, not one after another.
 */
export async function findProgram(program: string, workDir: string, searchPath: string): Promise<string | undefined> {
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    return (await isExecutableFile(path)) ? path : undefined;
  }
  const candidates = searchPath
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => resolve(workDir, join(dir, program)));
  const executable = await Promise.all(candidates.map(isExecutableFile));
  return candidates[executable.indexOf(true)];
}

/** A regular file this process may execute. Both questions at once: one thread-pool round trip, not two. */
async function isExecutableFile(path: string): Promise<boolean> {
  const [info, executable] = await Promise.all([
    stat(path).catch(() => undefined),
    access(path, constants.X_OK).then(
      () => true,
      () => false,
    ),
  ]);
  return executable && info?.isFile() === true;
}
