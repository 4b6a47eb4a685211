// systemd 252 as PID 1 of a throwaway PID + mount namespace (test/support/systemd.ts, as
// bench/systemd.ts boots it), booted once per bench run: one Type=notify unit per process with
// Requires= and After= on its dependencies, and a target that Wants= them all. systemd is running
// with the units loaded before t0, as a machine's systemd is: t0 is `systemctl start TARGET`.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bootSystemd, type SystemdNamespace } from '../../../test/support/systemd.js';
import { removeUnitCgroups, systemdVersion } from '../../systemd/namespace.js';
import type { ColdProcess } from '../scenario.js';
import { childArgv, type ColdManager, type Setup, type Skipped } from './types.js';

const STOP_TIMEOUT_MS = 60_000;

export class SystemdColdManager implements ColdManager {
  readonly key = 'systemd';
  readonly name: string;
  readonly version: string;
  readonly settings =
    'one unit per process: Type=notify (ready when the child sends READY=1 to $NOTIFY_SOCKET), Requires= and After= on each dependency, DefaultDependencies=no, StartLimitIntervalSec=0; a target with Wants= on every unit; systemd orders the start jobs itself';
  readonly timed = 't0: `nsenter … systemctl start TARGET` is spawned; systemd is already running with the units loaded (daemon-reload once, before the first run): its start-up is not counted';
  readonly command = 'nsenter -t SYSTEMD_PID -m -p -- systemctl start cs-ID.target (stopped with systemctl stop of the target and every unit)';
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #sd: SystemdNamespace;
  readonly #prefix: string;
  /** The units installed (shared with the cleanup that sweeps their cgroups). */
  readonly #units: string[];
  #tornDown: Promise<void> | undefined;
  #closed: Promise<void> | undefined;

  private constructor(setup: Setup, sd: SystemdNamespace, version: string, units: string[]) {
    this.#setup = setup;
    this.#units = units;
    this.#sd = sd;
    this.version = version;
    this.name = `systemd ${/^systemd (\d+)/.exec(version)?.[1] ?? '?'} (Type=notify, Requires/After)`;
    this.#prefix = `cs-${process.pid}`;
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    this.sample = { language: 'ini', text: `# ${this.#unit(example.name).replace(this.#prefix, 'cs-ID')}\n${this.#unitText(example, ['CHILD', 'SOCKET', example.name, String(setup.scenario.readyMs), '--notify']).replaceAll(this.#prefix, 'cs-ID')}` };
  }

  /** Boots the namespace and installs the units; skipped, saying why, where systemd cannot boot. */
  static async create(setup: Setup, register: (label: string, run: () => Promise<void>) => void): Promise<SystemdColdManager | Skipped> {
    let sd: SystemdNamespace;
    try {
      setup.log('booting systemd in a new PID + mount namespace');
      sd = await bootSystemd();
    } catch (error) {
      return { key: 'systemd', name: 'systemd', skipped: (error as Error).message };
    }
    const units: string[] = [];
    register('end the systemd namespace', async () => {
      await sd.destroy();
      // After a namespace killed with units running, their empty cgroups stay in the host's hierarchies.
      removeUnitCgroups(units);
    });
    const manager = new SystemdColdManager(setup, sd, await systemdVersion(sd), units);
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
    for (const p of scenario.processes) {
      const unit = this.#unit(p.name);
      this.#units.push(unit);
      await writeFile(join(this.#sd.unitDir, unit), this.#unitText(p, childArgv(this.#setup, p.name, ['--notify'])));
    }
    await writeFile(join(this.#sd.unitDir, this.#target), ['[Unit]', 'Description=pm bench coldstart: every process', 'DefaultDependencies=no', 'StartLimitIntervalSec=0', `Wants=${this.#units.join(' ')}`, ''].join('\n'));
    await this.#sd.execOk(['systemctl', 'daemon-reload']);
  }

  async prepare(): Promise<void> {
    this.#tornDown = undefined;
    await this.#sd.exec(['systemctl', 'reset-failed']);
  }

  async start(): Promise<void> {
    await this.#sd.execOk(['systemctl', 'start', this.#target], STOP_TIMEOUT_MS);
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      await this.#sd.execOk(['systemctl', 'stop', this.#target, ...this.#units], STOP_TIMEOUT_MS);
    })();
    return this.#tornDown;
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
      await Promise.all([...this.#units, this.#target].map((unit) => rm(join(this.#sd.unitDir, unit), { force: true })));
      removeUnitCgroups(this.#units);
    })();
    return this.#closed;
  }
}
