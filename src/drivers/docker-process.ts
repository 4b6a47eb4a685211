// The docker driver as pm's planner, daemon and apply see it: a manifest with driver docker and
// its spec.docker becomes the DockerDriver's ContainerSpec. Only the environment the manifest
// declares reaches the container (never pm's PATH or HOME); the stop signal is the manifest's.
import type { HealthStatus } from '../probes/runners.js';
import { stat } from 'node:fs/promises';
import { StartError } from '../errors.js';
import { limitsOf } from '../manifest/resources.js';
import { dockerSpecOf } from '../manifest/runtime.js';
import type { DockerHandle, ExitStatus, Observation, ProcessHandle, StartRequest, StopOptions, StopResult } from './driver.js';
import { DockerDriver } from './docker/index.js';
import type { ContainerSpec } from './docker/index.js';
import { ContainerExitWatch } from './docker/exit-watch.js';
import { newInstanceMarker } from './exec/instance.js';
import type { ProcessDriver } from './router.js';

export function createDockerProcessDriver(options: { owner: string; socketPath?: string }): ProcessDriver {
  return new DockerProcessDriver(new DockerDriver({ owner: options.owner, ...(options.socketPath !== undefined && { socketPath: options.socketPath }) }));
}

/** The ContainerSpec a manifest asks for. */
export function containerSpecOf(request: Pick<StartRequest, 'name' | 'manifest' | 'declaredEnv'>): ContainerSpec {
  const docker = dockerSpecOf(request.manifest);
  const limits = limitsOf(request.manifest);
  return {
    process: request.name,
    image: docker.image,
    ...(docker.command !== undefined && { command: docker.command }),
    env: request.declaredEnv ?? {},
    labels: docker.labels,
    ports: docker.publish.map((p) => ({ container: p.containerPort, host: p.hostPort, hostIp: p.hostIp, protocol: p.protocol })),
    volumes: docker.volumes.map((v) => ({ source: v.source, target: v.target, readOnly: v.readOnly })),
    ...(docker.network !== undefined && { network: docker.network }),
    stopSignal: request.manifest.spec.stop.signal,
    ...(Object.keys(limits).length > 0 && {
      resources: {
        ...(limits.memoryBytes !== undefined && { memoryBytes: limits.memoryBytes }),
        ...(limits.cpus !== undefined && { cpus: limits.cpus }),
        ...(limits.ioWeight !== undefined && { ioWeight: limits.ioWeight }),
        ...(limits.openFiles !== undefined && { nofile: limits.openFiles }),
        ...(limits.pids !== undefined && { pids: limits.pids }),
      },
    }),
  };
}

class DockerProcessDriver implements ProcessDriver {
  readonly #exits: ContainerExitWatch;

  constructor(private readonly docker: DockerDriver) {
    this.#exits = new ContainerExitWatch(docker);
  }

  /** Before anything is stopped: the image is on the engine, bind sources exist. */
  async check(request: StartRequest): Promise<void> {
    const spec = containerSpecOf(request);
    for (const volume of spec.volumes) {
      if (!(await stat(volume.source).catch(() => undefined))) {
        throw new StartError(request.name, `volume source ${volume.source} does not exist`, 'create it, or correct spec.docker.volumes (bind mounts never create their source)');
      }
    }
    await this.docker.checkImage(spec.image);
  }

  start(request: StartRequest): Promise<ProcessHandle> {
    return this.docker.start(containerSpecOf(request), { instance: request.instance ?? newInstanceMarker() });
  }

  inspect(handle: ProcessHandle): Promise<Observation> {
    return this.docker.inspect(dockerHandle(handle));
  }

  stop(handle: ProcessHandle, options: StopOptions): Promise<StopResult> {
    return this.docker.stop(dockerHandle(handle), options);
  }

  /** Through the engine's event stream: one connection for every container waited on. */
  waitExit(handle: ProcessHandle, signal?: AbortSignal): Promise<ExitStatus> {
    return this.#exits.wait(dockerHandle(handle), signal);
  }

  execIn(handle: ProcessHandle, command: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<number> {
    return this.docker.execIn(dockerHandle(handle), command, timeoutMs, signal);
  }

  logs(handle: ProcessHandle, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    return this.docker.logs(dockerHandle(handle), options, out, signal);
  }

  health(handle: ProcessHandle): Promise<HealthStatus> {
    return this.docker.health(dockerHandle(handle));
  }

  remove(handle: ProcessHandle): Promise<void> {
    return this.docker.remove(dockerHandle(handle));
  }

  recover(instance: string): Promise<ProcessHandle | undefined> {
    return this.docker.recover(instance);
  }

  close(): Promise<void> {
    this.#exits.close();
    return Promise.resolve();
  }
}

function dockerHandle(handle: ProcessHandle): DockerHandle {
  if (handle.driver !== 'docker') throw new TypeError(`the docker driver was given a ${handle.driver} handle`);
  return handle;
}
