// The labels pm puts on its containers. The engine keeps them for the container's lifetime, so
// ownership (pm.owner), identity (pm.process, pm.instance) and drift (pm.spec) are read from the
// engine itself, by any later pm process, without a local record.

export const Label = {
  /** Which pm owns the container (host name + state directory digest, chosen by the caller). */
  owner: 'pm.owner',
  /** The pm process name. */
  process: 'pm.process',
  /** Digest of the ContainerSpec the container was created from (spec.ts). */
  spec: 'pm.spec',
  /** The instance marker the caller recorded before the start (DockerHandle.instance). */
  instance: 'pm.instance',
} as const;

/** Keys under this prefix are pm's; user labels may not use them. */
export const RESERVED_PREFIX = 'pm.';

/**
 * Attributes the engine writes into container events *before* it merges the labels in, so a label
 * of the same name replaces them (moby daemon/events.go). The die event's are refused as user
 * labels: its exit code must be the engine's. (name and image are written after the labels.)
 */
export const EVENT_ATTRIBUTES: readonly string[] = ['exitCode', 'execDuration'];

export type Labels = Record<string, string>;

/** True when the labels say this pm owns the container. */
export function isOwnedBy(labels: Labels | null | undefined, owner: string): boolean {
  return labels?.[Label.owner] === owner;
}

/** Engine label filters (`key=value`, AND-ed) for this pm's containers, optionally narrowed. */
export function ownerFilter(owner: string, extra: Partial<Record<'process' | 'instance', string>> = {}): string[] {
  const filters = [`${Label.owner}=${owner}`];
  if (extra.process !== undefined) filters.push(`${Label.process}=${extra.process}`);
  if (extra.instance !== undefined) filters.push(`${Label.instance}=${extra.instance}`);
  return filters;
}
