// PM2 for bench/reconfig.ts: bench/daemon's Pm2Manager (the same install, PM2_HOME and app
// settings), plus an ecosystem file of the bench's own, apps.json, whose apps also carry
// `env: {CONFIG: …}`. PM2's documented way to change an app's environment: edit the ecosystem
// file, then `pm2 restart FILE --only NAME --update-env` (an app's environment is frozen when it
// is added; --update-env re-reads it, --only limits the restart to that app).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ManagerContext, ProcessSpec } from '../daemon/manager.js';
import { Pm2Manager, pm2Ecosystem } from '../daemon/managers/pm2.js';
import { mustRun } from '../daemon/proc.js';
import { INITIAL_CONFIG, type ReconfigManager } from './manager.js';

/** Where Pm2Manager installs PM2 (bench/.peers). */
const PM2_BIN = fileURLToPath(new URL('../.peers/node_modules/pm2/bin/pm2', import.meta.url));
const APPS = 'apps.json';

export class Pm2Reconfig implements ReconfigManager {
  readonly key = 'pm2';
  readonly name = 'PM2';
  readonly version: string;
  readonly settings: string;
  readonly command = `PM2_HOME=TMP pm2 start ecosystem.json && pm2 restart ${APPS} --update-env`;
  readonly reconfigPath = `rewrite ${APPS} with the app's new \`env: {CONFIG: …}\`, then run \`pm2 restart ${APPS} --only NAME --update-env\` (the CLI call is in the time)`;
  readonly #pm2: Pm2Manager;
  readonly #dir: string;
  readonly #env: NodeJS.ProcessEnv;
  #specs: ProcessSpec[] = [];
  readonly #config = new Map<string, string>();

  private constructor(pm2: Pm2Manager, dir: string) {
    this.#pm2 = pm2;
    this.#dir = dir;
    // The daemon Pm2Manager started: its PM2_HOME is DIR/home.
    this.#env = { ...process.env, PM2_HOME: join(dir, 'home') };
    this.version = pm2.version;
    this.settings = `${pm2.settings}; bench/daemon's ecosystem.json is started, then every app is restarted once from ${APPS} (the same apps, each with env {CONFIG: …}) so that it runs with CONFIG=${INITIAL_CONFIG} before the trials`;
  }

  static async create(context: ManagerContext): Promise<Pm2Reconfig> {
    return new Pm2Reconfig(await Pm2Manager.create(context), context.dir);
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    this.#specs = processes;
    for (const p of processes) this.#config.set(p.name, INITIAL_CONFIG);
    await this.#pm2.start(processes);
    await this.#writeApps();
    await this.#cli(['restart', join(this.#dir, APPS), '--update-env']);
  }

  async reconfigure(name: string, value: string): Promise<void> {
    if (!this.#config.has(name)) throw new Error(`PM2: no app ${name}`);
    this.#config.set(name, value);
    await this.#writeApps();
    await this.#cli(['restart', join(this.#dir, APPS), '--only', name, '--update-env']);
  }

  hostPid(pid: number): number {
    return pid;
  }

  daemonPid(): number | undefined {
    return this.#pm2.daemonPid();
  }

  diagnostics(): Promise<string> {
    return this.#pm2.diagnostics();
  }

  shutdown(): Promise<void> {
    return this.#pm2.shutdown();
  }

  /** bench/daemon's ecosystem, every app given its current CONFIG. */
  async #writeApps(): Promise<void> {
    const ecosystem = JSON.parse(pm2Ecosystem(this.#specs, this.#dir)) as { apps: { name: string; env?: Record<string, string> }[] };
    for (const app of ecosystem.apps) app.env = { CONFIG: this.#config.get(app.name) ?? INITIAL_CONFIG };
    await writeFile(join(this.#dir, APPS), `${JSON.stringify(ecosystem, null, 2)}\n`);
  }

  #cli(args: string[]): Promise<string> {
    return mustRun([process.execPath, PM2_BIN, ...args], { env: this.#env, cwd: this.#dir, timeoutMs: 60_000 });
  }
}
