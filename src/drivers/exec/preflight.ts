// Checks that a start can succeed — the working directory exists, the program is found and
// executable, and every resource limit can be enforced here — before apply stops anything, so a
// typo in a command never costs a running version and a limit is never silently dropped.
//
// The stats are synchronous: each takes microseconds on a local disk, where an awaited one waits
// for the thread pool and then for the event loop, 1–2 ms apiece in a daemon starting many
// processes (bench:coldstart). A program or cwd on a filesystem that hangs would hold the daemon
// at the spawn anyway: posix_spawn's chdir and exec are synchronous.
import { limitsOf } from '../../manifest/resources.js';
import { execSpecOf } from '../../manifest/runtime.js';
import { SH } from './cgroup/gate.js';
import { cgroupLimitsOf, type Cgroups } from './cgroup/index.js';
import { PRLIMIT } from './spawn.js';
import { accessSync, constants, statSync, type Stats } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { StartError } from '../../errors.js';
import type { StartRequest } from '../driver.js';

export async function checkStartable(request: StartRequest, cgroups: Cgroups): Promise<void> {
  const { name, env } = request;
  const { command, cwd } = execSpecOf(request.manifest);
  const workDir = cwd ?? process.cwd();
  const info = statOrUndefined(workDir);
  if (!info?.isDirectory()) {
    throw new StartError(name, `cwd ${workDir} ${info ? 'is not a directory' : 'does not exist'}`, 'create the folder or fix spec.exec.cwd');
  }
  const limits = limitsOf(request.manifest);
  if (limits.openFiles !== undefined && !isExecutableFile(PRLIMIT)) {
    throw new StartError(name, `resources.openFiles needs ${PRLIMIT} (util-linux), which is missing`, 'install util-linux, or remove resources.openFiles');
  }
  const inCgroup = cgroupLimitsOf(limits);
  if (inCgroup.length > 0) {
    await cgroups.check(name, limits);
    if (!isExecutableFile(SH)) {
      throw new StartError(name, `${inCgroup.map((l) => `resources.${l}`).join(', ')} need ${SH}, which is missing (it puts the process in its cgroup before the program starts)`, `install a shell as ${SH}, or remove the limits`);
    }
  }
  const program = command[0];
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    if (!isExecutableFile(path)) {
      throw new StartError(name, `command "${program}" is not an executable file (looked at ${path})`, 'check the path in spec.exec.command and that the file is executable');
    }
    return;
  }
  if (!findProgram(program, workDir, env.PATH ?? process.env.PATH ?? '')) {
    const searchPath = env.PATH ?? process.env.PATH ?? '';
    throw new StartError(name, `command "${program}" not found in PATH`, `PATH is ${searchPath || '(empty)'}; give an absolute path in spec.exec.command or set PATH in spec.exec.env`);
  }
}

/**
 * The absolute path of an executable file `program` names: a path (relative to `workDir`), or a name
 * looked up in `searchPath` as execvp would. Undefined when there is none.
 */
export function findProgram(program: string, workDir: string, searchPath: string): string | undefined {
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    return isExecutableFile(path) ? path : undefined;
  }
  for (const dir of searchPath.split(delimiter)) {
    if (dir !== '' && isExecutableFile(resolve(workDir, join(dir, program)))) return resolve(workDir, join(dir, program));
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
