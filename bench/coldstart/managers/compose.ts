// Docker Compose: one service per process in the tests' busybox image (test/support/docker.ts,
// built locally: nothing is pulled), the static child bind-mounted as /child and the bench's
// socket folder as /sock; `depends_on: {NAME: {condition: service_healthy}}` on each dependency,
// and a healthcheck `busybox test -f /ready` (the child creates /ready once ready) every second
// (--compose-health-interval: each check is an exec in the container, and at 0.05 s the checks of
// 100 containers kept this 2-vCPU VM at a load of 30–48 and a cold start took 399 s, against 163 s).
// Compose is Debian's `docker-compose` (1.29), installed when neither it nor the `docker compose`
// plugin is there and the bench is root. t0: `up -d` is spawned; the engine is running.
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { dockerSkip, ensureTestImage } from '../../../test/support/docker.js';
import { aptInstall, onPath, runCommand, tail } from '../../daemon/proc.js';
import type { ColdProcess } from '../scenario.js';
import type { ColdManager, Setup, Skipped } from './types.js';

const NAME = 'Docker Compose (depends_on: service_healthy)';
const DOWN_TIMEOUT_MS = 120_000;
/** Every container of a bench run carries this label, valued with the run's project name. */
const RUN_LABEL = 'pm-bench.coldstart';
/** Above this many processes Compose runs only when --managers names it (TOO_SLOW says why). */
const COMPOSE_DEFAULT_MAX = 30;
const TOO_SLOW = 'a cold start of 100 in 5 levels took Debian 12\'s Compose 1.29 163 s here (one run, a health check every second; docs/benchmarks.md), so 10 alternated runs would take half an hour';
/** Healthcheck failures allowed before Compose gives up on a service: about a minute at the period. */
const HEALTH_WINDOW_SECONDS = 60;

/** How Compose is run here: the v2 plugin (`docker compose`) or the standalone v1 (`docker-compose`). */
type ComposeCommand = readonly string[];

export class ComposeColdManager implements ColdManager {
  readonly key = 'compose';
  readonly name: string;
  readonly version: string;
  readonly settings: string;
  readonly timed: string;
  readonly command: string;
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #compose: ComposeCommand;
  readonly #image: string;
  readonly #periodSeconds: number;
  readonly #project: string;
  /** `up` may take as long as the bench waits for a run (--timeout-ms). */
  readonly #upTimeoutMs: number;
  #file = '';
  #tornDown: Promise<void> | undefined;

  private constructor(setup: Setup, compose: ComposeCommand, version: string, image: string, periodSeconds: number, timeoutMs: number) {
    this.#setup = setup;
    this.#upTimeoutMs = timeoutMs;
    this.#compose = compose;
    this.#image = image;
    this.#periodSeconds = periodSeconds;
    this.version = version;
    this.name = `Docker Compose ${version} (depends_on: service_healthy)`;
    this.#project = `pmcs${process.pid}`;
    const shown = compose.join(' ');
    this.command = `${shown} -p PROJECT -f TMP/compose.yaml up -d (stopped with ${shown} down -t 0)`;
    this.timed = `t0: \`${shown} -p PROJECT -f FILE up -d\` is spawned (its start-up is counted); the Docker Engine is running and the image is local`;
    this.settings = `one service per process in the local busybox image (${image}), the static child bind-mounted, network_mode none, pid host (so the children report host pids); depends_on with condition service_healthy on each dependency; a healthcheck \`busybox test -f /ready\` every ${periodSeconds} s (the child creates /ready once ready), retries ${this.#retries()}; Compose orders the starts itself`;
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    const service = this.#service(example);
    service.volumes = ['CHILD:/child:ro', 'SOCKET_DIR:/sock'];
    service.command = ['/sock/SOCKET', example.name, String(setup.scenario.readyMs), '--ready-file', '/ready'];
    this.sample = { language: 'yaml', text: stringify({ services: { [example.name]: service } }).trim() };
  }

  /**
   * Finds (or installs) Compose and the engine, and builds the image if missing; skipped, saying
   * why, where it cannot run. `childStatic`: the busybox image has no C library for a dynamic child.
   * `named`: --managers named it; otherwise a set larger than COMPOSE_DEFAULT_MAX is left out.
   */
  static async create(setup: Setup, options: { childStatic: boolean; periodSeconds: number; named: boolean; timeoutMs: number }, register: (label: string, run: () => Promise<void>) => void): Promise<ComposeColdManager | Skipped> {
    const skipped = (why: string): Skipped => ({ key: 'compose', name: NAME, skipped: why });
    const count = setup.scenario.processes.length;
    if (!options.named && count > COMPOSE_DEFAULT_MAX) return skipped(`not run by default above ${COMPOSE_DEFAULT_MAX} processes: ${TOO_SLOW}; \`--managers compose\` runs it at any size`);
    if (!options.childStatic) return skipped('the child could only be linked dynamically, and the image has no C library');
    for (const path of [setup.child, dirname(setup.socket)]) if (path.includes(':')) return skipped(`${path}: a path Compose's volume syntax cannot take`);
    const unavailable = dockerSkip();
    if (unavailable !== false) return skipped(unavailable);
    const docker = onPath('docker');
    if (docker === undefined) return skipped('`docker` is not on PATH');
    const engine = await runCommand([docker, 'version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
    if (engine.code !== 0) return skipped(`the Docker Engine does not answer: ${tail(engine.output, 3)}`);
    let compose = await findCompose(docker);
    if (compose === undefined) {
      const failed = await aptInstall('docker-compose', setup.log);
      if (failed !== undefined) return skipped(failed);
      compose = await findCompose(docker);
      if (compose === undefined) return skipped('apt-get installed docker-compose but neither `docker compose` nor `docker-compose` answers');
    }
    let image: string;
    try {
      image = await ensureTestImage();
    } catch (error) {
      return skipped(`the local busybox image could not be built: ${(error as Error).message}`);
    }
    // The image was built through /var/run/docker.sock; Compose uses the CLI's context, which may be another engine.
    const seen = await runCommand([docker, 'image', 'inspect', '--format', '{{.Id}}', image], { timeoutMs: 30_000 }).catch(() => undefined);
    if (seen?.code !== 0) return skipped(`the docker CLI's engine does not have ${image} (its context is not /var/run/docker.sock?), and the bench pulls nothing`);
    const manager = new ComposeColdManager(setup, compose.command, compose.version, image, options.periodSeconds, options.timeoutMs);
    register('remove the Compose containers', () => manager.close());
    return manager;
  }

  #retries(): number {
    return Math.ceil(HEALTH_WINDOW_SECONDS / this.#periodSeconds);
  }

  #service(p: ColdProcess): Record<string, unknown> {
    const period = `${Math.round(this.#periodSeconds * 1000)}ms`;
    return {
      image: this.#image,
      entrypoint: ['/child'],
      command: ['/sock/' + basename(this.#setup.socket), p.name, String(this.#setup.scenario.readyMs), '--ready-file', '/ready'],
      volumes: [`${this.#setup.child}:/child:ro`, `${dirname(this.#setup.socket)}:/sock`],
      network_mode: 'none',
      pid: 'host',
      labels: { [RUN_LABEL]: this.#project },
      healthcheck: { test: ['CMD', '/bin/busybox', 'test', '-f', '/ready'], interval: period, timeout: '1s', retries: this.#retries(), start_period: '0s' },
      ...(p.dependsOn.length > 0 && { depends_on: Object.fromEntries(p.dependsOn.map((d) => [d, { condition: 'service_healthy' }])) }),
    };
  }

  async prepare(dir: string): Promise<void> {
    this.#tornDown = undefined;
    this.#file = join(dir, 'compose.yaml');
    const services = Object.fromEntries(this.#setup.scenario.processes.map((p) => [p.name, this.#service(p)]));
    await writeFile(this.#file, stringify({ version: '2.4', services }));
  }

  async start(): Promise<void> {
    const result = await this.#run(['up', '-d'], this.#upTimeoutMs);
    if (result.code !== 0) throw new Error(`${this.#compose.join(' ')} up exited ${result.code ?? result.signal}:\n${tail(result.output)}`);
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      if (this.#file === '') return; // nothing was prepared: the bench stopped before this manager's first run
      const result = await this.#run(['down', '-t', '0', '--remove-orphans'], DOWN_TIMEOUT_MS);
      if (result.code !== 0) throw new Error(`${this.#compose.join(' ')} down exited ${result.code ?? result.signal}:\n${tail(result.output)}`);
    })();
    return this.#tornDown;
  }

  /** Never rejects: a failure here must not hide the run's own error. */
  async diagnostics(): Promise<string> {
    const result = await this.#run(['ps'], 60_000).catch((error: unknown) => ({ output: `(${this.#compose.join(' ')} ps: ${(error as Error).message})` }));
    return tail(result.output, 30);
  }

  /** Whatever a run left (an interrupted `up`): every container with the run's label, then the project's network. */
  async close(): Promise<void> {
    const listed = await runCommand(['docker', 'ps', '-aq', '--filter', `label=${RUN_LABEL}=${this.#project}`], { timeoutMs: 30_000 }).catch(() => undefined);
    const ids = (listed?.output ?? '').split('\n').map((line) => line.trim()).filter((line) => /^[0-9a-f]+$/.test(line));
    if (ids.length > 0) await runCommand(['docker', 'rm', '-f', ...ids], { timeoutMs: DOWN_TIMEOUT_MS }).catch(() => undefined);
    // Absent unless Compose made it (every service has network_mode none): a failure here is expected.
    await runCommand(['docker', 'network', 'rm', `${this.#project}_default`], { timeoutMs: 30_000 }).catch(() => undefined);
  }

  /** Async, so that a call before prepare rejects rather than throws (diagnostics must only resolve). */
  async #run(args: readonly string[], timeoutMs: number): ReturnType<typeof runCommand> {
    if (this.#file === '') throw new Error('internal: Compose run before prepare');
    return runCommand([...this.#compose, '-p', this.#project, '-f', this.#file, ...args], { timeoutMs });
  }
}

async function findCompose(docker: string): Promise<{ command: ComposeCommand; version: string } | undefined> {
  const plugin = await runCommand([docker, 'compose', 'version', '--short'], { timeoutMs: 10_000 }).catch(() => undefined);
  if (plugin?.code === 0) return { command: [docker, 'compose'], version: plugin.output.trim().split('\n')[0] ?? '?' };
  const standalone = onPath('docker-compose');
  if (standalone === undefined) return undefined;
  const v1 = await runCommand([standalone, 'version', '--short'], { timeoutMs: 10_000 }).catch(() => undefined);
  return v1?.code === 0 ? { command: [standalone], version: v1.output.trim().split('\n')[0] ?? '?' } : undefined;
}
