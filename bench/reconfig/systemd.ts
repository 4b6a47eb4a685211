// systemd for bench/reconfig.ts: a throwaway systemd booted as PID 1 of a PID + mount namespace
// (test/support/systemd.ts, as bench/systemd.ts uses it), one unit per process with
// Environment=CONFIG=…. A reconfiguration rewrites the unit's Environment= line and runs
// `systemctl daemon-reload` and `systemctl restart UNIT`, each through `nsenter` into the namespace
// (a cost a real host does not have: about 9 ms a call here, see bench:systemd's "prefix alone").
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bootSystemd, type SystemdNamespace } from '../../test/support/systemd.js';
import type { ProcessSpec } from '../daemon/manager.js';
import { hostPidOf, removeUnitCgroups, systemdVersion } from '../systemd/namespace.js';
import { INITIAL_CONFIG, type ReconfigManager } from './manager.js';

export class SystemdReconfig implements ReconfigManager {
  readonly key = 'systemd';
  readonly name = 'systemd';
  readonly version: string;
  readonly settings =
    'booted as PID 1 of a throwaway PID + mount namespace (test/support/systemd.ts: units only from its private /run); one unit per process, written by the bench into /run/systemd/system: Type=exec, ExecStart=REPORTER SOCKET, Environment=CONFIG=…, Restart=always, StartLimitIntervalSec=0 (no start rate limit, so that a small --processes cannot hit it)';
  readonly command = 'nsenter -t SYSTEMD_PID -m -p -- systemctl start UNIT…';
  readonly reconfigPath = 'rewrite the unit\'s `Environment=CONFIG=…` (a temp file renamed over it), then `systemctl daemon-reload` and `systemctl restart UNIT`, both through `nsenter -t SYSTEMD_PID -m -p --` (both calls are in the time)';
  readonly #sd: SystemdNamespace;
  readonly #reporter: string;
  readonly #units = new Map<string, { spec: ProcessSpec; unit: string }>();
  #stopped: Promise<void> | undefined;

  private constructor(sd: SystemdNamespace, reporter: string, version: string) {
    this.#sd = sd;
    this.#reporter = reporter;
    this.version = version.replace(/^systemd /, '');
  }

  /** Boots the namespace; the caller must shut it down (which kills everything inside). */
  static async create(reporter: string): Promise<SystemdReconfig> {
    const sd = await bootSystemd();
    try {
      return new SystemdReconfig(sd, reporter, await systemdVersion(sd));
    } catch (error) {
      await sd.destroy();
      throw error;
    }
  }

  #unitText(spec: ProcessSpec, value: string): string {
    for (const word of [...spec.argv, value]) if (/[\s%$"'\\]/.test(word)) throw new Error(`systemd: ${word}: a word the bench does not quote in a unit`);
    return ['[Unit]', `Description=pm bench:reconfig ${spec.name}`, 'StartLimitIntervalSec=0', '[Service]', 'Type=exec', `ExecStart=${spec.argv.join(' ')}`, `Environment=CONFIG=${value}`, 'Restart=always', ''].join('\n');
  }

  async #write(name: string, value: string): Promise<string> {
    const entry = this.#units.get(name);
    if (!entry) throw new Error(`systemd: no unit for ${name}`);
    const path = join(this.#sd.unitDir, entry.unit);
    await writeFile(`${path}.tmp`, this.#unitText(entry.spec, value));
    await rename(`${path}.tmp`, path);
    return entry.unit;
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    for (const spec of processes) this.#units.set(spec.name, { spec, unit: `bench-reconfig-${process.pid}-${spec.name}.service` });
    for (const spec of processes) await this.#write(spec.name, INITIAL_CONFIG);
    await this.#sd.execOk(['systemctl', 'daemon-reload']);
    await this.#sd.execOk(['systemctl', 'start', ...[...this.#units.values()].map((u) => u.unit)]);
  }

  async reconfigure(name: string, value: string): Promise<void> {
    const unit = await this.#write(name, value);
    await this.#sd.execOk(['systemctl', 'daemon-reload']);
    await this.#sd.execOk(['systemctl', 'restart', unit]);
  }

  /** The reporter's getpid() is its pid in the namespace. */
  hostPid(pid: number): number {
    return hostPidOf(this.#sd, pid, this.#reporter);
  }

  daemonPid(): number | undefined {
    return this.#sd.pid;
  }

  async diagnostics(): Promise<string> {
    if (this.#units.size === 0) return 'systemd: no units yet';
    const shown = await this.#sd.exec(['systemctl', 'list-units', '--all', '--no-pager', 'bench-reconfig-*']);
    return `systemd's units:\n${shown.stdout}${shown.stderr}`;
  }

  /** SIGKILL to systemd ends the namespace, every unit in it and its private /run (the unit files); then the empty cgroups go. */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      await this.#sd.destroy();
      removeUnitCgroups([...this.#units.values()].map((u) => u.unit));
    })();
    return this.#stopped;
  }
}
