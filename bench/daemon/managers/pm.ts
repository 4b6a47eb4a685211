// pm itself: `pm daemon -f DIR` from dist/ (npm run build first), one manifest file per process in
// DIR, restarted at once (no backoff, no circuit breaker, ready as soon as it runs).
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Manager, ManagerContext, ProcessSpec, WatchedDirectory } from '../manager.js';
import { Background } from '../proc.js';

/** This checkout's build; --pm-cli points the bench at another one (an older commit's, to compare). */
export const DEFAULT_CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const PACKAGE = fileURLToPath(new URL('../../../package.json', import.meta.url));
/**
 * Node flags pm is run with: the `pm` command's #! line and `npm start` pass these (a unit test keeps
 * the three in step), so the benches measure the daemon users get.
 */
export const PM_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** --shutdown stop stops every child (SIGTERM, 10 s grace by default) before the daemon exits. */
const STOP_TIMEOUT_MS = 30_000;

export function pmManifest(process: ProcessSpec): string {
  return `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: ${process.name}
spec:
  exec:
    command: ${JSON.stringify(process.argv)}
  minReadySeconds: 0
  restartPolicy:
    policy: always
    backoff: {initialSeconds: 0}
    circuitBreaker: {enabled: false}
`;
}

/** What a scenario adds to the daemon (bench/flags.ts: a database): environment variables and flags. */
export interface PmExtras {
  env?: Readonly<Record<string, string>>;
  args?: readonly string[];
}

export class PmManager implements Manager, WatchedDirectory {
  readonly name = 'pm';
  readonly settings: string;
  readonly version: string;
  readonly #dir: string;
  readonly #manifests: string;
  readonly #cli: string;
  readonly #extras: PmExtras;
  #daemon: Background | undefined;
  #stopped: Promise<void> | undefined;

  private constructor(context: ManagerContext, cli: string, version: string, extras: PmExtras) {
    this.#dir = context.dir;
    this.#cli = cli;
    this.#extras = extras;
    const flags = extras.args !== undefined && extras.args.length > 0 ? `daemon flags ${extras.args.join(' ')}, defaults otherwise` : 'daemon defaults otherwise (memoryMode lean)';
    this.settings = `one manifest per process: restartPolicy {policy: always, backoff: {initialSeconds: 0}, circuitBreaker: {enabled: false}}, minReadySeconds: 0; ${flags}`;
    this.#manifests = join(context.dir, 'manifests');
    this.version = version;
  }

  static async create(context: ManagerContext, cli = DEFAULT_CLI, extras: PmExtras = {}): Promise<PmManager> {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
    const version = (JSON.parse(await readFile(PACKAGE, 'utf8')) as { version: string }).version;
    return new PmManager(context, cli, version, extras);
  }

  /** The daemon's command line (shown in the report). */
  static commandLine(cli = 'dist/cli/main.js', args: readonly string[] = []): string {
    return `node ${PM_NODE_FLAGS.join(' ')} ${cli} daemon -f DIR --state-dir TMP --listen 127.0.0.1:0 --shutdown stop --log-level warn${args.map((a) => ` ${a}`).join('')}`;
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    await mkdir(this.#manifests, { recursive: true });
    await Promise.all(processes.map((p) => writeFile(join(this.#manifests, `${p.name}.yaml`), pmManifest(p))));
    // No PM_* variable and no config file of the user running the bench: flags and extras only.
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PM_')));
    env.XDG_CONFIG_HOME = join(this.#dir, 'xdg-config');
    Object.assign(env, this.#extras.env);
    const argv = [process.execPath, ...PM_NODE_FLAGS, this.#cli, 'daemon', '-f', this.#manifests, '--state-dir', join(this.#dir, 'state'), '--listen', '127.0.0.1:0', '--shutdown', 'stop', '--log-level', 'warn', ...(this.#extras.args ?? [])];
    this.#daemon = await Background.start(argv, { env, cwd: this.#dir, logFile: join(this.#dir, 'daemon.log') });
  }

  daemonPid(): number | undefined {
    return this.#daemon?.pid;
  }

  async diagnostics(): Promise<string> {
    if (!this.#daemon) return 'pm daemon not started';
    return `pm daemon ${this.#daemon.running ? 'running' : 'exited'}; its log ends:\n${await this.#daemon.logTail()}`;
  }

  async declare(process: ProcessSpec): Promise<void> {
    const file = join(this.#manifests, `${process.name}.yaml`);
    const tmp = join(this.#manifests, `.${process.name}.yaml.tmp`);
    await writeFile(tmp, pmManifest(process));
    await rename(tmp, file);
  }

  async undeclare(name: string): Promise<void> {
    await rm(join(this.#manifests, `${name}.yaml`));
  }

  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      if (!this.#daemon) return;
      const clean = await this.#daemon.stop('SIGTERM', STOP_TIMEOUT_MS);
      if (!clean) throw new Error(`pm daemon did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM; killed`);
    })();
    return this.#stopped;
  }
}
