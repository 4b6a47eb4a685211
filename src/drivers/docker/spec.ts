// What the docker driver is asked to run (its own input type until it is wired to the manifest),
// checked before anything reaches the engine, its digest (the pm.spec label), and the create body.
import { createHash } from 'node:crypto';
import { isAbsolute } from 'node:path';
import { invalidSpec } from './errors.js';
import { EVENT_ATTRIBUTES, Label, RESERVED_PREFIX, type Labels } from './labels.js';

export interface PortBinding {
  container: number;
  /** Host port; absent: the engine picks a free one. */
  host?: number;
  /** Host address to bind; absent: every address. */
  hostIp?: string;
  protocol: 'tcp' | 'udp';
}

export interface BindMount {
  /** Absolute host path; it must exist (bind mounts never create it). */
  source: string;
  /** Absolute path in the container. */
  target: string;
  readOnly: boolean;
}

export interface ContainerResources {
  memoryBytes?: number;
  /** Fractional CPUs (NanoCpus); at most the engine's CPU count. */
  cpus?: number;
  /** Block I/O weight, Docker's range 10–1000 (BlkioWeight). */
  ioWeight?: number;
  /** Open files (soft and hard ulimit). */
  nofile?: number;
  /** Tasks in the container (PidsLimit). */
  pids?: number;
}

export interface ContainerSpec {
  /** pm process name (DNS-1123 label); the container is named pm-<process>. */
  process: string;
  image: string;
  /** Cmd; the image's entrypoint stays. Absent: the image's Cmd. */
  command?: string[];
  /** Resolved environment; may hold secrets: it goes only into the request body. */
  env: Record<string, string>;
  /** User labels; keys starting with pm. are pm's own and refused. */
  labels: Labels;
  ports: PortBinding[];
  volumes: BindMount[];
  /** NetworkMode: bridge, host, none, or a network name. */
  network?: string;
  stopSignal: NodeJS.Signals;
  resources?: ContainerResources;
}

const PROCESS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** An image reference as the engine accepts it in a path (no '?', '#', '%', spaces, no '..'). */
const IMAGE_REF = /^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The engine refuses smaller memory limits ("Minimum memory limit allowed is 6MB"). */
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

export function containerName(process: string): string {
  return `pm-${process}`;
}

/** Throws E_DOCKER_SPEC_INVALID naming the first problem. Values of env are never quoted. */
export function validateSpec(spec: ContainerSpec): void {
  const name = spec.process;
  if (typeof name !== 'string' || name.length > 63 || !PROCESS_NAME.test(name)) {
    throw invalidSpec(String(name), `process name ${JSON.stringify(name)} is not a DNS-1123 label (lowercase letters, digits, '-', at most 63)`);
  }
  const fail = (problem: string): never => {
    throw invalidSpec(name, problem);
  };
  if (!isImageRef(spec.image)) fail(`image ${JSON.stringify(spec.image)} is not an image reference`);
  if (spec.command !== undefined && (spec.command.length === 0 || spec.command.some((a) => typeof a !== 'string' || a.includes('\0')))) {
    fail('command must be a non-empty list of strings without NUL bytes');
  }
  for (const [key, value] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(key)) fail(`environment variable name ${JSON.stringify(key)} is invalid`);
    if (typeof value !== 'string' || value.includes('\0')) fail(`the value of environment variable ${key} must be a string without NUL bytes`);
  }
  for (const [key, value] of Object.entries(spec.labels)) {
    if (key.toLowerCase().startsWith(RESERVED_PREFIX)) fail(`label ${JSON.stringify(key)}: keys starting with ${RESERVED_PREFIX} are pm's own`);
    if (EVENT_ATTRIBUTES.includes(key)) fail(`label ${JSON.stringify(key)} would hide the engine's event attribute of that name`);
    if (key === '' || typeof value !== 'string') fail(`label ${JSON.stringify(key)} must have a non-empty key and a string value`);
  }
  for (const port of spec.ports) {
    if (!isPort(port.container)) fail(`container port ${port.container} is not a port number`);
    if (port.host !== undefined && !isPort(port.host)) fail(`host port ${port.host} is not a port number`);
    if (port.protocol !== 'tcp' && port.protocol !== 'udp') fail(`port protocol ${JSON.stringify(port.protocol)} is not tcp or udp`);
  }
  for (const volume of spec.volumes) {
    if (!isAbsolute(volume.source) || !isAbsolute(volume.target)) fail(`volume ${volume.source}:${volume.target}: both paths must be absolute`);
  }
  if (!/^SIG[A-Z0-9]+$/.test(spec.stopSignal)) fail(`stop signal ${JSON.stringify(spec.stopSignal)} is not a signal name`);
  const r = spec.resources ?? {};
  if (r.memoryBytes !== undefined && !(Number.isInteger(r.memoryBytes) && r.memoryBytes >= MIN_MEMORY_BYTES)) fail(`memoryBytes ${r.memoryBytes}: at least ${MIN_MEMORY_BYTES} (6 MiB), a whole number`);
  if (r.cpus !== undefined && !(r.cpus >= 0.01 && Number.isFinite(r.cpus))) fail(`cpus ${r.cpus}: at least 0.01`);
  if (r.ioWeight !== undefined && !(Number.isInteger(r.ioWeight) && r.ioWeight >= 10 && r.ioWeight <= 1000)) fail(`ioWeight ${r.ioWeight}: a whole number from 10 to 1000`);
  if (r.nofile !== undefined && !(Number.isInteger(r.nofile) && r.nofile >= 1)) fail(`nofile ${r.nofile}: a whole number of at least 1`);
  if (r.pids !== undefined && !(Number.isInteger(r.pids) && r.pids >= 1)) fail(`pids ${r.pids}: a whole number of at least 1`);
}

/**
 * A stable digest of everything that shapes the container (the pm.spec label): equal specs give
 * equal digests whatever the key order. It covers the environment's values; the engine shows those
 * to anyone who may inspect the container anyway. pm does not compare it yet: what it recreates on
 * is a change of the manifest it recorded, so a secret rotated in its file takes effect at the
 * next start (pm restart), as for exec processes. The label lets people and tools see which
 * containers were made from the same spec.
 */
export function specDigest(spec: ContainerSpec): string {
  return createHash('sha256').update(`pm-docker-spec/1\n${canonicalJson(spec)}`).digest('hex').slice(0, 32);
}

/** The create body: Config with HostConfig inside, labels included. */
export function createBody(spec: ContainerSpec, labels: Labels): object {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of spec.ports) {
    const key = `${port.container}/${port.protocol}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: port.hostIp ?? '', HostPort: port.host === undefined ? '' : String(port.host) });
  }
  const r = spec.resources ?? {};
  return {
    Image: spec.image,
    ...(spec.command && { Cmd: spec.command }),
    Env: Object.entries(spec.env)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => `${key}=${value}`),
    Labels: labels,
    StopSignal: spec.stopSignal,
    ExposedPorts: exposed,
    HostConfig: {
      // pm supervises: the engine must never restart the container behind its back.
      RestartPolicy: { Name: 'no' },
      PortBindings: bindings,
      // Mounts, not Binds: a missing source is an error, not a folder created as root.
      Mounts: spec.volumes.map((v) => ({ Type: 'bind', Source: v.source, Target: v.target, ReadOnly: v.readOnly })),
      ...(spec.network !== undefined && { NetworkMode: spec.network }),
      ...(r.memoryBytes !== undefined && { Memory: r.memoryBytes }),
      ...(r.cpus !== undefined && { NanoCpus: Math.round(r.cpus * 1e9) }),
      ...(r.ioWeight !== undefined && { BlkioWeight: r.ioWeight }),
      ...(r.pids !== undefined && { PidsLimit: r.pids }),
      ...(r.nofile !== undefined && { Ulimits: [{ Name: 'nofile', Soft: r.nofile, Hard: r.nofile }] }),
    },
  };
}

/** The labels a new container carries: the user's, then pm's (which win). */
export function containerLabels(spec: ContainerSpec, owner: string, instance: string): Labels {
  return { ...spec.labels, [Label.owner]: owner, [Label.process]: spec.process, [Label.spec]: specDigest(spec), [Label.instance]: instance };
}

/**
 * The create response's warnings that say a setting was dropped. Docker words every such case
 * "… discarded" (moby daemon/daemon_unix.go: memory, swap, kernel memory, CPU, block I/O, pids,
 * published ports with host networking); other warnings (deprecations) change nothing.
 */
export function droppedSettings(warnings: readonly string[]): string[] {
  return warnings.filter((w) => /discarded/i.test(w));
}

/** Safe to put into a URL path as it is (the engine's image routes take the rest of the path). */
export function isImageRef(image: string): boolean {
  return typeof image === 'string' && image.length <= 512 && IMAGE_REF.test(image) && !image.includes('..');
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** JSON with object keys sorted at every level; undefined members dropped as JSON does. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}
