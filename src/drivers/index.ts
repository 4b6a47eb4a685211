// The drivers pm has, behind one router. exec is built in; docker and systemd are loaded when a
// process first needs them (see router.ts), each configured from pm's environment.
import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PmError } from '../errors.js';
import { ExecDriver } from './exec/index.js';
import { spawnChoiceOf, spawnerFor, type SpawnChoice } from './exec/native.js';
import { DriverRouter } from './router.js';

export interface DriverOptions {
  /** The state directory: it keeps the owner id of what pm creates in shared engines. */
  stateDir: string;
  /** pm's environment: DOCKER_HOST names the engine's socket, as for the docker CLI; PM_SYSTEMD_* and PM_SYSTEMCTL_* how systemd is reached; PM_SPAWN how exec processes are started. */
  env?: NodeJS.ProcessEnv;
  /** How exec processes are started: the daemon's config key `spawn`; else PM_SPAWN in `env`. */
  spawn?: SpawnChoice;
}

/**
 * The Docker Engine's socket: DOCKER_HOST=unix:///path as the docker CLI reads it (rootless Docker's
 * $XDG_RUNTIME_DIR/docker.sock, say), else the engine's default. Other schemes are refused: pm
 * speaks to a local engine only.
 */
export function dockerSocketOf(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return undefined;
  if (!host.startsWith('unix://') || host.length <= 'unix://'.length) {
    throw new PmError('E_DOCKER_HOST', `DOCKER_HOST=${host}: pm speaks to a local Docker Engine through its unix socket only`, { hint: 'set DOCKER_HOST=unix:///path/to/docker.sock, or unset it for /var/run/docker.sock' });
  }
  return host.slice('unix://'.length);
}

export const OWNER_FILE = 'owner-id';

/**
 * This pm's mark on what it creates in shared engines (the pm.owner label of its containers): 64
 * random bits made once and kept in the state directory, so the daemon and the CLI on one state
 * directory share it however the directory is reached (a symlink) and whatever the host is called
 * later, and another state directory on the same engine never does.
 */
export async function ownerIdOf(stateDir: string): Promise<string> {
  const path = join(stateDir, OWNER_FILE);
  const existing = await readOwner(path);
  if (existing) return existing;
  const id = randomBytes(8).toString('hex');
  try {
    // Exclusive create: two pm making it at once agree on the first.
    const file = await open(path, 'wx', 0o644);
    try {
      await file.writeFile(`${id}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    return id;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const winner = await readOwner(path);
    if (!winner) throw new Error(`${path} exists but holds no owner id: remove it only if no container of this pm exists (docker ps -a --filter label=pm.owner)`, { cause: error });
    return winner;
  }
}

async function readOwner(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const id = text?.trim();
  return id && /^[0-9a-f]{16}$/.test(id) ? id : undefined;
}

export function createDrivers(options: DriverOptions): DriverRouter {
  // Read now: a bad PM_SPAWN stops pm before it does anything.
  const spawn = options.spawn ?? spawnChoiceOf(options.env ?? {});
  // Asked for and not built: stop now, not at the first start.
  if (spawn === 'native') spawnerFor('native');
  return new DriverRouter({
    exec: () => Promise.resolve(new ExecDriver({ spawn })),
    docker: async () => {
      const socketPath = dockerSocketOf(options.env ?? {});
      return (await import('./docker-process.js')).createDockerProcessDriver({ owner: await ownerIdOf(options.stateDir), ...(socketPath !== undefined && { socketPath }) });
    },
    systemd: async () => {
      const { systemdSettingsOf } = await import('./systemd/settings.js');
      const settings = systemdSettingsOf(options.env ?? {});
      return (await import('./systemd-process.js')).createSystemdProcessDriver(settings);
    },
  });
}
