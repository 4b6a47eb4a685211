// Step 1 of an apply: resolve every environment, secret and user switch, and ask the driver
// whether each start can succeed, before anything is touched. Any problem fails the whole apply.
import type { Driver } from '../drivers/driver.js';
import { runtimeOf } from '../manifest/runtime.js';
import type { DesiredProcess, DesiredSet } from '../manifest/types.js';
import type { Plan } from '../plan/types.js';
import { ExitCode, PmError } from '../errors.js';
import { inheritedEnvironment, resolveDeclaredEnvironment, resolveEnvironment } from './environment.js';
import { resolveRunAs, type RunAs } from './identity.js';

export interface Prepared {
  /** For the process (exec) and its hooks and probes on the host. */
  env: Record<string, string>;
  /** Only what the manifest declares: what a container gets. */
  declaredEnv: Record<string, string>;
  runAs: RunAs;
  logs: { stdout: string; stderr: string };
  /** The file behind a notify startup probe's descriptor; absent without one. */
  readyFile?: string;
}

/** Where the state directory keeps a process's files. */
export interface StatePaths {
  defaultLogPath(name: string): string;
  readyPath(name: string): string;
}

export class PreflightError extends PmError {
  constructor(readonly problems: string[]) {
    super('E_PREFLIGHT', `cannot apply; nothing was changed:\n  ${problems.join('\n  ')}`, { exitCode: ExitCode.invalid });
  }
}

/** Where a process's output goes: the manifest's choice, else the state directory's default. */
export function logPaths(proc: DesiredProcess, defaultLogPath: (name: string) => string): { stdout: string; stderr: string } {
  const { logs } = runtimeOf(proc.manifest);
  const stdout = logs?.stdout ?? defaultLogPath(proc.name);
  return { stdout, stderr: logs?.stderr ?? stdout };
}

export async function preflight(
  plan: Plan,
  desired: DesiredSet,
  driver: Driver,
  env: NodeJS.ProcessEnv,
  paths: StatePaths,
): Promise<Map<string, Prepared>> {
  const prepared = new Map<string, Prepared>();
  const problems: string[] = [];
  await Promise.all(
    plan.actions
      .filter((a) => a.kind === 'start' || a.kind === 'restart')
      .map(async (action) => {
        const proc = desired.processes.get(action.name);
        if (!proc) return;
        try {
          prepared.set(proc.name, await prepareStart(proc, driver, env, paths));
        } catch (error) {
          problems.push(error instanceof PmError && error.hint ? `${error.message} (${error.hint})` : (error as Error).message);
        }
      }),
  );
  if (problems.length > 0) throw new PreflightError(problems.sort());
  return prepared;
}

/** Resolves one process's environment, secrets and user, and asks the driver whether it can start. */
export async function prepareStart(
  proc: DesiredProcess,
  driver: Driver,
  env: NodeJS.ProcessEnv,
  paths: StatePaths,
  options: { check: boolean } = { check: true },
): Promise<Prepared> {
  const runAs = await resolveRunAs(proc.name, proc.manifest);
  const declaredEnv = await resolveDeclaredEnvironment(proc.name, proc.manifest, env);
  const childEnv = { ...inheritedEnvironment(env, runAs), ...declaredEnv };
  const entry: Prepared = { env: childEnv, declaredEnv, runAs, logs: logPaths(proc, (name) => paths.defaultLogPath(name)), ...(proc.manifest.spec.probes.startup?.notify && { readyFile: paths.readyPath(proc.name) }) };
  if (options.check) await driver.check({ name: proc.name, manifest: proc.manifest, env: entry.env, declaredEnv, logs: entry.logs });
  return entry;
}

/**
 * The environment and user an exec probe of `proc` runs with, for a process this command did not
 * start (a dependency, `pm get`): resolved as for a start; when that fails (a secret missing from
 * this shell), PATH alone, as the probe may still pass.
 */
export async function probeIdentity(proc: DesiredProcess, env: NodeJS.ProcessEnv): Promise<{ env: Record<string, string>; uid?: number; gid?: number }> {
  try {
    const runAs = await resolveRunAs(proc.name, proc.manifest);
    const resolved = await resolveEnvironment(proc.name, proc.manifest, env, runAs);
    return { env: resolved, ...(runAs.uid !== undefined && { uid: runAs.uid }), ...(runAs.gid !== undefined && { gid: runAs.gid }) };
  } catch {
    return { env: { PATH: env.PATH ?? '' } };
  }
}
