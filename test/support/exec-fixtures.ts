// Manifests and start requests for exec driver tests: node itself is the test child.
import { join } from 'node:path';
import type { StartRequest } from '../../src/drivers/driver.js';
import type { ProcessManifest } from '../../src/manifest/types.js';

/** A manifest with every schema default filled in, as the loader would hand it over. */
export function processManifest(name: string, command: [string, ...string[]], cwd?: string): ProcessManifest {
  return {
    apiVersion: 'pm.dev/v1alpha1',
    kind: 'Process',
    metadata: { name, labels: {} },
    spec: {
      driver: 'exec',
      exec: { command, ...(cwd !== undefined && { cwd }), env: {}, envFiles: [] },
      ports: [],
      dependsOn: [],
      probes: {},
      restartPolicy: {
        policy: 'always',
        backoff: { initialSeconds: 1, factor: 2, maxSeconds: 300, jitter: 0.2, resetAfterSeconds: 600 },
        circuitBreaker: { enabled: true, maxFailures: 5, windowSeconds: 300, cooldownSeconds: 300 },
      },
      stop: { signal: 'SIGTERM', gracePeriodSeconds: 10 },
    },
  };
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
