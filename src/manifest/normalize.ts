// Turns validated documents into the DesiredSet: relative paths resolved against the manifest
// file's folder (stdin: the working directory), so two manifests that mean the same thing compare
// equal. Files named here (env files, secrets, logs) are not read or created: that happens at start.
import path from 'node:path';
import type { DesiredProcess, DesiredSet, ExecSpec, ProcessManifest } from './types.js';
import type { ValidDocument } from './semantic.js';

export function normalizeManifest(manifest: ProcessManifest, dir: string): ProcessManifest {
  const { exec, docker, systemd } = manifest.spec;
  const resolve = (p: string): string => path.resolve(dir, p);
  const resolveEnv = (env: ExecSpec['env']): void => {
    for (const value of Object.values(env)) {
      if (value !== null && typeof value === 'object' && 'fromFile' in value) value.fromFile = resolve(value.fromFile);
    }
  };
  if (exec) {
    exec.cwd = resolve(exec.cwd ?? '.');
    exec.envFiles = exec.envFiles.map(resolve);
    if (exec.logs?.stdout !== undefined) exec.logs.stdout = resolve(exec.logs.stdout);
    if (exec.logs?.stderr !== undefined) exec.logs.stderr = resolve(exec.logs.stderr);
    resolveEnv(exec.env);
  }
  if (docker) {
    docker.envFiles = docker.envFiles.map(resolve);
    for (const volume of docker.volumes) volume.source = resolve(volume.source);
    resolveEnv(docker.env);
  }
  // A unit pm writes gets a working directory like an exec process; an existing unit keeps its own.
  if (systemd?.command) {
    systemd.cwd = resolve(systemd.cwd ?? '.');
    systemd.envFiles = systemd.envFiles.map(resolve);
    resolveEnv(systemd.env);
  }
  return manifest;
}

/**
 * Builds the set from valid documents with unique names; `roots` are the resolved -f arguments.
 * Documents in `normalized` are taken as they are (the daemon's cache holds them normalized).
 */
export function buildDesiredSet(valid: readonly ValidDocument[], roots: readonly string[], normalized?: ReadonlySet<ValidDocument['doc']>): DesiredSet {
  const processes: DesiredProcess[] = valid.map(({ doc, manifest }) => ({
    name: manifest.metadata.name,
    manifest: normalized?.has(doc) ? manifest : normalizeManifest(manifest, doc.source.dir),
    source: { file: doc.source.path, line: doc.line },
  }));
  processes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { processes: new Map(processes.map((p) => [p.name, p])), roots: [...roots] };
}
