// What every driver's process has, wherever its manifest keeps it: the environment's sources (exec,
// docker and a unit pm writes take env and envFiles), the user pm switches to (exec only: systemd
// switches for its units itself) and the folder hooks and probes run in. Code that serves every
// driver reads these; code of one driver reads its own spec through execSpecOf / dockerSpecOf /
// systemdSpecOf.
import { PmError } from '../errors.js';
import type { DockerSpec, EnvValue, ExecSpec, LogSpec, ProcessManifest, SystemdSpec } from './types.js';

export interface RuntimeSpec {
  env: Record<string, EnvValue>;
  envFiles: string[];
  /** Where env and envFiles are in the manifest, for messages. */
  path: 'spec.exec' | 'spec.docker' | 'spec.systemd';
  cwd?: string;
  user?: string;
  group?: string;
  logs?: LogSpec;
}

export function runtimeOf(manifest: ProcessManifest): RuntimeSpec {
  const { spec } = manifest;
  if (spec.driver === 'docker') {
    const docker = dockerSpecOf(manifest);
    return { env: docker.env, envFiles: docker.envFiles, path: 'spec.docker' };
  }
  if (spec.driver === 'systemd') {
    // An existing unit has its own environment; only a unit pm writes takes one from the manifest.
    const systemd = systemdSpecOf(manifest);
    return { env: systemd.env, envFiles: systemd.envFiles, path: 'spec.systemd', ...(systemd.cwd !== undefined && { cwd: systemd.cwd }) };
  }
  const exec = execSpecOf(manifest);
  return {
    env: exec.env,
    envFiles: exec.envFiles,
    path: 'spec.exec',
    ...(exec.cwd !== undefined && { cwd: exec.cwd }),
    ...(exec.user !== undefined && { user: exec.user }),
    ...(exec.group !== undefined && { group: exec.group }),
    ...(exec.logs !== undefined && { logs: exec.logs }),
  };
}

/** spec.exec of an exec process; validation guarantees it (a missing one is a bug in pm). */
export function execSpecOf(manifest: ProcessManifest): ExecSpec {
  const exec = manifest.spec.exec;
  if (manifest.spec.driver !== 'exec' || !exec) throw new PmError('E_INTERNAL', `${manifest.metadata.name}: driver ${manifest.spec.driver} has no spec.exec`);
  return exec;
}

/** spec.docker of a docker process; validation guarantees it. */
export function dockerSpecOf(manifest: ProcessManifest): DockerSpec {
  const docker = manifest.spec.docker;
  if (manifest.spec.driver !== 'docker' || !docker) throw new PmError('E_INTERNAL', `${manifest.metadata.name}: driver ${manifest.spec.driver} has no spec.docker`);
  return docker;
}

/** spec.systemd of a systemd process; validation guarantees it, with exactly one of unit and command. */
export function systemdSpecOf(manifest: ProcessManifest): SystemdSpec {
  const systemd = manifest.spec.systemd;
  if (manifest.spec.driver !== 'systemd' || !systemd) throw new PmError('E_INTERNAL', `${manifest.metadata.name}: driver ${manifest.spec.driver} has no spec.systemd`);
  return systemd;
}

/** What runs: the command of an exec process or owned unit; the image and its command of a container; an existing unit's name. */
export function programArgv(manifest: ProcessManifest): string[] {
  if (manifest.spec.driver === 'docker') {
    const docker = dockerSpecOf(manifest);
    return [docker.image, ...(docker.command ?? [])];
  }
  if (manifest.spec.driver === 'systemd') {
    const systemd = systemdSpecOf(manifest);
    return systemd.command ?? [systemd.unit ?? ''];
  }
  return execSpecOf(manifest).command;
}

/** `{ cwd }` for hooks and probes when the process has a folder of its own (exec), else nothing: they run in pm's. */
export function optionalCwd(manifest: ProcessManifest): { cwd?: string } {
  const { cwd } = runtimeOf(manifest);
  return cwd === undefined ? {} : { cwd };
}
