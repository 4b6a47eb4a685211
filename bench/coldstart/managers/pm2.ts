// PM2 (installed into bench/.peers by bench/daemon's Pm2Manager), with bench/daemon's ecosystem
// entries in level order. PM2 has no dependencies between apps. What it can gate on:
//   pm2:       `wait_ready: true` — `pm2 start` waits for an app's process.send('ready') before it
//              counts that app started, and starts apps PM2_CONCURRENT_ACTIONS at a time (2 by
//              default) in file order. The C child sends the same message Node's process.send does:
//              the JSON line "ready" on fd $NODE_CHANNEL_FD, the IPC channel PM2's fork mode always
//              opens; no Node wrapper is needed. With one lane, every app waits for all earlier ones
//              to be ready (a strict order, no parallelism); with more, an app waits only for a free
//              lane, so it can start before its dependencies are ready.
//   pm2-order: no wait_ready: file order only, each app counted started once spawned.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pm2Manager, pm2Ecosystem } from '../../daemon/managers/pm2.js';
import { isAlive, killHard, mustRun, runCommand, tail, waitGone } from '../../daemon/proc.js';
import type { ColdProcess } from '../scenario.js';
import { childArgv, type ColdManager, type Setup } from './types.js';

/** Where bench/daemon's Pm2Manager installs PM2. */
const PM2_BIN = fileURLToPath(new URL('../../.peers/node_modules/pm2/bin/pm2', import.meta.url));
/** wait_ready's own time-out: an app not ready by then is counted started anyway. Far beyond any run. */
const LISTEN_TIMEOUT_MS = 60_000;

export type Pm2Mode = 'ready' | 'order';

export function coldEcosystem(setup: Setup, processes: readonly ColdProcess[], logDir: string, mode: Pm2Mode): string {
  // Level order: the scenario lists level 0 first, then level 1, and so on.
  const ordered = [...processes].sort((a, b) => a.level - b.level);
  const base = JSON.parse(pm2Ecosystem(ordered.map((p) => ({ name: p.name, argv: childArgv(setup, p.name, mode === 'ready' ? ['--ipc'] : []) })), logDir)) as { apps: Array<Record<string, unknown>> };
  const apps = base.apps.map((app) => (mode === 'ready' ? { ...app, wait_ready: true, listen_timeout: LISTEN_TIMEOUT_MS } : app));
  return `${JSON.stringify({ apps }, null, 2)}\n`;
}

export class Pm2ColdManager implements ColdManager {
  readonly key: 'pm2' | 'pm2-order';
  readonly name: string;
  readonly version: string;
  readonly settings: string;
  readonly timed = 't0: `pm2 start ecosystem.json` is spawned with no PM2 daemon running (it starts the daemon: its start-up is counted)';
  readonly command: string;
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #mode: Pm2Mode;
  readonly #lanes: number | undefined;
  #dir = '';
  #tornDown: Promise<void> | undefined;

  private constructor(setup: Setup, mode: Pm2Mode, lanes: number | undefined, version: string) {
    this.#setup = setup;
    this.#mode = mode;
    this.#lanes = lanes;
    this.version = version;
    this.key = mode === 'ready' ? 'pm2' : 'pm2-order';
    const laneText = lanes === undefined ? 'PM2_CONCURRENT_ACTIONS unset (2 apps at a time)' : `PM2_CONCURRENT_ACTIONS=${lanes}`;
    this.name = mode === 'ready' ? `PM2 ${version} (wait_ready, ${lanes ?? 2} lane${(lanes ?? 2) === 1 ? '' : 's'})` : `PM2 ${version} (file order only)`;
    this.settings =
      mode === 'ready'
        ? `ecosystem file in level order; bench/daemon's app settings (fork mode, interpreter none, autorestart) plus wait_ready: true, listen_timeout: ${LISTEN_TIMEOUT_MS}; the child sends "ready" on PM2's IPC channel as process.send would; ${laneText}. PM2 has no dependencies: an app waits for a free lane, and with one lane that means every earlier app is ready`
        : `ecosystem file in level order; bench/daemon's app settings (fork mode, interpreter none, autorestart), no wait_ready: order only, every app counted started once spawned; ${laneText}`;
    this.command = `${lanes === undefined ? '' : `PM2_CONCURRENT_ACTIONS=${lanes} `}PM2_HOME=TMP/home pm2 start TMP/ecosystem.json (stopped with pm2 kill)`;
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    const [app] = (JSON.parse(coldEcosystem({ ...setup, child: 'CHILD', socket: 'SOCKET' }, [example], 'TMP', mode)) as { apps: Array<Record<string, unknown>> }).apps;
    // One key a line, arrays inline: short enough to show.
    const fields = Object.entries(app ?? {}).map(([key, value]) => `    ${JSON.stringify(key)}: ${JSON.stringify(value)}`);
    this.sample = { language: 'json', text: `{"apps": [\n  {\n${fields.join(',\n')}\n  },\n  …\n]}` };
  }

  /** lanes: PM2_CONCURRENT_ACTIONS for `pm2 start` (undefined: PM2's default, 2). */
  static async create(setup: Setup, mode: Pm2Mode, lanes: number | undefined): Promise<Pm2ColdManager> {
    // bench/daemon's manager installs PM2 into bench/.peers when it is missing.
    const pm2 = await Pm2Manager.create({ dir: '/nonexistent', log: setup.log });
    if (!existsSync(PM2_BIN)) throw new Error(`${PM2_BIN} is missing after PM2's installation`);
    return new Pm2ColdManager(setup, mode, lanes, pm2.version);
  }

  get #env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, PM2_HOME: join(this.#dir, 'home') };
    delete env.PM2_CONCURRENT_ACTIONS;
    if (this.#lanes !== undefined) env.PM2_CONCURRENT_ACTIONS = String(this.#lanes);
    return env;
  }

  async prepare(dir: string): Promise<void> {
    this.#dir = dir;
    this.#tornDown = undefined;
    await writeFile(join(dir, 'ecosystem.json'), coldEcosystem(this.#setup, this.#setup.scenario.processes, dir, this.#mode));
  }

  async start(): Promise<void> {
    // With wait_ready, this returns once the last app has said "ready" (or after listen_timeout).
    await mustRun([process.execPath, PM2_BIN, 'start', join(this.#dir, 'ecosystem.json')], { env: this.#env, cwd: this.#dir, timeoutMs: 300_000 });
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      if (this.#dir === '' || !existsSync(join(this.#dir, 'home'))) return;
      const pid = Number((await readFile(join(this.#dir, 'home', 'pm2.pid'), 'utf8').catch(() => '')).trim()) || undefined;
      // Stops every app (SIGINT, SIGKILL after kill_timeout), then the daemon.
      await runCommand([process.execPath, PM2_BIN, 'kill'], { env: this.#env, cwd: this.#dir, timeoutMs: 120_000 }).catch(() => undefined);
      if (pid !== undefined && !(await waitGone(pid, 10_000))) {
        killHard(pid);
        throw new Error(`the PM2 daemon (pid ${pid}) outlived \`pm2 kill\`; killed`);
      }
    })();
    return this.#tornDown;
  }

  async diagnostics(): Promise<string> {
    const pid = Number((await readFile(join(this.#dir, 'home', 'pm2.pid'), 'utf8').catch(() => '')).trim()) || undefined;
    const log = await readFile(join(this.#dir, 'home', 'pm2.log'), 'utf8').catch(() => '');
    return `PM2 daemon ${pid !== undefined && isAlive(pid) ? 'running' : 'not running'}; pm2.log ends:\n${tail(log)}`;
  }
}
