// pm, three ways, each from dist/ (npm run build first), one manifest per process with
// `dependsOn: [{name, condition: ready}]` and probes that see the child's readiness (PmProbe):
//   daemon: `pm daemon -f DIR` started with the set in DIR (t0: the daemon is spawned);
//   warm:   `pm daemon -f DIR` already running on an empty DIR, and the set renamed into DIR (t0:
//           the first rename), as systemd is given its units while it runs;
//   apply:  `pm apply -f DIR` with no daemon (t0: the command is spawned; it starts every process in
//           dependency order and waits until all are ready).
// A baseline (--pm-baseline-cli, another build; --pm-baseline-daemon-args, other daemon flags) runs
// as warm does, alternated with the others in the same run: a change is compared with what it
// changes under the same load, not across runs.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PM_NODE_FLAGS, PmManager } from '../../daemon/managers/pm.js';
import { Background, runCommand, tail } from '../../daemon/proc.js';
import { freePortBlock } from '../ports.js';
import type { ColdProcess } from '../scenario.js';
import { childArgv, type ColdManager, type Setup } from './types.js';

export type PmMode = 'daemon' | 'warm' | 'apply';
/**
 * tcp:     a readiness probe that connects to the child's port every periodSeconds, for as long as it runs;
 * startup: a startup probe on that port every periodSeconds until it first passes (then it stops, as in
 *          Kubernetes), and a readiness probe every 10 s, whose first check runs as soon as the startup
 *          probe has passed: fast gating without a probe every 50 ms for the rest of the process's life;
 * exec:    a readiness probe `test -f FILE` every periodSeconds (a fork + exec each time);
 * notify:  a notify startup probe: the child writes a line to descriptor 3 once ready (pushed, as
 *          systemd's Type=notify), with no probe after it.
 */
export type PmProbe = 'tcp' | 'startup' | 'exec' | 'notify';
/** The readiness probe's period once a startup probe has passed. */
const SETTLED_PERIOD_SECONDS = 10;
/** Startup probe failures allowed: 60 s at its period (its default, 3, would restart a child not ready in 3 periods). */
const STARTUP_WINDOW_SECONDS = 60;

export interface PmOptions {
  cli: string;
  /** The CLI as shown in the report (dist/cli/main.js). */
  cliShown: string;
  probe: PmProbe;
  periodSeconds: number;
  /** Added to `pm daemon`'s command line (--pm-daemon-args). */
  daemonArgs: readonly string[];
  /** This is the baseline (--pm-baseline-cli, --pm-baseline-daemon-args), run as warm is. */
  baseline?: boolean;
}

const STOP_TIMEOUT_MS = 30_000;
const WARM_TIMEOUT_MS = 30_000;

/** How a child tells pm it is ready, and the probes that see it (the lines under `probes:`). */
interface Readiness {
  childArgs: string[];
  probes: string[];
}

export function readiness(probe: PmProbe, port: number | string, file: string, periodSeconds: number): Readiness {
  const tcp = `tcp: {port: ${port}}`;
  switch (probe) {
    case 'tcp':
      return { childArgs: ['--port', String(port)], probes: ['readiness:', `  ${tcp}`, `  periodSeconds: ${periodSeconds}`] };
    case 'startup':
      return {
        childArgs: ['--port', String(port)],
        probes: ['startup:', `  ${tcp}`, `  periodSeconds: ${periodSeconds}`, `  failureThreshold: ${Math.ceil(STARTUP_WINDOW_SECONDS / periodSeconds)}`, 'readiness:', `  ${tcp}`, `  periodSeconds: ${SETTLED_PERIOD_SECONDS}`],
      };
    case 'exec':
      return { childArgs: ['--ready-file', file], probes: ['readiness:', `  exec: {command: ${JSON.stringify(['/usr/bin/test', '-f', file])}}`, `  periodSeconds: ${periodSeconds}`] };
    case 'notify':
      return { childArgs: ['--ready-fd', '3'], probes: ['startup:', '  notify: {fd: 3}', `  periodSeconds: ${STARTUP_WINDOW_SECONDS}`, '  failureThreshold: 1'] };
  }
}

export function describeProbe(probe: PmProbe, periodSeconds: number): string {
  switch (probe) {
    case 'tcp':
      return `a tcp readiness probe on the child's port (it listens once ready) every ${periodSeconds} s, for as long as the process runs`;
    case 'startup':
      return `a tcp startup probe on the child's port (it listens once ready) every ${periodSeconds} s until it first passes (failureThreshold ${Math.ceil(STARTUP_WINDOW_SECONDS / periodSeconds)}: ${STARTUP_WINDOW_SECONDS} s), then a tcp readiness probe every ${SETTLED_PERIOD_SECONDS} s whose first check runs as soon as the startup probe passed`;
    case 'exec':
      return `an exec readiness probe \`test -f FILE\` (the child creates FILE once ready) every ${periodSeconds} s, for as long as the process runs`;
    case 'notify':
      return `a notify startup probe (the child writes READY=1 and a newline to descriptor 3 once ready; deadline ${STARTUP_WINDOW_SECONDS} s), no readiness probe`;
  }
}

export function pmColdManifest(p: ColdProcess, argv: readonly string[], probes: readonly string[]): string {
  const deps = p.dependsOn.length === 0 ? '' : `  dependsOn:\n${p.dependsOn.map((d) => `    - {name: ${d}, condition: ready}`).join('\n')}\n`;
  return `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: ${p.name}
spec:
  exec:
    command: ${JSON.stringify(argv)}
  minReadySeconds: 0
${deps}  probes:
${probes.map((line) => `    ${line}`).join('\n')}
`;
}

/** When pm logged each process's Started and Ready events (wall-clock ms), from the daemon's pino lines. */
export interface PmEvents {
  started: Map<string, number>;
  ready: Map<string, number>;
}

export class PmColdManager implements ColdManager {
  readonly key: 'pm' | 'pm-warm' | 'pm-baseline' | 'pm-apply';
  readonly name: string;
  readonly version: string;
  readonly settings: string;
  readonly timed: string;
  readonly command: string;
  readonly sample: ColdManager['sample'];
  readonly #setup: Setup;
  readonly #mode: PmMode;
  readonly #options: PmOptions;
  #dir = '';
  #daemon: Background | undefined;
  #staged: Array<{ from: string; to: string }> = [];
  /** start() was called for this run: there is something to tear down. */
  #started = false;
  #tornDown: Promise<void> | undefined;

  private constructor(setup: Setup, mode: PmMode, options: PmOptions, version: string) {
    this.#setup = setup;
    this.#mode = mode;
    this.#options = options;
    this.version = version;
    this.key = mode === 'daemon' ? 'pm' : mode === 'apply' ? 'pm-apply' : options.baseline ? 'pm-baseline' : 'pm-warm';
    this.name = { daemon: `pm ${version} daemon`, warm: `pm ${version} daemon, set added while running`, apply: `pm ${version} apply (no daemon)` }[mode];
    if (options.baseline) this.name = `baseline (${options.cliShown}${options.daemonArgs.length > 0 ? ` ${options.daemonArgs.join(' ')}` : ''}): ${this.name}`;
    this.settings = `one manifest per process: \`dependsOn: [{name, condition: ready}]\` for each dependency; ${describeProbe(options.probe, options.periodSeconds)}; minReadySeconds 0 (its default, 1 s, would add a second per level); ${options.daemonArgs.length > 0 ? `daemon flags ${options.daemonArgs.join(' ')}; ` : ''}daemon and apply defaults otherwise (parallel ${options.baseline ? "the build's default (32 since commit 6a98d60, 8 before)" : '32'}, log level info, daemon memoryMode lean)`;
    const daemon = `node ${PM_NODE_FLAGS.join(' ')} ${options.cliShown} daemon -f DIR --state-dir TMP --listen 127.0.0.1:0 --shutdown stop${options.daemonArgs.map((a) => ` ${a}`).join('')}`;
    this.command = {
      daemon: daemon,
      warm: `${daemon} on an empty DIR (until it logs "pm daemon running"), then the manifests renamed into DIR one by one`,
      apply: `node ${PM_NODE_FLAGS.join(' ')} ${options.cliShown} apply -f DIR --state-dir TMP (then pm delete -f DIR)`,
    }[mode];
    this.timed = {
      daemon: 't0: the daemon is spawned with the set in DIR (its start-up is counted)',
      warm: 't0: the first of the renames that put the set into the folder a running daemon watches (its 50 ms debounce is counted, its start-up is not)',
      apply: 't0: `pm apply` is spawned (no daemon: the command starts the processes itself; its start-up is counted)',
    }[mode];
    const example = setup.scenario.processes.find((p) => p.level === 1) ?? (setup.scenario.processes[0] as ColdProcess);
    const shown = readiness(options.probe, 'PORT', 'READY_FILE', options.periodSeconds);
    this.sample = { language: 'yaml', text: pmColdManifest(example, ['CHILD', 'SOCKET', example.name, String(setup.scenario.readyMs), ...shown.childArgs], shown.probes) };
  }

  static async create(setup: Setup, mode: PmMode, options: PmOptions): Promise<PmColdManager> {
    // PmManager checks that the build exists and reads pm's version.
    const pm = await PmManager.create({ dir: '/nonexistent', log: setup.log }, options.cli);
    return new PmColdManager(setup, mode, options, pm.version);
  }

  async prepare(dir: string): Promise<void> {
    this.#dir = dir;
    this.#daemon = undefined;
    this.#started = false;
    this.#tornDown = undefined;
    const manifests = join(dir, 'manifests');
    const staging = join(dir, 'staging');
    await mkdir(manifests, { recursive: true });
    await mkdir(staging, { recursive: true });
    await mkdir(join(dir, 'ready'), { recursive: true });
    const processes = this.#setup.scenario.processes;
    const ports = this.#options.probe === 'exec' ? [] : await freePortBlock(processes.length);
    this.#staged = [];
    await Promise.all(
      processes.map((p, i) => {
        const how = readiness(this.#options.probe, ports[i] ?? 0, join(dir, 'ready', p.name), this.#options.periodSeconds);
        const text = pmColdManifest(p, childArgv(this.#setup, p.name, how.childArgs), how.probes);
        const file = `${p.name}.yaml`;
        if (this.#mode !== 'warm') return writeFile(join(manifests, file), text);
        this.#staged.push({ from: join(staging, file), to: join(manifests, file) });
        return writeFile(join(staging, file), text);
      }),
    );
    if (this.#mode === 'warm') {
      this.#daemon = await Background.start(this.#daemonArgv([]), { env: this.#env(), cwd: dir, logFile: join(dir, 'daemon.log') });
      await this.#awaitWatching();
    }
  }

  async start(): Promise<void> {
    this.#started = true;
    switch (this.#mode) {
      case 'daemon':
        this.#daemon = await Background.start(this.#daemonArgv([]), { env: this.#env(), cwd: this.#dir, logFile: join(this.#dir, 'daemon.log') });
        return;
      case 'warm':
        // Each file appears whole, as an editor saves it; the daemon reads the folder after its debounce.
        for (const { from, to } of this.#staged) await rename(from, to);
        return;
      case 'apply': {
        const result = await runCommand([process.execPath, ...PM_NODE_FLAGS, this.#options.cli, 'apply', '-f', join(this.#dir, 'manifests'), '--state-dir', join(this.#dir, 'state')], { env: this.#env(), cwd: this.#dir, timeoutMs: 300_000 });
        await writeFile(join(this.#dir, 'apply.log'), result.output);
        if (result.code !== 0) throw new Error(`pm apply exited ${result.code ?? result.signal}:\n${tail(result.output)}`);
        return;
      }
    }
  }

  teardown(): Promise<void> {
    this.#tornDown ??= (async () => {
      if (this.#mode === 'apply') {
        if (!this.#started) return;
        const result = await runCommand([process.execPath, this.#options.cli, 'delete', '-f', join(this.#dir, 'manifests'), '--state-dir', join(this.#dir, 'state')], { env: this.#env(), cwd: this.#dir, timeoutMs: 120_000 });
        if (result.code !== 0) throw new Error(`pm delete exited ${result.code ?? result.signal}:\n${tail(result.output)}`);
        return;
      }
      const daemon = this.#daemon;
      if (!daemon) return;
      // --shutdown stop: the daemon stops every process (dependents first) before it exits.
      if (!(await daemon.stop('SIGTERM', STOP_TIMEOUT_MS))) throw new Error(`pm daemon did not stop within ${STOP_TIMEOUT_MS} ms of SIGTERM; killed`);
    })();
    return this.#tornDown;
  }

  cpuPid(): number | undefined {
    return this.#mode === 'apply' ? undefined : this.#daemon?.pid;
  }

  async diagnostics(): Promise<string> {
    if (this.#mode === 'apply') return `pm apply's output ends:\n${tail(await readFile(join(this.#dir, 'apply.log'), 'utf8').catch(() => '(none yet)'))}`;
    if (!this.#daemon) return 'pm daemon not started';
    return `pm daemon ${this.#daemon.running ? 'running' : 'exited'}; its log ends:\n${await this.#daemon.logTail()}`;
  }

  /** This run's Started and Ready events (daemon modes; empty for apply). */
  async events(): Promise<PmEvents> {
    const events: PmEvents = { started: new Map(), ready: new Map() };
    const text = await readFile(join(this.#dir, 'daemon.log'), 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      let entry: { time?: unknown; process?: unknown; event?: unknown };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      if (typeof entry.process !== 'string' || typeof entry.time !== 'number') continue;
      const into = entry.event === 'Started' ? events.started : entry.event === 'Ready' ? events.ready : undefined;
      if (into && !into.has(entry.process)) into.set(entry.process, entry.time);
    }
    return events;
  }

  #daemonArgv(extra: readonly string[]): string[] {
    const dir = this.#dir;
    return [process.execPath, ...PM_NODE_FLAGS, this.#options.cli, 'daemon', '-f', join(dir, 'manifests'), '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:0', '--shutdown', 'stop', ...this.#options.daemonArgs, ...extra];
  }

  /** No PM_* variable and no config file of the user running the bench. */
  #env(): NodeJS.ProcessEnv {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PM_')));
    env.XDG_CONFIG_HOME = join(this.#dir, 'xdg-config');
    return env;
  }

  /**
   * Waits for the daemon's "pm daemon running" line, which it logs once its manifest watcher is
   * ready. Not /readyz: pm rejects a folder without manifests ("no manifests found"), so it stays
   * 503 until the set arrives. Not /healthz either: it answers before the watcher is ready, and a
   * manifest added in between is never picked up (seen here 6 times in 6: see docs/benchmarks.md).
   */
  async #awaitWatching(): Promise<void> {
    const deadline = Date.now() + WARM_TIMEOUT_MS;
    const logFile = join(this.#dir, 'daemon.log');
    for (;;) {
      if ((await readFile(logFile, 'utf8').catch(() => '')).includes('"msg":"pm daemon running"')) return;
      if (!this.#daemon?.running) throw new Error(`pm daemon exited before it was running:\n${await this.#daemon?.logTail()}`);
      if (Date.now() > deadline) throw new Error(`pm daemon not running within ${WARM_TIMEOUT_MS} ms:\n${await this.#daemon.logTail()}`);
      await sleep(10);
    }
  }
}
