// Docker as a peer in bench/daemon.ts: the engine's own restart policy, `docker run -d
// --restart=always`, through bench/docker's EngineManager (the same image, command and bind mounts
// as bench/docker.ts). The child is bench/docker/reporter.c, bench/daemon/reporter.c's behaviour
// for a container (a random token in place of its pid, which is 1 in every container). The engine
// doubles its restart delay after every run shorter than 10 s and resets it after a run of 10 s:
// 6 containers take turns, each up 11 s before its next crash, so every trial meets the engine's
// shortest delay (100 ms). The crash is SIGKILL of the container's process from the host.
import { basename, dirname } from 'node:path';
import type Docker from 'dockerode';
import { DOCKER_SOCKET, engineClient, ensureTestImage } from '../../../test/support/docker.js';
import { containerReporter, describeEngine, newRunId, removeLabelled, REPORT_SOCKET_IN_CONTAINER, reporterPid, RUN_LABEL, sweepLeftovers, type EngineDescription } from '../../docker/engine.js';
import { EngineManager, type ContainerSpec, type Run } from '../../docker/managers.js';
import type { Manager, ManagerContext, ProcessSpec, Skipped } from '../manager.js';
import type { CrashedInTurns } from '../scenarios.js';

const CONTAINERS = 6;
/** The engine's restart delay is back at its minimum after a run of 10 s (restartmanager). */
const REST_MS = 11_000;

export class DockerRestartManager implements Manager, CrashedInTurns {
  readonly name = 'Docker';
  readonly version: string;
  readonly turns = { children: CONTAINERS, restMs: REST_MS };
  readonly #docker: Docker;
  readonly #run: Run;
  readonly #engine: EngineDescription;
  readonly #policy: EngineManager;
  /** The container of each of the bench's processes, by process name. */
  readonly #containers = new Map<string, ContainerSpec>();
  #stopped: Promise<void> | undefined;

  private constructor(docker: Docker, run: Run, engine: EngineDescription) {
    this.#docker = docker;
    this.#run = run;
    this.#engine = engine;
    this.version = `${engine.engineVersion}, --restart=always`;
    this.#policy = new EngineManager(docker, run, engine.engineVersion);
  }

  /** Skipped when the engine does not answer; throws (and is skipped, with the reason) when the image or the reporter cannot be built. */
  static async create(context: ManagerContext): Promise<DockerRestartManager | Skipped> {
    const docker = engineClient();
    try {
      await docker.ping();
    } catch (error) {
      return { name: 'Docker', skipped: `the Docker engine does not answer on ${DOCKER_SOCKET} (${(error as Error).message}): is it running? (setsid nohup dockerd >/var/log/dockerd.log 2>&1 &)` };
    }
    await sweepLeftovers(docker, context.log);
    const run: Run = { id: newRunId(), image: await ensureTestImage(), reporter: await containerReporter(), network: undefined };
    return new DockerRestartManager(docker, run, await describeEngine(docker));
  }

  get settings(): string {
    const command = this.#policy.commands[0] ?? '';
    return [
      `${this.#engine.versions}; ${this.#engine.setup}; \`${command}\` (image ${this.#run.image}: busybox-static, built by test/support/docker.ts; the engine's default network, bridge); ${this.#policy.settings}.`,
      `${CONTAINERS} containers taking turns, each up ≥ ${REST_MS / 1000} s before its next crash, so that every crash meets the engine's shortest delay.`,
      'The child is bench/docker/reporter.c (static, bind-mounted read-only at /reporter): bench/daemon/reporter.c for a container, reporting a random token (its pid is 1) and obeying SIGTERM as PID 1; DIR, bind-mounted at /report, holds the bench\'s socket.',
      "Crash: SIGKILL from the host of the container's main process (the pid from the engine's inspect, checked to run /reporter); not `docker kill`, which the engine takes for a deliberate stop and does not restart.",
    ].join(' ');
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    const specs = processes.map((p) => {
      const socket = p.argv[p.argv.length - 1];
      // The container reports to /report/r.sock: the bench's socket must be that name in a folder of its own.
      if (socket === undefined || basename(socket) !== basename(REPORT_SOCKET_IN_CONTAINER)) throw new Error(`Docker: the socket must be named ${basename(REPORT_SOCKET_IN_CONTAINER)} in a folder of its own, not ${socket ?? 'missing'}`);
      const spec: ContainerSpec = { name: `bench-daemon-${process.pid}-${p.name}`, reportDir: dirname(socket) };
      this.#containers.set(p.name, spec);
      return spec;
    });
    await this.#policy.start(specs);
  }

  /** dockerd and containerd serve every container on the machine: no process of this peer's own to measure. */
  daemonPid(): number | undefined {
    return undefined;
  }

  async prepareCrash(spec: ProcessSpec): Promise<() => void> {
    const container = this.#containers.get(spec.name);
    if (container === undefined) throw new Error(`Docker: no container for ${spec.name}`);
    const pid = await reporterPid(this.#docker, this.#policy.containerName(container));
    return () => process.kill(pid, 'SIGKILL');
  }

  diagnostics(): Promise<string> {
    return this.#policy.diagnostics();
  }

  /** Removes this manager's containers, then anything else carrying the run's label (checked gone). */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#policy.shutdown();
      await removeLabelled(this.#docker, [`${RUN_LABEL}=${this.#run.id}`]);
    })();
    return this.#stopped;
  }
}
