// systemd 252 as PID 1 of a throwaway PID + mount namespace (test/support/systemd.ts, as
// bench/systemd.ts boots it), booted once per bench run: one Type=notify unit per process with
// Requires= and After= on its dependencies, and a target that Wants= them all. Two ways:
//   loaded: the units loaded before t0, as a machine's systemd has them: t0 is `systemctl start TARGET`;
//   reload: systemd given the set while it runs, as pm-warm is: t0 is the first of the renames that
//           put the unit files in its unit folder, then `systemctl daemon-reload` and `systemctl start
//           TARGET` (each teardown removes the files and reloads again, untimed).
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bootSystemd, type SystemdNamespace } from '../../../test/support/systemd.js';
import { removeUnitCgroups, systemdVersion } from '../../systemd/namespace.js';
import type { ColdProcess } from '../scenario.js';
import { childArgv, type ColdManager, type Setup, type Skipped } from './types.js';

const STOP_TIMEOUT_MS = 60_000;
/** Where the reload mode stages its unit files: the namespace's /run, the unit folder's filesystem (for rename). */
const STAGING_DIR = '/run/pm-bench-staging';

export type SystemdMode = 'loaded' | 'reload';

export class SystemdColdManager implements ColdManager {
  readonly key: 'systemd' | 'systemd-reload';
  readonly name: string;
  readonly version: string;
  readonly settings =
    'one unit per process: Type=notify (ready when the child sends READY=1 to $NOTIFY_SOCKET), Requires= and After= on each dependency, DefaultDependencies=no, StartLimitIntervalSec=0; a target with Wants= on every unit; systemd orders the start jobs itself';
  readonly timed: string;
  readonly command: string;
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #sd: SystemdNamespace;
  readonly #mode: SystemdMode;
  readonly #prefix: string;
  /** The units installed (shared with the cleanup that sweeps their cgroups). */
  readonly #units: string[];
  #tornDown: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  private constructor(setup: Setup, sd: SystemdNamespace, version: string, units: string[], mode: SystemdMode) {
    this.#setup = setup;
    this.#units = units;
    this.#sd = sd;
    this.#mode = mode;
    this.version = version;
    this.key = mode === 'loaded' ? 'systemd' : 'systemd-reload';
    const major = /^systemd (\d+)/.exec(version)?.[1] ?? '?';
    this.name = mode === 'loaded' ? `systemd ${major} (Type=notify, Requires/After)` : `systemd ${major}, units added while running`;
    // Each mode boots its own namespace; distinct names keep their cgroups apart on the host.
    this.#prefix = `${mode === 'loaded' ? 'cs' : 'cr'}-${process.pid}`;
    this.timed =
      mode === 'loaded'
        ? 't0: `nsenter … systemctl start TARGET` is spawned; systemd is already running with the units loaded (daemon-reload once, before the first run): its start-up is not counted'
        : "t0: the first of the renames that put the unit files into systemd's unit folder (staged on the same filesystem), then `systemctl daemon-reload` and `systemctl start TARGET`, as pm's set added while running; systemd's start-up is not counted";
    this.command =
      mode === 'loaded'
        ? 'nsenter -t SYSTEMD_PID -m -p -- systemctl start cs-ID.target (stopped with systemctl stop of the target and every unit)'
        : 'the unit files renamed into /run/systemd/system, then nsenter -t SYSTEMD_PID -m -p -- systemctl daemon-reload, then the same with systemctl start cr-ID.target (stopped with systemctl stop of the target and every unit, the files removed and daemon-reload, untimed)';
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    const shownPrefix = `${this.#prefix.slice(0, 2)}-ID`;
    this.sample = { language: 'ini', text: `# ${this.#unit(example.name).replace(this.#prefix, shownPrefix)}\n${this.#unitText(example, ['CHILD', 'SOCKET', example.name, String(setup.scenario.readyMs), '--notify']).replaceAll(this.#prefix, shownPrefix)}` };
  }

  /** Boots the namespace and installs the units; skipped, saying why, where systemd cannot boot. */
  static async create(setup: Setup, mode: SystemdMode, register: (label: string, run: () => Promise<void>) => void): Promise<SystemdColdManager | Skipped> {
    let sd: SystemdNamespace;
    try {
      setup.log('booting systemd in a new PID + mount namespace');
      sd = await bootSystemd();
    } catch (error) {
      return mode === 'loaded' ? { key: 'systemd', name: 'systemd', skipped: (error as Error).message } : { key: 'systemd-reload', name: 'systemd, units added while running', skipped: (error as Error).message };
    }
    const units: string[] = [];
    register('end the systemd namespace', async () => {
      await sd.destroy();
      // After a namespace killed with units running, their empty cgroups stay in the host's hierarchies.
      removeUnitCgroups(units);
    });
    const manager = new SystemdColdManager(setup, sd, await systemdVersion(sd), units, mode);
    register("remove the bench's units", () => manager.close());
    await manager.#install();
    return manager;
  }

  #unit(name: string): string {
    return `${this.#prefix}-${name}.service`;
  }

  get #target(): string {
    return `${this.#prefix}.target`;
  }

  #unitText(p: ColdProcess, argv: readonly string[]): string {
    const deps = p.dependsOn.map((d) => this.#unit(d)).join(' ');
    return [
      '[Unit]',
      `Description=pm bench coldstart ${p.name}`,
      'DefaultDependencies=no',
      'StartLimitIntervalSec=0',
      ...(deps === '' ? [] : [`Requires=${deps}`, `After=${deps}`]),
      '[Service]',
      'Type=notify',
      `ExecStart=${argv.join(' ')}`,
      '',
    ].join('\n');
  }

  async #install(): Promise<void> {
    const { scenario } = this.#setup;
    for (const path of [this.#setup.child, this.#setup.socket]) if (/[\s%$"'\\]/.test(path)) throw new Error(`${path}: a path the bench does not quote for ExecStart=`);
    for (const p of scenario.processes) this.#units.push(this.#unit(p.name));
    if (this.#mode === 'reload') return; // written each run, by prepare
    await this.#writeUnits(this.#sd.unitDir);
    await this.#sd.execOk(['systemctl', 'daemon-reload']);
  }

  /** Every unit file and the target, written into `dir`. */
  async #writeUnits(dir: string): Promise<void> {
    const { scenario } = this.#setup;
    await Promise.all(scenario.processes.map((p) => writeFile(join(dir, this.#unit(p.name)), this.#unitText(p, childArgv(this.#setup, p.name, ['--notify'])))));
    await writeFile(join(dir, this.#target), ['[Unit]', 'Description=pm bench coldstart: every process', 'DefaultDependencies=no', 'StartLimitIntervalSec=0', `Wants=${this.#units.join(' ')}`, ''].join('\n'));
  }

  /** The names of the files #writeUnits writes. */
  #files(): string[] {
    return [...this.#units, this.#target];
  }

  async prepare(): Promise<void> {
    this.#tornDown = undefined;
    await this.#sd.exec(['systemctl', 'reset-failed']);
    if (this.#mode === 'loaded') return;
    const staging = this.#sd.hostPath(STAGING_DIR);
    await mkdir(staging, { recursive: true });
    await this.#writeUnits(staging);
  }

  async start(): Promise<void> {
    if (this.#mode === 'reload') {
      // Each file appears whole, as pm-warm's manifests do; then systemd is told to read them.
      const staging = this.#sd.hostPath(STAGING_DIR);
      for (const file of this.#files()) await rename(join(staging, file), join(this.#sd.unitDir, file));
      await this.#sd.execOk(['systemctl', 'daemon-reload'], STOP_TIMEOUT_MS);
    }
    await this.#sd.execOk(['systemctl', 'start', this.#target], STOP_TIMEOUT_MS);
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      if (this.#mode === 'loaded') {
        await this.#sd.execOk(['systemctl', 'stop', this.#target, ...this.#units], STOP_TIMEOUT_MS);
        return;
      }
      // Units systemd never loaded (no run yet, or a start that failed before daemon-reload) make
      // `systemctl stop` exit 5; the files still go, and systemd reloads without them.
      const stopped = await this.#sd.exec(['systemctl', 'stop', this.#target, ...this.#units], STOP_TIMEOUT_MS);
      if (stopped.code !== 0 && stopped.code !== 5) throw new Error(`systemctl stop (in the namespace) exited with ${stopped.code}: ${stopped.stderr.trim()}`);
      // The next run gives systemd the set anew: it must not know the units before its t0.
      await this.#removeUnitFiles();
      await this.#sd.execOk(['systemctl', 'daemon-reload'], STOP_TIMEOUT_MS);
    })();
    return this.#tornDown;
  }

  #removeUnitFiles(): Promise<unknown> {
    return Promise.all(this.#files().map((file) => rm(join(this.#sd.unitDir, file), { force: true })));
  }

  cpuPid(): number {
    return this.#sd.pid;
  }

  async diagnostics(): Promise<string> {
    const result = await this.#sd.exec(['systemctl', 'list-units', '--all', '--no-pager', '--plain', `${this.#prefix}-*`]);
    return (result.stdout.trim() || result.stderr.trim()).split('\n').slice(0, 30).join('\n');
  }

  /** Stops the units and removes their files; the namespace itself ends with the bench's cleanup. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#sd.exec(['systemctl', 'stop', this.#target, ...this.#units], STOP_TIMEOUT_MS);
      await this.#removeUnitFiles();
      await rm(this.#sd.hostPath(STAGING_DIR), { recursive: true, force: true });
      removeUnitCgroups(this.#units);
    })();
    return this.#closed;
  }
}
