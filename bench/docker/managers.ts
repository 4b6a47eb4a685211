// The two supervisors of bench/docker.ts, each given the same containers to keep running: the
// engine's own restart policy (`docker run -d --restart=always`), and pm daemon with the docker
// driver (one manifest per container, through bench/daemon's PmManager). Both run the same image,
// command and bind mounts; every container carries the run's label, so cleanup finds them all.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { DEFAULT_CLI, PmManager } from '../daemon/managers/pm.js';
import { mustRun } from '../daemon/proc.js';
import { removeLabelled, REPORT_DIR_IN_CONTAINER, REPORT_SOCKET_IN_CONTAINER, REPORTER_IN_CONTAINER, RUN_LABEL } from './engine.js';

/** One container to keep running: its name for the manager and where its reports go on the host. */
export interface ContainerSpec {
  /** pm: the process name (the container is pm-<name>); the engine: the container's name. */
  name: string;
  /** Host folder bind-mounted at /report; the bench listens on r.sock in it. */
  reportDir: string;
}

export interface Run {
  id: string;
  image: string;
  /** --network: the containers' network mode; undefined: the engine's default (bridge). */
  network: string | undefined;
  /** The static reporter on the host, bind-mounted read-only at /reporter. */
  reporter: string;
}

export interface DockerManager {
  readonly key: 'pm' | 'engine';
  /** As shown in the tables. */
  readonly name: string;
  /** Its restart policy and set-up, in its own terms (shown in the report). */
  readonly settings: string;
  /** The exact command (or manifest) behind each container, with NAME and paths as placeholders. */
  readonly commands: string[];
  /** Starts supervising the containers; resolves once accepted (they may not run yet). */
  start(containers: ContainerSpec[]): Promise<void>;
  /** The engine's name of the container that runs `spec` now. */
  containerName(spec: ContainerSpec): string;
  diagnostics(): Promise<string>;
  /** Stops supervising and removes every container this manager made. Idempotent. */
  shutdown(): Promise<void>;
}

const MANAGER_LABEL = 'pm-bench.manager';

/** A run's labels for what `key` (a manager, or the bench's own measurement) creates. */
export function labels(key: string, runId: string): Record<string, string> {
  return { [RUN_LABEL]: runId, [MANAGER_LABEL]: key };
}

/** Both labels: this run's containers of this manager (another run's are never touched). */
function ownFilter(run: Run, key: DockerManager['key']): string[] {
  return Object.entries(labels(key, run.id)).map(([k, v]) => `${k}=${v}`);
}

/** The engine alone: `docker run -d --restart=always`, restarted by dockerd's restart manager. */
export class EngineManager implements DockerManager {
  readonly key = 'engine';
  readonly name: string;
  readonly settings =
    "`--restart=always`: the engine's restart manager waits 100 ms before the first restart, doubling after every run shorter than 10 s (up to 1 min), back to 100 ms after a run of 10 s or more; a container stopped by `docker kill`/`docker stop` is not restarted";
  readonly commands: string[];
  readonly #docker: Docker;
  readonly #run: Run;
  readonly #names: string[] = [];
  #stopped: Promise<void> | undefined;

  constructor(docker: Docker, run: Run, engineVersion: string) {
    this.#docker = docker;
    this.#run = run;
    this.name = `engine restart=always (${engineVersion})`;
    this.commands = [this.#argv({ name: 'NAME', reportDir: 'DIR' }, 'REPORTER', 'RUN').join(' ')];
  }

  #argv(spec: ContainerSpec, reporter: string, runId: string): string[] {
    return [
      'docker', 'run', '-d', '--restart=always', '--name', spec.name,
      ...Object.entries(labels(this.key, runId)).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      '--mount', `type=bind,source=${spec.reportDir},target=${REPORT_DIR_IN_CONTAINER}`,
      '--mount', `type=bind,source=${reporter},target=${REPORTER_IN_CONTAINER},readonly`,
      ...(this.#run.network === undefined ? [] : ['--network', this.#run.network]),
      this.#run.image, REPORTER_IN_CONTAINER, REPORT_SOCKET_IN_CONTAINER,
    ];
  }

  async start(containers: ContainerSpec[]): Promise<void> {
    for (const spec of containers) {
      this.#names.push(spec.name);
      await mustRun(this.#argv(spec, this.#run.reporter, this.#run.id), { timeoutMs: 60_000 });
    }
  }

  containerName(spec: ContainerSpec): string {
    return spec.name;
  }

  async diagnostics(): Promise<string> {
    const lines: string[] = [];
    for (const name of this.#names) {
      const info = await this.#docker.getContainer(name).inspect().catch(() => undefined);
      lines.push(info ? `${name}: ${info.State.Status}, RestartCount ${info.RestartCount}, exit ${info.State.ExitCode}` : `${name}: gone`);
    }
    return lines.join('\n');
  }

  shutdown(): Promise<void> {
    this.#stopped ??= removeLabelled(this.#docker, ownFilter(this.#run, this.key)).then(() => undefined);
    return this.#stopped;
  }
}

/** pm daemon with one docker manifest per container: restarted at once, never given up on. */
export class PmDockerManager implements DockerManager {
  readonly key = 'pm';
  readonly name: string;
  readonly settings =
    'driver docker, one manifest per container: restartPolicy {policy: always, backoff: {initialSeconds: 0}, circuitBreaker: {enabled: false}}, minReadySeconds: 0; the driver creates each container with RestartPolicy no and, on an exit, removes it and creates and starts a new pm-NAME';
  readonly commands: string[];
  readonly #pm: PmManager;
  readonly #dir: string;
  readonly #docker: Docker;
  readonly #run: Run;
  #stopped: Promise<void> | undefined;

  private constructor(pm: PmManager, dir: string, docker: Docker, run: Run, cli: string) {
    this.#pm = pm;
    this.#dir = dir;
    this.#docker = docker;
    this.#run = run;
    this.name = `pm ${pm.version} (docker driver)`;
    this.commands = [PmManager.commandLine(cli)];
  }

  static async create(dir: string, docker: Docker, run: Run, log: (line: string) => void, cli = DEFAULT_CLI, cliShown = 'dist/cli/main.js'): Promise<PmDockerManager> {
    return new PmDockerManager(await PmManager.create({ dir, log }, cli), dir, docker, run, cliShown);
  }

  /** The manifest of one container (shown in the report with NAME, DIR and REPORTER). */
  manifest(spec: ContainerSpec, reporter = this.#run.reporter, runId = this.#run.id): string {
    return `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: ${spec.name}
spec:
  driver: docker
  docker:
    image: ${this.#run.image}
    command: ${JSON.stringify([REPORTER_IN_CONTAINER, REPORT_SOCKET_IN_CONTAINER])}
    volumes:
      - {source: ${JSON.stringify(spec.reportDir)}, target: ${REPORT_DIR_IN_CONTAINER}}
      - {source: ${JSON.stringify(reporter)}, target: ${REPORTER_IN_CONTAINER}, readOnly: true}
    labels: ${JSON.stringify(labels(this.key, runId))}${this.#run.network === undefined ? '' : `\n    network: ${this.#run.network}`}
  minReadySeconds: 0
  restartPolicy:
    policy: always
    backoff: {initialSeconds: 0}
    circuitBreaker: {enabled: false}
`;
  }

  async start(containers: ContainerSpec[]): Promise<void> {
    // PmManager writes exec manifests for the processes it is given: it is given none, and finds
    // these docker manifests in its folder (DIR/manifests, which start() creates if needed).
    const manifests = join(this.#dir, 'manifests');
    await mkdir(manifests, { recursive: true });
    await Promise.all(containers.map((spec) => writeFile(join(manifests, `${spec.name}.yaml`), this.manifest(spec))));
    await this.#pm.start([]);
  }

  containerName(spec: ContainerSpec): string {
    return `pm-${spec.name}`;
  }

  daemonPid(): number | undefined {
    return this.#pm.daemonPid();
  }

  async diagnostics(): Promise<string> {
    return this.#pm.diagnostics();
  }

  /** The daemon stops with --shutdown stop (its containers get SIGTERM, which the reporter obeys); whatever it left is removed. */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      let failure: unknown;
      await this.#pm.shutdown().catch((error: unknown) => (failure = error));
      await removeLabelled(this.#docker, ownFilter(this.#run, this.key));
      if (failure) throw failure;
    })();
    return this.#stopped;
  }
}
