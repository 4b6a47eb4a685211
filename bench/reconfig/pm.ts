// pm for bench/reconfig.ts: bench/daemon's PmManager (the same daemon, flags and restart policy),
// given manifests that also set CONFIG in exec.env. A reconfiguration saves that process's manifest
// into the watched folder as editors do (a dot-named temp file, then a rename); the daemon notices,
// waits watchDebounceMs (default 50 ms) of quiet, re-plans and restarts what changed.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManagerContext, ProcessSpec } from '../daemon/manager.js';
import { DEFAULT_CLI, PmManager, pmManifest } from '../daemon/managers/pm.js';
import { INITIAL_CONFIG, type ReconfigManager } from './manager.js';

/** bench/daemon's manifest with `env: {CONFIG: value}` added to its exec block. */
export function configuredManifest(spec: ProcessSpec, value: string): string {
  const manifest = pmManifest(spec);
  const command = /^( {4})command: .*$/m;
  if (!command.test(manifest)) throw new Error('internal: pmManifest has no exec command line to put env after');
  return manifest.replace(command, (line, indent: string) => `${line}\n${indent}env: {CONFIG: ${JSON.stringify(value)}}`);
}

export class PmReconfig implements ReconfigManager {
  readonly key = 'pm';
  readonly name = 'pm';
  readonly version: string;
  readonly settings: string;
  readonly command: string;
  readonly reconfigPath = 'save `NAME.yaml` with the new `env: {CONFIG: …}` into the watched folder (write `.NAME.yaml.tmp`, rename it over `NAME.yaml`); nothing else: the daemon reacts on its own';
  readonly #pm: PmManager;
  readonly #manifests: string;
  #specs = new Map<string, ProcessSpec>();

  private constructor(pm: PmManager, dir: string, cliShown: string, args: readonly string[], debounceMs: number | undefined) {
    this.#pm = pm;
    this.#manifests = join(dir, 'manifests');
    this.version = pm.version;
    this.settings = `${pm.settings}; exec.env {CONFIG: …}; ${debounceMs === undefined ? "the daemon's watchDebounceMs left at its default (50 ms)" : `watchDebounceMs ${debounceMs}`}`;
    this.command = PmManager.commandLine(cliShown, args);
  }

  /** `debounceMs` undefined: the daemon's default watchDebounceMs; else passed as --watch-debounce-ms. `daemonArgs`: more flags. */
  static async create(context: ManagerContext, options: { cli?: string; cliShown?: string; debounceMs?: number; daemonArgs?: readonly string[] } = {}): Promise<PmReconfig> {
    const args = [...(options.debounceMs === undefined ? [] : ['--watch-debounce-ms', String(options.debounceMs)]), ...(options.daemonArgs ?? [])];
    const pm = await PmManager.create(context, options.cli ?? DEFAULT_CLI, { args });
    return new PmReconfig(pm, context.dir, options.cliShown ?? 'dist/cli/main.js', args, options.debounceMs);
  }

  /** The manifests go where PmManager points its daemon (DIR/manifests); it is given no processes of its own. */
  async start(processes: ProcessSpec[]): Promise<void> {
    await mkdir(this.#manifests, { recursive: true });
    await Promise.all(processes.map((p) => writeFile(join(this.#manifests, `${p.name}.yaml`), configuredManifest(p, INITIAL_CONFIG))));
    this.#specs = new Map(processes.map((p) => [p.name, p]));
    await this.#pm.start([]);
  }

  async reconfigure(name: string, value: string): Promise<void> {
    const spec = this.#specs.get(name);
    if (!spec) throw new Error(`pm: no process ${name}`);
    const tmp = join(this.#manifests, `.${name}.yaml.tmp`);
    await writeFile(tmp, configuredManifest(spec, value));
    await rename(tmp, join(this.#manifests, `${name}.yaml`));
  }

  hostPid(pid: number): number {
    return pid;
  }

  daemonPid(): number | undefined {
    return this.#pm.daemonPid();
  }

  diagnostics(): Promise<string> {
    return this.#pm.diagnostics();
  }

  shutdown(): Promise<void> {
    return this.#pm.shutdown();
  }
}
