// supervisord (Debian's `supervisor`, installed by bench/daemon's SupervisordManager when missing and
// the bench is root): bench/daemon's config for every program plus `priority` by level. supervisord
// has no dependencies and no readiness: it starts programs in priority order without waiting for any
// of them (startsecs only decides when it calls one RUNNING), so order is all it can give.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisordManager, supervisordConfig } from '../../daemon/managers/supervisord.js';
import { Background, isAlive, onPath, runCommand, tail } from '../../daemon/proc.js';
import type { ColdProcess } from '../scenario.js';
import { childArgv, type ColdManager, type Setup, type Skipped } from './types.js';

const STOP_TIMEOUT_MS = 30_000;

/** Lower starts first; level k gets 100 + 10k. */
export function priorityOf(p: ColdProcess): number {
  return 100 + 10 * p.level;
}

/** bench/daemon's config (autostart, startsecs=0, output to a log file) with each program's priority added. */
export function coldSupervisordConfig(setup: Setup, dir: string): string {
  const base = supervisordConfig(
    setup.scenario.processes.map((p) => ({ name: p.name, argv: childArgv(setup, p.name, []) })),
    dir,
  );
  const byName = new Map(setup.scenario.processes.map((p) => [p.name, p]));
  return base.replace(/^\[program:([^\]]+)\]$/gm, (header, name: string) => `${header}\npriority=${priorityOf(byName.get(name) as ColdProcess)}`);
}

export class SupervisordColdManager implements ColdManager {
  readonly key = 'supervisord';
  readonly name: string;
  readonly version: string;
  readonly settings =
    'one [program:NAME] per process with priority = 100 + 10 × level (lower starts first), autostart=true, startsecs=0, autorestart=true; no readiness gating exists: programs are started in priority order, none waits for another to be ready';
  readonly timed = 't0: `supervisord -n -c CONF` is spawned with the set in CONF (its start-up is counted)';
  readonly command = 'supervisord -n -c TMP/supervisord.conf (stopped with supervisorctl -c TMP/supervisord.conf shutdown)';
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #paths: { supervisord: string; supervisorctl: string };
  #dir = '';
  #daemon: Background | undefined;
  #tornDown: Promise<void> | undefined;

  private constructor(setup: Setup, paths: { supervisord: string; supervisorctl: string }, version: string) {
    this.#setup = setup;
    this.#paths = paths;
    this.version = version;
    this.name = `supervisord ${version} (priorities)`;
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    const programs = coldSupervisordConfig({ ...setup, child: 'CHILD', socket: 'SOCKET', scenario: { ...setup.scenario, processes: [example] } }, 'TMP');
    this.sample = { language: 'ini', text: programs.slice(programs.indexOf('[program:')).trim() };
  }

  static async create(setup: Setup): Promise<SupervisordColdManager | Skipped> {
    // bench/daemon's manager installs supervisord (as root) or says why it cannot.
    const probe = await SupervisordManager.create({ dir: '/nonexistent', log: setup.log });
    if ('skipped' in probe) return { key: 'supervisord', name: 'supervisord', skipped: probe.skipped };
    const supervisord = onPath('supervisord');
    const supervisorctl = onPath('supervisorctl');
    if (!supervisord || !supervisorctl) return { key: 'supervisord', name: 'supervisord', skipped: 'supervisord or supervisorctl not on PATH' };
    return new SupervisordColdManager(setup, { supervisord, supervisorctl }, probe.version);
  }

  get #config(): string {
    return join(this.#dir, 'supervisord.conf');
  }

  async prepare(dir: string): Promise<void> {
    this.#dir = dir;
    this.#daemon = undefined;
    this.#tornDown = undefined;
    await writeFile(this.#config, coldSupervisordConfig(this.#setup, dir));
  }

  async start(): Promise<void> {
    this.#daemon = await Background.start([this.#paths.supervisord, '-n', '-c', this.#config], { cwd: this.#dir, logFile: join(this.#dir, 'stdout.log') });
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      const daemon = this.#daemon;
      if (!daemon?.running) return;
      // Stops every program (SIGTERM, stopwaitsecs 10), then exits.
      await runCommand([this.#paths.supervisorctl, '-c', this.#config, 'shutdown'], { timeoutMs: STOP_TIMEOUT_MS }).catch(() => undefined);
      if (!(await daemon.stop('SIGTERM', STOP_TIMEOUT_MS))) throw new Error(`supervisord (pid ${daemon.pid}) did not stop; killed`);
      if (isAlive(daemon.pid)) throw new Error(`supervisord (pid ${daemon.pid}) is still alive`);
    })();
    return this.#tornDown;
  }

  async diagnostics(): Promise<string> {
    const log = await readFile(join(this.#dir, 'supervisord.log'), 'utf8').catch(() => '');
    return `supervisord ${this.#daemon?.running ? 'running' : 'not running'}; its log ends:\n${tail(log)}\n${(await this.#daemon?.logTail()) ?? ''}`;
  }
}
