// Docker Compose (`depends_on: {condition: service_healthy}` with a healthcheck): measured only
// where it is installed; the bench never installs it. This machine's check decides the row.
import { onPath, runCommand } from '../../daemon/proc.js';
import type { Skipped } from './types.js';

/** Why Compose is not measured here. */
export async function composeSkipped(): Promise<Skipped> {
  const name = 'Docker Compose (depends_on: service_healthy)';
  const docker = onPath('docker');
  const plugin = docker === undefined ? undefined : await runCommand([docker, 'compose', 'version'], { timeoutMs: 10_000 }).catch(() => undefined);
  const standalone = onPath('docker-compose');
  if ((plugin === undefined || plugin.code !== 0) && standalone === undefined) {
    const why = docker === undefined ? '`docker` is not on PATH' : `\`docker compose version\` fails (${plugin?.output.trim().split('\n')[0] ?? 'no output'})`;
    return { key: 'compose', name, skipped: `not installed: ${why} and there is no \`docker-compose\`; the bench does not install it` };
  }
  return {
    key: 'compose',
    name,
    skipped: 'Compose is installed, but this bench has no Compose runner yet (it would need a local image with the child and a healthcheck per service); not measured',
  };
}
