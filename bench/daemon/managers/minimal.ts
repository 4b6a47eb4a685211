// The reference row: minimal-supervisor.mjs (spawn again on 'exit', nothing else) in a Node process
// of its own, as pm's and PM2's daemons are. Not a peer: the floor under any Node-based manager.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Manager, ManagerContext, ProcessSpec } from '../manager.js';
import { Background } from '../proc.js';

const SCRIPT = fileURLToPath(new URL('./minimal-supervisor.mjs', import.meta.url));

export class MinimalManager implements Manager {
  readonly name = 'minimal Node supervisor';
  readonly version = process.version;
  readonly reference = true;
  readonly settings = "bench/daemon/managers/minimal-supervisor.mjs: spawn() again on 'exit'";
  readonly #dir: string;
  readonly #daemons: Background[] = [];
  #stopped: Promise<void> | undefined;

  constructor(context: ManagerContext) {
    this.#dir = context.dir;
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    for (const p of processes) {
      this.#daemons.push(await Background.start([process.execPath, SCRIPT, ...p.argv], { cwd: this.#dir, logFile: join(this.#dir, `${p.name}.log`) }));
    }
  }

  daemonPid(): number | undefined {
    return this.#daemons[0]?.pid;
  }

  async diagnostics(): Promise<string> {
    const logs = await Promise.all(this.#daemons.map(async (d) => `pid ${d.pid} ${d.running ? 'running' : 'exited'}: ${await d.logTail(5)}`));
    return logs.join('\n');
  }

  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      const clean = await Promise.all(this.#daemons.map((d) => d.stop('SIGTERM', 5_000)));
      if (clean.includes(false)) throw new Error('the minimal supervisor did not stop on SIGTERM; killed');
    })();
    return this.#stopped;
  }
}
