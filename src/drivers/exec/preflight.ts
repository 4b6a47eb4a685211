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
  const info = await stat(workDir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new StartError(name, `cwd ${workDir} ${info ? 'is not a directory' : 'does not exist'}`, 'create the folder or fix spec.exec.cwd');
  }
  const limits = limitsOf(request.manifest);
  if (limits.openFiles !== undefined && !(await isExecutableFile(PRLIMIT))) {
    throw new StartError(name, `resources.openFiles needs ${PRLIMIT} (util-linux), which is missing`, 'install util-linux, or remove resources.openFiles');
  }
  const inCgroup = cgroupLimitsOf(limits);
  if (inCgroup.length > 0) {
    await cgroups.check(name, limits);
    if (!(await isExecutableFile(SH))) {
      throw new StartError(name, `${inCgroup.map((l) => `resources.${l}`).join(', ')} need ${SH}, which is missing (it puts the process in its cgroup before the program starts)`, `install a shell as ${SH}, or remove the limits`);
    }
  }
  const program = command[0];
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    if (!(await isExecutableFile(path))) {
      throw new StartError(name, `command "${program}" is not an executable file (looked at ${path})`, 'check the path in spec.exec.command and that the file is executable');
    }
    return;
  }
  if (!(await findProgram(program, workDir, env.PATH ?? process.env.PATH ?? ''))) {
    const searchPath = env.PATH ?? process.env.PATH ?? '';
    throw new StartError(name, `command "${program}" not found in PATH`, `PATH is ${searchPath || '(empty)'}; give an absolute path in spec.exec.command or set PATH in spec.exec.env`);
  }
}

/**
 * The absolute path of an executable file `program` names: a path (relative to `workDir`), or a name
 * looked up in `searchPath` as execvp would. Undefined when there is none.
 */
export async function findProgram(program: string, workDir: string, searchPath: string): Promise<string | undefined> {
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(workDir, program);
    return (await isExecutableFile(path)) ? path : undefined;
  }
  for (const dir of searchPath.split(delimiter)) {
    if (dir !== '' && (await isExecutableFile(resolve(workDir, join(dir, program))))) return resolve(workDir, join(dir, program));
  }
  return undefined;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return false;
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
