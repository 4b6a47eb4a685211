// supervisord for bench/reconfig.ts: bench/daemon's SupervisordManager (the same install, daemon
// and program settings), started with no programs; the bench then writes the programs into that
// config, each with `environment=CONFIG="…"`, and runs `supervisorctl update`. A reconfiguration
// rewrites the program's section the same way and runs `supervisorctl update` again: supervisord
// re-reads its config and stops, removes, re-adds and starts only the groups whose section changed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ManagerContext, ProcessSpec, Skipped } from '../daemon/manager.js';
import { SupervisordManager, supervisordConfig } from '../daemon/managers/supervisord.js';
import { mustRun, onPath, runCommand, tail } from '../daemon/proc.js';
import { INITIAL_CONFIG, type ReconfigManager } from './manager.js';

/** supervisorctl cannot reach a supervisord that is still starting: how long to keep trying. */
const REACHABLE_TIMEOUT_MS = 30_000;

/** bench/daemon's config for `processes`, every [program:NAME] section given its CONFIG. */
export function configuredSupervisord(processes: ProcessSpec[], dir: string, config: ReadonlyMap<string, string>): string {
  return supervisordConfig(processes, dir).replace(/^\[program:([^\]]+)\]$/gm, (header, name: string) => {
    const value = config.get(name) ?? INITIAL_CONFIG;
    if (!/^[A-Za-z0-9._-]+$/.test(value)) throw new Error(`supervisord: a CONFIG value the bench does not quote: ${value}`);
    return `${header}\nenvironment=CONFIG="${value}"`;
  });
}

export class SupervisordReconfig implements ReconfigManager {
  readonly key = 'supervisord';
  readonly name = 'supervisord';
  readonly version: string;
  readonly settings: string;
  readonly command = 'supervisord -n -c TMP/supervisord.conf && supervisorctl -c TMP/supervisord.conf update';
  readonly reconfigPath = 'rewrite the program\'s section in supervisord.conf with `environment=CONFIG="…"`, then run `supervisorctl -c supervisord.conf update` (the CLI call is in the time)';
  readonly #supervisord: SupervisordManager;
  readonly #supervisorctl: string;
  readonly #dir: string;
  #specs: ProcessSpec[] = [];
  readonly #config = new Map<string, string>();

  private constructor(supervisord: SupervisordManager, supervisorctl: string, dir: string) {
    this.#supervisord = supervisord;
    this.#supervisorctl = supervisorctl;
    this.#dir = dir;
    this.version = supervisord.version;
    this.settings = `${supervisord.settings}; started with no programs, which are then written into its config, each with environment=CONFIG="…", and added by one \`supervisorctl update\``;
  }

  static async create(context: ManagerContext): Promise<SupervisordReconfig | Skipped> {
    const created = await SupervisordManager.create(context);
    if ('skipped' in created) return created;
    const supervisorctl = onPath('supervisorctl');
    if (supervisorctl === undefined) return { name: 'supervisord', skipped: 'supervisorctl is not on PATH' };
    return new SupervisordReconfig(created, supervisorctl, context.dir);
  }

  /** SupervisordManager's config file (it writes DIR/supervisord.conf and starts the daemon on it). */
  get #file(): string {
    return join(this.#dir, 'supervisord.conf');
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    this.#specs = processes;
    for (const p of processes) this.#config.set(p.name, INITIAL_CONFIG);
    await this.#supervisord.start([]);
    await writeFile(this.#file, configuredSupervisord(processes, this.#dir, this.#config));
    const deadline = Date.now() + REACHABLE_TIMEOUT_MS;
    for (;;) {
      const result = await runCommand([this.#supervisorctl, '-c', this.#file, 'update']);
      if (result.code === 0) return;
      if (Date.now() > deadline) throw new Error(`supervisorctl update kept failing (exit ${result.code ?? result.signal}):\n${tail(result.output)}`);
      await sleep(100);
    }
  }

  async reconfigure(name: string, value: string): Promise<void> {
    if (!this.#config.has(name)) throw new Error(`supervisord: no program ${name}`);
    this.#config.set(name, value);
    await writeFile(this.#file, configuredSupervisord(this.#specs, this.#dir, this.#config));
    await mustRun([this.#supervisorctl, '-c', this.#file, 'update']);
  }

  hostPid(pid: number): number {
    return pid;
  }

  daemonPid(): number | undefined {
    return this.#supervisord.daemonPid();
  }

  diagnostics(): Promise<string> {
    return this.#supervisord.diagnostics();
  }

  shutdown(): Promise<void> {
    return this.#supervisord.shutdown();
  }
}
