// supervisord from Debian's `supervisor` package, installed by the bench when missing and it runs as
// root. Run in the foreground (-n) with a config of its own in the run's temp folder; the program
// restarts whenever it exits (autorestart=true), counts as started at once (startsecs=0) and is
// never given up on (startretries far beyond any run).
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manager, ManagerContext, ProcessSpec, Skipped } from '../manager.js';
import { aptInstall, Background, isAlive, mustRun, onPath, runCommand, tail } from '../proc.js';

const STOP_TIMEOUT_MS = 20_000;
/**
 * Added per program: supervisord stops its programs in turns of its 1-second loop, and 100 took
 * longer than 20 s once (bench:footprint, 2026-11-28 03:19 UTC); 10 took 4.2 s.
 */
const STOP_MS_PER_PROGRAM = 1_000;
/** Where Debian's own supervisord service would write its pid, were the package's postinst to start it. */
const SYSTEM_PIDFILE = '/var/run/supervisord.pid';

/** supervisord's path, installing Debian's package when we may; a reason to skip it otherwise. */
async function ensureInstalled(log: (line: string) => void): Promise<{ supervisord: string; supervisorctl: string } | { skipped: string }> {
  const found = (): { supervisord: string; supervisorctl: string } | undefined => {
    const supervisord = onPath('supervisord');
    const supervisorctl = onPath('supervisorctl');
    return supervisord && supervisorctl ? { supervisord, supervisorctl } : undefined;
  };
  const present = found();
  if (present) return present;
  const systemDaemonBefore = existsSync(SYSTEM_PIDFILE);
  const failed = await aptInstall('supervisor', log);
  if (failed !== undefined) return { skipped: failed };
  const installed = found();
  if (!installed) return { skipped: 'apt-get installed supervisor but supervisord is not on PATH' };
  // The package may start Debian's own service (where policy-rc.d allows it): not ours to keep running.
  if (!systemDaemonBefore && existsSync(SYSTEM_PIDFILE)) {
    log('the supervisor package started its system service; stopping it');
    await runCommand([installed.supervisorctl, '-c', '/etc/supervisor/supervisord.conf', 'shutdown']);
  }
  return installed;
}

export function supervisordConfig(processes: ProcessSpec[], dir: string): string {
  const programs = processes.map(
    (p) => `[program:${p.name}]
command=${p.argv.join(' ')}
autostart=true
autorestart=true
startsecs=0
startretries=1000000
stdout_logfile=${join(dir, `${p.name}.log`)}
redirect_stderr=true
`,
  );
  return `[unix_http_server]
file=${join(dir, 'supervisor.sock')}

[supervisord]
logfile=${join(dir, 'supervisord.log')}
pidfile=${join(dir, 'supervisord.pid')}
childlogdir=${dir}
loglevel=warn

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://${join(dir, 'supervisor.sock')}

${programs.join('\n')}`;
}

export class SupervisordManager implements Manager {
  readonly name = 'supervisord';
  readonly settings = 'supervisord -n with its own config: autorestart=true, startsecs=0, startretries=1000000, output to a log file';
  readonly version: string;
  readonly #dir: string;
  readonly #paths: { supervisord: string; supervisorctl: string };
  #daemon: Background | undefined;
  #stopped: Promise<void> | undefined;
  #programs = 0;

  private constructor(context: ManagerContext, paths: { supervisord: string; supervisorctl: string }, version: string) {
    this.#dir = context.dir;
    this.#paths = paths;
    this.version = version;
  }

  static async create(context: ManagerContext): Promise<SupervisordManager | Skipped> {
    const paths = await ensureInstalled(context.log);
    if ('skipped' in paths) return { name: 'supervisord', skipped: paths.skipped };
    const version = (await mustRun([paths.supervisord, '--version'])).trim();
    return new SupervisordManager(context, paths, version);
  }

  get #config(): string {
    return join(this.#dir, 'supervisord.conf');
  }

  async start(processes: ProcessSpec[]): Promise<void> {
    await writeFile(this.#config, supervisordConfig(processes, this.#dir));
    this.#programs = processes.length;
    this.#daemon = await Background.start([this.#paths.supervisord, '-n', '-c', this.#config], { cwd: this.#dir, logFile: join(this.#dir, 'stdout.log') });
  }

  daemonPid(): number | undefined {
    return this.#daemon?.pid;
  }

  async diagnostics(): Promise<string> {
    const log = await readFile(join(this.#dir, 'supervisord.log'), 'utf8').catch(() => '');
    return `supervisord ${this.#daemon?.running ? 'running' : 'not running'}; its log ends:\n${tail(log)}\n${(await this.#daemon?.logTail()) ?? ''}`;
  }

  shutdown(): Promise<void> {
    this.#stopped ??= (async () => {
      const daemon = this.#daemon;
      if (!daemon?.running) return;
      // supervisorctl shutdown stops every program (stopsignal TERM, stopwaitsecs 10) and exits.
      const timeoutMs = STOP_TIMEOUT_MS + STOP_MS_PER_PROGRAM * this.#programs;
      await runCommand([this.#paths.supervisorctl, '-c', this.#config, 'shutdown'], { timeoutMs }).catch(() => undefined);
      if (!(await daemon.stop('SIGTERM', timeoutMs))) throw new Error(`supervisord (pid ${daemon.pid}) did not stop within ${timeoutMs} ms; killed`);
      if (isAlive(daemon.pid)) throw new Error(`supervisord (pid ${daemon.pid}) is still alive`);
    })();
    return this.#stopped;
  }
}
