// The managers bench/footprint.ts compares: pm daemon, supervisord and PM2 as bench/daemon sets
// them up (imported, not copied; PM2 given more time to stop hundreds of apps), and systemd as a Manager of its own: a throwaway systemd booted
// for each measurement (test/support/systemd.ts) running one Restart=always unit per process
// (bench/systemd's RestartAlwaysManager). Its "daemon" is PID 1 of that namespace.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootSystemd, type SystemdNamespace } from '../../test/support/systemd.js';
import type { Manager, ManagerContext, ProcessSpec, Skipped } from '../daemon/manager.js';
import { PmManager } from '../daemon/managers/pm.js';
import { Pm2Manager } from '../daemon/managers/pm2.js';
import { SupervisordManager } from '../daemon/managers/supervisord.js';
import { mustRun, onPath, runCommand, waitGone } from '../daemon/proc.js';
import { RestartAlwaysManager } from '../systemd/managers.js';
import { removeUnitCgroups } from '../systemd/namespace.js';

export const MANAGER_KEYS = ['pm', 'supervisord', 'pm2', 'systemd'] as const;
export type ManagerKey = (typeof MANAGER_KEYS)[number];

/** A manager made afresh for every measurement (its own temp folder), or the reason it cannot run here. */
export type ManagerFactory = (context: ManagerContext) => Promise<Manager | Skipped>;

/** Each manager's factory; pm's daemon gets `pmDaemonArgs` (--pm-daemon-args) on its command line. */
export function factories(pmDaemonArgs: readonly string[]): Record<ManagerKey, ManagerFactory> {
  return {
    pm: (c) => PmManager.create(c, undefined, { args: pmDaemonArgs }),
    supervisord: (c) => SupervisordManager.create(c),
    pm2: (c) => PatientPm2.create(c),
    systemd: (c) => SystemdUnitsManager.create(c),
  };
}

/** Which of a manager's processes are measured, in words (shown in the report). */
export const MEASURED: Record<ManagerKey, string> = {
  pm: 'the `pm daemon` process (node)',
  supervisord: 'the `supervisord -n` process (python3)',
  pm2: "PM2's God daemon (node; `PM2_HOME/pm2.pid`); the `pm2` CLI has exited",
  systemd: 'PID 1 of a throwaway PID + mount namespace (systemd --system, booted for each measurement with only the units of the run; its baseline is a bare systemd, not a host\'s)',
};

/** systemd keeping every process running as a unit of its own (Type=exec, Restart=always, RestartSec=0). */
export class SystemdUnitsManager implements Manager {
  readonly name = 'systemd';
  readonly settings = 'one unit per process, written by the bench into the namespace\'s /run/systemd/system: Type=exec, Restart=always, RestartSec=0; `systemctl daemon-reload`, then one `systemctl start` of them all';
  readonly version: string;
  #sd: SystemdNamespace | undefined;
  #units: RestartAlwaysManager | undefined;
  #unitNames: string[] = [];
  #stopped: Promise<void> | undefined;

  private constructor(version: string) {
    this.version = version;
  }

  static async create(_context: ManagerContext): Promise<SystemdUnitsManager | Skipped> {
    if (process.getuid?.() !== 0 || onPath('systemctl') === undefined) return { name: 'systemd', skipped: 'booting a throwaway systemd needs root and systemd (test/support/systemd.ts)' };
    // The host's systemctl is the same package as the systemd booted in the namespace.
    const version = (await mustRun(['systemctl', '--version'])).split('\n')[0]?.trim().replace(/^systemd /, '') ?? '?';
    return new SystemdUnitsManager(version);
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    const reporter = processes[0]?.argv[0];
    if (reporter === undefined) throw new Error('systemd: no processes to start');
    for (const p of processes) if (p.argv.length !== 2 || p.argv[0] !== reporter) throw new Error(`systemd: ${p.name} is not "REPORTER SOCKET": ${p.argv.join(' ')}`);
    this.#sd = await bootSystemd();
    this.#units = new RestartAlwaysManager(this.#sd, reporter, '0');
    this.#unitNames = processes.map((p) => `${p.name}.service`);
    await this.#units.start(processes.map((p) => ({ name: p.name, socket: p.argv[1] as string })));
  }

  daemonPid(): number | undefined {
    return this.#sd?.pid;
  }

  async diagnostics(): Promise<string> {
    return this.#units ? (await this.#units.diagnostics()).split('\n').slice(-30).join('\n') : 'systemd not booted';
  }

  /** Units stopped, then the namespace ended (SIGKILL to its PID 1) and the units' empty cgroups removed. */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      try {
        await this.#units?.shutdown();
      } finally {
        await this.#sd?.destroy();
        removeUnitCgroups(this.#unitNames);
      }
    })();
    return this.#stopped;
  }
}

const PM2_BIN = fileURLToPath(new URL('../.peers/node_modules/pm2/bin/pm2', import.meta.url));
/** PM2 stops its apps one by one (a `ps` per app to kill its tree): some 100 ms each here. */
const PM2_KILL_TIMEOUT_MS = 600_000;

/**
 * bench/daemon's PM2, given the time `pm2 kill` needs with hundreds of apps: its own shutdown
 * allows 60 s, after which it kills the God daemon and leaves the apps behind. PM2_HOME is where
 * Pm2Manager puts it (the context's folder, `home`).
 */
class PatientPm2 implements Manager {
  readonly #inner: Pm2Manager;
  readonly #home: string;
  #stopped: Promise<void> | undefined;

  constructor(inner: Pm2Manager, context: ManagerContext) {
    this.#inner = inner;
    this.#home = join(context.dir, 'home');
  }

  static async create(context: ManagerContext): Promise<PatientPm2> {
    return new PatientPm2(await Pm2Manager.create(context), context);
  }

  get name(): string {
    return this.#inner.name;
  }

  get version(): string {
    return this.#inner.version;
  }

  get settings(): string {
    return this.#inner.settings;
  }

  start(processes: ProcessSpec[]): Promise<void> {
    return this.#inner.start(processes);
  }

  daemonPid(): number | undefined {
    return this.#inner.daemonPid();
  }

  diagnostics(): Promise<string> {
    return this.#inner.diagnostics();
  }

  /** `pm2 kill` with time enough; Pm2Manager's own shutdown only if the daemon outlived it (it then kills it and throws). */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      const pid = this.#inner.daemonPid();
      if (pid === undefined || !existsSync(this.#home)) return this.#inner.shutdown();
      await runCommand([process.execPath, PM2_BIN, 'kill'], { env: { ...process.env, PM2_HOME: this.#home }, timeoutMs: PM2_KILL_TIMEOUT_MS }).catch(() => undefined);
      if (!(await waitGone(pid, 10_000))) await this.#inner.shutdown();
    })();
    return this.#stopped;
  }
}
