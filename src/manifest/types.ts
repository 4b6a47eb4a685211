// The desired state as the rest of pm sees it: validated, defaulted and normalized manifests.
import type { ProcessManifest } from './types.generated.js';

export type * from './types.generated.js';

/** Where a manifest document came from. */
export interface ManifestSource {
  /** Absolute path of the file, or `-` for standard input. */
  file: string;
  /** 1-based line of the document's start within the file. */
  line: number;
}

/**
 * One declared process. `manifest` has every schema default filled in and every relative path
 * (exec.cwd, exec.envFiles, exec.logs, env fromFile) resolved against the manifest file's folder,
 * so two manifests that mean the same thing compare equal.
 */
export interface DesiredProcess {
  name: string;
  manifest: ProcessManifest;
  source: ManifestSource;
}

/** A whole, valid set of manifests: accepted together or not at all. */
export interface DesiredSet {
  /** Keyed by process name; iteration order is name order, so output is deterministic. */
  processes: ReadonlyMap<string, DesiredProcess>;
  /** The -f arguments, resolved to absolute paths (`-` for stdin): pruning is scoped to them. */
  roots: readonly string[];
}
