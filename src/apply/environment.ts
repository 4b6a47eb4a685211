// The environment a process starts with. Resolved before anything is touched, so a missing secret
// fails the whole apply instead of half of it.
import { readFile } from 'node:fs/promises';
import { parseEnv } from 'node:util';
import type { ProcessManifest } from '../manifest/types.js';
import { runtimeOf } from '../manifest/runtime.js';
import { StartError } from '../errors.js';
import type { RunAs } from './identity.js';

/** The only variables a process inherits from pm: enough to find programs and format text. */
const INHERITED = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ'] as const;

/**
 * The inherited variables, then the user's HOME, USER and LOGNAME when the process runs as another
 * user (`runAs` from resolveRunAs: pm's own HOME must not leak to it), then env files, then env.
 * This is what an exec process, and every process's hooks and probes on the host, run with.
 */
export async function resolveEnvironment(name: string, manifest: ProcessManifest, pmEnv: NodeJS.ProcessEnv, runAs: RunAs = {}): Promise<Record<string, string>> {
  return { ...inheritedEnvironment(pmEnv, runAs), ...(await resolveDeclaredEnvironment(name, manifest, pmEnv)) };
}

/** The variables pm passes down from its own environment, and the identity of the user it runs as. */
export function inheritedEnvironment(pmEnv: NodeJS.ProcessEnv, runAs: RunAs): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED) {
    const value = pmEnv[key];
    if (value !== undefined) env[key] = value;
  }
  if (runAs.identityEnv) {
    const { HOME, USER, LOGNAME } = runAs.identityEnv;
    env.HOME = HOME;
    if (USER !== undefined) env.USER = USER;
    if (LOGNAME !== undefined) env.LOGNAME = LOGNAME;
  }
  return env;
}

/**
 * What the manifest declares, env files then env, and nothing of the host's: what a container gets
 * (the host's PATH and HOME would break the image's own).
 */
export async function resolveDeclaredEnvironment(name: string, manifest: ProcessManifest, pmEnv: NodeJS.ProcessEnv): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  const runtime = runtimeOf(manifest);
  for (const file of runtime.envFiles) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new StartError(name, `cannot read env file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, `create the file or remove it from ${runtime.path}.envFiles`, error);
    }
    Object.assign(env, parseEnv(text));
  }
  for (const [key, value] of Object.entries(runtime.env)) {
    if (typeof value !== 'object') {
      env[key] = String(value);
    } else if ('fromEnv' in value) {
      const found = pmEnv[value.fromEnv];
      if (found === undefined) {
        throw new StartError(name, `env ${key}: pm's environment has no variable ${value.fromEnv}`, `export ${value.fromEnv} before running pm, or change ${runtime.path}.env.${key}`);
      }
      env[key] = found;
    } else {
      try {
        // A trailing newline is an artefact of how secret files are written, not part of the value.
        env[key] = (await readFile(value.fromFile, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new StartError(name, `env ${key}: cannot read ${value.fromFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, `create the file or change ${runtime.path}.env.${key}`, error);
      }
    }
  }
  return env;
}
