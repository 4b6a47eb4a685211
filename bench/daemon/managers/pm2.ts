// PM2 from npm, installed into bench/.peers by the bench itself, with PM2_HOME in the run's temp
// folder so nothing touches ~/.pm2. The program runs in fork mode without an interpreter, restarted
// at once (restart_delay 0) and never given up on (max_restarts far beyond any run).
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Manager, ManagerContext, ProcessSpec } from '../manager.js';
import { isAlive, killHard, mustRun, tail, waitGone } from '../proc.js';

const PEERS = fileURLToPath(new URL('../../.peers/', import.meta.url));
const PM2_DIR = join(PEERS, 'node_modules', 'pm2');
const PM2_BIN = join(PM2_DIR, 'bin', 'pm2');

/** Installs PM2 into bench/.peers when it is not there yet. */
async function ensureInstalled(log: (line: string) => void): Promise<void> {
  if (existsSync(PM2_BIN)) return;
  log('installing PM2: npm install --prefix bench/.peers pm2@latest');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  await mustRun([npm, 'install', '--prefix', PEERS, 'pm2@latest', '--no-audit', '--no-fund'], { timeoutMs: 300_000 });
  if (!existsSync(PM2_BIN)) throw new Error(`npm install finished but ${PM2_BIN} is missing`);
}

export function pm2Ecosystem(processes: ProcessSpec[], logDir: string): string {
  const apps = processes.map((p) => ({
    name: p.name,
    script: p.argv[0],
    args: p.argv.slice(1),
    interpreter: 'none',
    exec_mode: 'fork',
    autorestart: true,
    restart_delay: 0,
    // An exit before min_uptime counts as unstable; max_restarts unstable ones stop the app.
    // 100 ms is the smallest min_uptime PM2's schema accepts.
    min_uptime: 100,
    max_restarts: 1_000_000,
    // No git metadata lookups for the program's folder.
    vizion: false,
    out_file: join(logDir, `${p.name}.out.log`),
    error_file: join(logDir, `${p.name}.err.log`),
  }));
  return `${JSON.stringify({ apps }, null, 2)}\n`;
}

export class Pm2Manager implements Manager {
  readonly name = 'PM2';
  readonly settings = 'ecosystem file: fork mode, interpreter none, autorestart: true, restart_delay: 0, min_uptime: 100, max_restarts: 1000000, vizion: false; PM2_HOME in a temp folder';
  readonly version: string;
  readonly #dir: string;
  readonly #env: NodeJS.ProcessEnv;
  #pid: number | undefined;
  #stopped: Promise<void> | undefined;

  private constructor(context: ManagerContext, version: string) {
    this.#dir = context.dir;
    this.version = version;
    this.#env = { ...process.env, PM2_HOME: join(context.dir, 'home') };
  }

  static async create(context: ManagerContext): Promise<Pm2Manager> {
    await ensureInstalled(context.log);
    const version = (JSON.parse(await readFile(join(PM2_DIR, 'package.json'), 'utf8')) as { version: string }).version;
    return new Pm2Manager(context, version);
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    const file = join(this.#dir, 'ecosystem.json');
    await writeFile(file, pm2Ecosystem(processes, this.#dir));
    await this.#pm2(['start', file]);
    this.#pid = Number((await readFile(join(this.#dir, 'home', 'pm2.pid'), 'utf8')).trim());
  }

  daemonPid(): number | undefined {
    return this.#pid;
  }

  async diagnostics(): Promise<string> {
    const log = await readFile(join(this.#dir, 'home', 'pm2.log'), 'utf8').catch(() => '');
    return `PM2 daemon ${this.#pid !== undefined && isAlive(this.#pid) ? 'running' : 'not running'}; pm2.log ends:\n${tail(log)}`;
  }

  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      if (!existsSync(join(this.#dir, 'home'))) return;
      // `pm2 kill` stops every app (SIGINT, SIGKILL after kill_timeout) and then the daemon.
      await this.#pm2(['kill']).catch(() => undefined);
      if (this.#pid !== undefined && !(await waitGone(this.#pid, 10_000))) {
        killHard(this.#pid);
        throw new Error(`the PM2 daemon (pid ${this.#pid}) outlived \`pm2 kill\`; killed`);
      }
    })();
    return this.#stopped;
  }

  #pm2(args: string[]): Promise<string> {
    return mustRun([process.execPath, PM2_BIN, ...args], { env: this.#env, cwd: this.#dir, timeoutMs: 60_000 });
  }
}
