// The supervisors of bench/systemd.ts, each given its own units running the same reporter: systemd
// alone (a unit the bench writes with Restart=always, RestartSec=0 or systemd's default 100 ms),
// and pm daemon with the systemd driver (one manifest per unit, through bench/daemon's PmManager;
// pm writes pm-NAME.service with Restart=no and restarts it itself).
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SystemdNamespace } from '../../test/support/systemd.js';
import { DEFAULT_CLI, PmManager } from '../daemon/managers/pm.js';

/** One unit to keep running: its name for the manager and the socket its runs report to. */
export interface UnitSpec {
  /** pm: the process name (the unit is pm-<name>.service); systemd: the unit's name without .service. */
  name: string;
  /** Passed to the reporter: it connects there as soon as it runs. */
  socket: string;
}

export interface UnitManager {
  readonly key: 'pm' | 'restart-0' | 'restart-default';
  /** As shown in the tables. */
  readonly name: string;
  /** Its restart policy and set-up, in its own terms (shown in the report). */
  readonly settings: string;
  /** What the manager is given for one unit (a unit file or a manifest), with placeholders. */
  readonly config: { language: 'ini' | 'yaml'; text: string };
  /** Starts supervising the units; resolves once accepted (they may not run yet). */
  start(units: UnitSpec[]): Promise<void>;
  /** systemd's name of the unit behind `spec`. */
  unitName(spec: UnitSpec): string;
  diagnostics(): Promise<string>;
  /** Stops supervising and stops every unit this manager started. Idempotent. */
  shutdown(): Promise<void>;
}

/** Placeholders in the configurations the report shows. */
const SHOWN: UnitSpec = { name: 'NAME', socket: 'SOCKET' };

/** systemd alone: a unit with Restart=always, restarted by systemd itself (PID 1 of the namespace). */
export class RestartAlwaysManager implements UnitManager {
  readonly key: 'restart-0' | 'restart-default';
  readonly name: string;
  readonly settings: string;
  readonly config: UnitManager['config'];
  readonly #sd: SystemdNamespace;
  readonly #reporter: string;
  readonly #restartSec: string | undefined;
  readonly #units: string[] = [];
  #stopped: Promise<void> | undefined;

  /** restartSec '0': systemd's fastest; undefined: its default (100 ms). */
  constructor(sd: SystemdNamespace, reporter: string, restartSec: '0' | undefined) {
    this.#sd = sd;
    this.#reporter = reporter;
    this.#restartSec = restartSec;
    this.key = restartSec === undefined ? 'restart-default' : 'restart-0';
    this.name = restartSec === undefined ? 'systemd Restart=always (default RestartSec=100ms)' : 'systemd Restart=always, RestartSec=0';
    this.settings =
      restartSec === undefined
        ? 'a unit written by the bench, `Restart=always` and no RestartSec= (systemd waits its default 100 ms before the restart)'
        : "a unit written by the bench, `Restart=always` and `RestartSec=0`: systemd's fastest restart, queued as soon as it has seen the exit";
    this.config = { language: 'ini', text: this.#unitText(SHOWN, 'REPORTER') };
  }

  #unitText(spec: UnitSpec, reporter = this.#reporter): string {
    return [
      '[Unit]',
      `Description=pm bench: ${this.name}`,
      '[Service]',
      'Type=exec',
      `ExecStart=${reporter} ${spec.socket}`,
      'Restart=always',
      ...(this.#restartSec === undefined ? [] : [`RestartSec=${this.#restartSec}`]),
      '',
    ].join('\n');
  }

  async start(units: UnitSpec[]): Promise<void> {
    for (const spec of units) {
      // Unquoted in ExecStart=: a path with whitespace or a specifier would be read otherwise.
      for (const path of [this.#reporter, spec.socket]) if (/[\s%$"'\\]/.test(path)) throw new Error(`${path}: a path the bench does not quote for ExecStart=`);
      this.#units.push(this.unitName(spec));
      await writeFile(join(this.#sd.unitDir, this.unitName(spec)), this.#unitText(spec));
    }
    await this.#sd.execOk(['systemctl', 'daemon-reload']);
    await this.#sd.execOk(['systemctl', 'start', ...this.#units]);
  }

  unitName(spec: UnitSpec): string {
    return `${spec.name}.service`;
  }

  async diagnostics(): Promise<string> {
    if (this.#units.length === 0) return 'no units';
    const result = await this.#sd.exec(['systemctl', 'show', '-p', 'Id,ActiveState,SubState,Result,NRestarts,MainPID', ...this.#units]);
    return result.stdout.trim() || result.stderr.trim();
  }

  /** Stopped (systemd then removes their cgroups) and their files removed. */
  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      if (this.#units.length === 0) return;
      await this.#sd.execOk(['systemctl', 'stop', ...this.#units]);
      await Promise.all(this.#units.map((unit) => rm(join(this.#sd.unitDir, unit), { force: true })));
      await this.#sd.execOk(['systemctl', 'daemon-reload']);
    })();
    return this.#stopped;
  }
}

/** The environment that points pm's systemd driver at the namespace (and its poll, when given). */
export function pmSystemdEnv(sd: Pick<SystemdNamespace, 'prefix' | 'unitDir' | 'systemdUnitDir'>, pollMs: number | undefined): Record<string, string> {
  return {
    PM_SYSTEMCTL_PREFIX: JSON.stringify(sd.prefix),
    PM_SYSTEMD_UNIT_DIR: sd.unitDir,
    PM_SYSTEMD_UNIT_DIR_SEEN_BY_SYSTEMD: sd.systemdUnitDir,
    ...(pollMs !== undefined && { PM_SYSTEMD_POLL_MS: String(pollMs) }),
  };
}

/** pm daemon with one systemd manifest per unit: restarted at once, never given up on. */
export class PmSystemdManager implements UnitManager {
  readonly key = 'pm';
  readonly name: string;
  readonly settings: string;
  readonly config: UnitManager['config'];
  /** The daemon's command line, with the environment that reaches the namespace. */
  readonly command: string;
  readonly #pm: PmManager;
  readonly #dir: string;
  readonly #reporter: string;
  #stopped: Promise<void> | undefined;

  private constructor(pm: PmManager, dir: string, reporter: string, pollMs: number, command: string) {
    this.#pm = pm;
    this.#dir = dir;
    this.#reporter = reporter;
    this.name = `pm ${pm.version} (systemd driver, poll ${pollMs} ms)`;
    this.settings = `driver systemd, one manifest per unit: restartPolicy {policy: always, backoff: {initialSeconds: 0, jitter: 0}, circuitBreaker: {enabled: false}}, minReadySeconds: 0; pm writes pm-NAME.service (Type=exec, Restart=no), learns of exits by one \`systemctl show\` of all its units every ${pollMs} ms, and starts the unit again`;
    this.config = { language: 'yaml', text: this.manifest(SHOWN, 'REPORTER') };
    this.command = command;
  }

  /** `pollMs` undefined: pm's default, `defaultPollMs` (shown), PM_SYSTEMD_POLL_MS unset. */
  static async create(dir: string, sd: SystemdNamespace, reporter: string, options: { pollMs: number | undefined; defaultPollMs: number; log: (line: string) => void; cli?: string; cliShown?: string }): Promise<PmSystemdManager> {
    const env = pmSystemdEnv(sd, options.pollMs);
    const pm = await PmManager.create({ dir, log: options.log }, options.cli ?? DEFAULT_CLI, { env });
    const shownEnv = Object.entries(pmSystemdEnv({ prefix: sd.prefix.map((w) => (w === String(sd.pid) ? 'SYSTEMD_PID' : w)), unitDir: '/proc/SYSTEMD_PID/root/run/systemd/system', systemdUnitDir: sd.systemdUnitDir }, options.pollMs))
      .map(([key, value]) => `${key}=${value.startsWith('[') ? `'${value}'` : value}`)
      .join(' ');
    return new PmSystemdManager(pm, dir, reporter, options.pollMs ?? options.defaultPollMs, `${shownEnv} ${PmManager.commandLine(options.cliShown ?? 'dist/cli/main.js')}`);
  }

  /** The manifest of one unit (shown in the report with NAME, SOCKET and REPORTER). */
  manifest(spec: UnitSpec, reporter = this.#reporter): string {
    return `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: ${spec.name}
spec:
  driver: systemd
  systemd:
    command: ${JSON.stringify([reporter, spec.socket])}
  minReadySeconds: 0
  restartPolicy:
    policy: always
    backoff: {initialSeconds: 0, jitter: 0}
    circuitBreaker: {enabled: false}
`;
  }

  async start(units: UnitSpec[]): Promise<void> {
    // PmManager writes exec manifests for the processes it is given: it is given none, and finds
    // these systemd manifests in its folder (DIR/manifests).
    const manifests = join(this.#dir, 'manifests');
    await mkdir(manifests, { recursive: true });
    await Promise.all(units.map((spec) => writeFile(join(manifests, `${spec.name}.yaml`), this.manifest(spec))));
    await this.#pm.start([]);
  }

  unitName(spec: UnitSpec): string {
    return `pm-${spec.name}.service`;
  }

  daemonPid(): number | undefined {
    return this.#pm.daemonPid();
  }

  /**
   * When pm took each exit in: the wall-clock ms of the daemon's `Exited` events (pino JSON lines in
   * DIR/daemon.log, where PmManager sends its output; --log-level warn keeps them), by process name.
   */
  async exitEvents(): Promise<Map<string, number[]>> {
    const events = new Map<string, number[]>();
    const text = await readFile(join(this.#dir, 'daemon.log'), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      let entry: { time?: unknown; process?: unknown; event?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      if (entry.event !== 'Exited' || typeof entry.process !== 'string' || typeof entry.time !== 'number') continue;
      events.set(entry.process, [...(events.get(entry.process) ?? []), entry.time]);
    }
    return events;
  }

  diagnostics(): Promise<string> {
    return this.#pm.diagnostics();
  }

  /** The daemon stops with --shutdown stop: its units are stopped (the reporter obeys SIGTERM) before it exits. */
  shutdown(): Promise<void> {
    this.#stopped ??= this.#pm.shutdown();
    return this.#stopped;
  }
}
