// Manifests and start requests for exec driver tests: node itself is the test child.
import { join } from 'node:path';
import type { StartRequest } from '../../src/drivers/driver.js';
import type { ProcessManifest } from '../../src/manifest/types.js';
import { manifest } from './manifests.js';

/** A manifest with every schema default filled in, as the loader would hand it over. */
export function processManifest(name: string, command: [string, ...string[]], cwd?: string): ProcessManifest {
  return manifest({ name, command, ...(cwd !== undefined && { cwd }) });
}

/** A request that runs `node -e script` in `dir`, with stdout and stderr in one log file there. */
export function nodeScript(dir: string, script: string, overrides: Partial<StartRequest> = {}): StartRequest {
  const log = join(dir, 'logs', 'child.log');
  return {
    name: 'child',
    manifest: processManifest('child', [process.execPath, '-e', script], dir),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    logs: { stdout: log, stderr: log },
    ...overrides,
  };
}
