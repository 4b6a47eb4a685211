// systemd as a peer in bench/daemon.ts: a throwaway systemd 252 booted as PID 1 of a new PID +
// mount namespace (test/support/systemd.ts, as bench/systemd.ts does: units only from its private
// /run), one unit per child written by bench/systemd's RestartAlwaysManager with Restart=always and
// RestartSec=0, systemd's fastest restart. The reporter runs inside but shares the file system
// (all but /run), so it reaches the bench's socket in the run's temp folder. It reports its pid in
// the namespace: the crash maps that to the host's pid (bench/systemd/namespace.ts) before t0.
import { bootSystemd, SystemdUnavailableError, type SystemdNamespace } from '../../../test/support/systemd.js';
import { RestartAlwaysManager, type UnitSpec } from '../../systemd/managers.js';
import { hostPidOf, removeUnitCgroups, systemdVersion } from '../../systemd/namespace.js';
import type { Manager, ManagerContext, ProcessSpec, Skipped } from '../manager.js';
import type { CrashedInTurns } from '../scenarios.js';

/**
 * systemd refuses a unit's 6th start within 10 s (StartLimitBurst=5 in StartLimitIntervalSec=10s,
 * its defaults, which the unit keeps): 4 units take turns, each up 3 s before its next crash.
 */
const UNITS = 4;
const REST_MS = 3_000;

export class SystemdRestartManager implements Manager, CrashedInTurns {
  readonly name = 'systemd';
  readonly version: string;
  /** "252 (252.38-1~deb12u1)". */
  readonly #release: string;
  readonly turns = { children: UNITS, restMs: REST_MS };
  readonly #sd: SystemdNamespace;
  /** For the report: its settings and unit text, with REPORTER and SOCKET as placeholders. */
  readonly #shown: RestartAlwaysManager;
  /** The units' own, made by start() with the real reporter. */
  #policy: RestartAlwaysManager | undefined;
  /** The reporter every unit runs (the crash checks that the pid it kills runs it). */
  #reporter = '';
  readonly #units = new Map<string, UnitSpec>();
  #stopped: Promise<void> | undefined;

  private constructor(sd: SystemdNamespace, release: string) {
    this.#sd = sd;
    this.#release = release;
    this.version = `${release}, Restart=always, RestartSec=0`;
    // Writes no file until its start(), which is never called.
    this.#shown = new RestartAlwaysManager(sd, 'REPORTER', '0');
  }

  /** Boots the namespace; Skipped when systemd cannot run here (not root, no systemd 252, no util-linux). */
  static async create(context: ManagerContext): Promise<SystemdRestartManager | Skipped> {
    let sd: SystemdNamespace;
    try {
      context.log('booting systemd in a new PID + mount namespace');
      sd = await bootSystemd();
    } catch (error) {
      if (error instanceof SystemdUnavailableError) return { name: 'systemd', skipped: error.message };
      throw error;
    }
    try {
      return new SystemdRestartManager(sd, (await systemdVersion(sd)).replace(/^systemd /, ''));
    } catch (error) {
      await sd.destroy();
      throw error;
    }
  }

  get settings(): string {
    const unit = this.#shown.config.text.trimEnd().split('\n');
    return [
      `systemd ${this.#release} booted as PID 1 of a throwaway PID + mount namespace (test/support/systemd.ts: units only from its private /run), reached with \`nsenter -t PID -m -p --\`; ${this.#shown.settings}; ${UNITS} units taking turns, each up ≥ ${REST_MS / 1000} s before its next crash (systemd refuses a 6th start in 10 s); the unit, for NAME (SOCKET: the bench's socket in the temp folder, which the namespace shares):`,
      '',
      '  ```ini',
      ...unit.map((line) => `  ${line}`),
      '  ```',
      '',
      "  crash: SIGKILL from the host of the unit's main process; the reporter reports its pid in the namespace, and the bench kills the child of systemd that has that pid there (checked to run the reporter)",
    ].join('\n');
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    this.#reporter = processes[0]?.argv[0] ?? '';
    const specs = processes.map((p) => {
      const [program, socket, ...rest] = p.argv;
      if (program !== this.#reporter || socket === undefined || rest.length > 0) throw new Error(`systemd: every unit runs the same reporter with one socket, not ${p.argv.join(' ')}`);
      const spec: UnitSpec = { name: `bench-daemon-${process.pid}-${p.name}`, socket };
      this.#units.set(p.name, spec);
      return spec;
    });
    this.#policy = new RestartAlwaysManager(this.#sd, this.#reporter, '0');
    await this.#policy.start(specs);
  }

  /** systemd itself, PID 1 of the namespace (its memory is reported). */
  daemonPid(): number | undefined {
    return this.#sd.pid;
  }

  async prepareCrash(spec: ProcessSpec, reported: number): Promise<() => void> {
    if (!this.#units.has(spec.name)) throw new Error(`systemd: no unit for ${spec.name}`);
    const pid = hostPidOf(this.#sd, reported, this.#reporter);
    return () => process.kill(pid, 'SIGKILL');
  }

  async diagnostics(): Promise<string> {
    return (await this.#policy?.diagnostics()) ?? 'systemd: no units started';
  }

  /** Stops the units, then ends the namespace (SIGKILL to systemd ends everything in it) and removes the units' empty cgroups. */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      let failure: unknown;
      await this.#policy?.shutdown().catch((error: unknown) => (failure = error));
      await this.#sd.destroy();
      removeUnitCgroups([...this.#units.values()].map((spec) => this.#shown.unitName(spec)));
      if (failure !== undefined) throw failure;
    })();
    return this.#stopped;
  }
}
