// A short fingerprint of a manifest, to tell "the same spec failed before" from "a new spec".
import { createHash } from 'node:crypto';
import type { ProcessManifest } from '../manifest/types.js';

/** Deterministic for equal manifests (normalized manifests serialise in one key order). */
export function manifestDigest(manifest: ProcessManifest): string {
  return createHash('sha256').update(JSON.stringify(manifest)).digest('hex').slice(0, 16);
}
