// A real, throwaway systemd 252 for a test file: booted as PID 1 of a new PID + mount namespace
// (../shared/ENVIRONMENT.md), reached with `nsenter -t PID -m -p --`, killed with SIGKILL when the
// file ends, fails, or the process exits. One instance per file (before/after); each test names
// its units uniquely with processName().
//
// Isolation beyond ENVIRONMENT.md's recipe (found the hard way): a unit with default dependencies
// pulls in sysinit.target, and the host's sysinit.target.wants starts systemd-tmpfiles-setup
// (which empties the shared /tmp), sysctl, binfmt, remount-fs and journald. So this systemd reads
// units ONLY from its private /run (SYSTEMD_UNIT_PATH), where stub sysinit/basic/shutdown targets
// stand in. /run/pm-test/override comes first in that path: a unit there overrides
// /run/systemd/system, as /etc/systemd/system does on a real host.
//
// Teardown on every path: destroy() (after), an 'exit' hook, and for a test process killed hard,
// `setpriv --pdeathsig SIGKILL` + `unshare --kill-child` (the kernel kills the namespace when this
// process dies) plus a sweep of namespaces whose owner is gone at the next boot.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive } from './processes.js';
import { waitFor, waitForValue } from './wait.js';

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SystemdNamespace {
  /** systemd (PID 1 inside), as this process sees it. */
  readonly pid: number;
  /** `['nsenter', '-t', PID, '-m', '-p', '--']`: the argv prefix that runs a command inside. */
  readonly prefix: readonly string[];
  /** /run/systemd/system as systemd names it (FragmentPath). */
  readonly systemdUnitDir: string;
  /** The same folder from here: /proc/PID/root/run/systemd/system. */
  readonly unitDir: string;
  /** A unit folder that overrides unitDir (like /etc/systemd/system does), from here. */
  readonly overrideDir: string;
  /** A path inside the namespace as this process reaches it (/proc/PID/root/…). */
  hostPath(inside: string): string;
  /** A process name unique to this test process and call: pm-<name>.service is the unit. */
  processName(label: string): string;
  /** Runs argv inside the namespace (through prefix); never rejects for a non-zero exit. */
  exec(argv: readonly string[], timeoutMs?: number): Promise<ExecResult>;
  /** Runs argv inside; rejects unless it exits 0. */
  execOk(argv: readonly string[], timeoutMs?: number): Promise<string>;
  /** Mounts an empty tmpfs over `dir` inside the namespace only; returns its path from here. */
  privateDir(dir: string): Promise<string>;
  /**
   * Starts a system D-Bus and polkitd inside, polkit reading only `rule` (non-root systemctl
   * needs both). Idempotent for the bus; the rule replaces the previous one.
   */
  enablePolkit(rule: string): Promise<void>;
  /** SIGKILL to systemd (which ends everything inside); idempotent, the same promise every time. */
  destroy(): Promise<void>;
}

/** systemd cannot be booted here. */
export class SystemdUnavailableError extends Error {
  override name = 'SystemdUnavailableError';
}

const SYSTEMD = '/lib/systemd/systemd';
const OWNER_ENV = 'PM_TEST_SYSTEMD_OWNER';
const UNIT_DIR = '/run/systemd/system';
const OVERRIDE_DIR = '/run/pm-test/override';
const BOOT_TIMEOUT_MS = 30_000;
const EXEC_TIMEOUT_MS = 30_000;
/** Test units are pm-t<owner pid>n<counter>-<label>.service; their cgroups are swept by owner. */
const TEST_UNIT = /^pm-t(\d+)n\d+-.*\.service$/;
const strict = process.env.PM_TEST_STRICT === '1';
const missingHint = 'the systemd tests need root, systemd 252 (/lib/systemd/systemd), and util-linux\'s unshare, nsenter and setpriv';

/** Why systemd cannot be booted here, or undefined when it can. */
function unavailableReason(): string | undefined {
  if (process.platform !== 'linux') return `systemd tests run on Linux only (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return `booting systemd in a namespace needs root: ${missingHint}`;
  if (!existsSync(SYSTEMD)) return `${SYSTEMD} not found: ${missingHint}`;
  for (const tool of ['unshare', 'nsenter', 'setpriv', 'systemctl']) {
    if (!['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((dir) => existsSync(join(dir, tool)))) return `${tool} not found: ${missingHint}`;
  }
  return undefined;
}

/**
 * For test options: `{ skip: systemdSkip() }` on the tests or the describe(). The reason to skip
 * when systemd cannot run here; false when it can, or under PM_TEST_STRICT=1 (so the test runs
 * and fails with the reason).
 */
export function systemdSkip(): string | false {
  const reason = unavailableReason();
  return reason !== undefined && !strict ? reason : false;
}

/** Boots a systemd for this test file: `before(async () => { sd = await bootSystemd(); })`, `after(() => sd?.destroy())`. */
export async function bootSystemd(): Promise<SystemdNamespace> {
  const reason = unavailableReason();
  if (reason !== undefined) throw new SystemdUnavailableError(`${reason}${strict ? ' (PM_TEST_STRICT=1: a failure, not a skip)' : ''}`);
  sweepLeftovers();
  return Namespace.boot();
}

// The shell runs inside the new namespaces before systemd replaces it: a private /run, /proc for
// the new PID namespace, the bare target it boots into, and the stub targets default dependencies
// name. A constant script: nothing is interpolated into it.
const SETUP_SCRIPT = [
  'set -e',
  'mount -t tmpfs -o mode=0755 tmpfs /run',
  'mount -t proc proc /proc',
  `mkdir -p ${UNIT_DIR} ${OVERRIDE_DIR}`,
  `printf '[Unit]\\nDescription=bare (pm test)\\n' > ${UNIT_DIR}/bare.target`,
  `for t in sysinit basic shutdown; do printf '[Unit]\\nDescription=stub %s (pm test)\\nDefaultDependencies=no\\n' "$t" > ${UNIT_DIR}/$t.target; done`,
  `exec ${SYSTEMD} --system --unit=bare.target --log-target=null`,
].join('\n');

/** Namespaces of this process not yet destroyed, for the exit hook. */
const live = new Set<Namespace>();
let exitHookInstalled = false;
let names = 0;

class Namespace implements SystemdNamespace {
  readonly prefix: readonly string[];
  readonly systemdUnitDir = UNIT_DIR;
  readonly unitDir: string;
  readonly overrideDir: string;
  #destroyed: Promise<void> | undefined;
  #bus = false;
  #polkitUnit: string | undefined;
  readonly #privateDirs = new Set<string>();

  private constructor(
    readonly pid: number,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
  ) {
    this.prefix = ['nsenter', '-t', String(pid), '-m', '-p', '--'];
    this.unitDir = this.hostPath(UNIT_DIR);
    this.overrideDir = this.hostPath(OVERRIDE_DIR);
  }

  static async boot(): Promise<Namespace> {
    installExitHook();
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'unshare', '--kill-child=SIGKILL', '--pid', '--fork', '--mount', '--propagation', 'private', '--', 'sh', '-c', SETUP_SCRIPT], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${OVERRIDE_DIR}:${UNIT_DIR}`, [OWNER_ENV]: ownerTag() },
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let gone = false;
    const exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        stderr += String(error);
        gone = true;
        resolve();
      });
      child.once('exit', () => {
        gone = true;
        resolve();
      });
    });
    const unsharePid = child.pid;
    let pid: number | undefined;
    try {
      if (unsharePid === undefined) throw new Error('setpriv/unshare did not start');
      pid = await waitForValue(
        () => {
          if (gone) throw new Error(`the namespace ended while booting: ${stderr.trim() || 'no output'}`);
          return systemdChildOf(unsharePid);
        },
        { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 20, message: 'systemd to be executed in the new namespace' },
      );
      const namespace = new Namespace(pid, child, exited);
      live.add(namespace);
      await waitFor(
        async () => {
          if (gone) throw new Error(`systemd ended while booting: ${stderr.trim() || 'no output'}`);
          const answer = await namespace.exec(['systemctl', 'is-system-running'], 5_000);
          return ['running', 'degraded', 'starting'].includes(answer.stdout.trim());
        },
        { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 50, message: '`systemctl is-system-running` to answer in the namespace' },
      );
      return namespace;
    } catch (error) {
      if (pid !== undefined) signal(pid, 'SIGKILL');
      if (unsharePid !== undefined) signal(unsharePid, 'SIGKILL');
      await exited;
      for (const namespace of live) if (namespace.child === child) live.delete(namespace);
      throw error;
    }
  }

  hostPath(inside: string): string {
    if (!inside.startsWith('/')) throw new TypeError(`hostPath: not absolute: ${inside}`);
    return `/proc/${this.pid}/root${inside}`;
  }

  processName(label: string): string {
    if (!/^[a-z0-9-]+$/.test(label)) throw new TypeError(`processName: label must be [a-z0-9-]+, not ${JSON.stringify(label)}`);
    return `t${process.pid}n${++names}-${label}`;
  }

  exec(argv: readonly string[], timeoutMs = EXEC_TIMEOUT_MS): Promise<ExecResult> {
    const [file, ...args] = [...this.prefix, ...argv];
    return new Promise((resolve) => {
      execFile(file as string, args, { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, LC_ALL: 'C', SYSTEMD_COLORS: '0' } }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr: error && code === null ? `${stderr}${error.message}` : stderr });
      });
    });
  }

  async execOk(argv: readonly string[], timeoutMs?: number): Promise<string> {
    const result = await this.exec(argv, timeoutMs);
    if (result.code !== 0) throw new Error(`${argv.join(' ')} (in the namespace) exited with ${result.code}: ${result.stderr.trim()}`);
    return result.stdout;
  }

  async privateDir(dir: string): Promise<string> {
    if (!this.#privateDirs.has(dir)) {
      // Mounted inside the namespace only (its mounts are private): the host's folder is untouched.
      const mount = await this.exec(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', dir]);
      if (mount.code !== 0) throw new Error(`cannot mount a private ${dir} in the namespace: ${mount.stderr.trim()}`);
      this.#privateDirs.add(dir);
    }
    return this.hostPath(dir);
  }

  async enablePolkit(rule: string): Promise<void> {
    const rules = await this.privateDir('/etc/polkit-1/rules.d');
    await writeFile(join(rules, '50-pm-test.rules'), rule, { mode: 0o644 });
    if (!this.#bus) {
      // The names dbus.socket / dbus.service are what systemd waits for to join the system bus.
      await writeFile(join(this.unitDir, 'dbus.socket'), '[Unit]\nDescription=D-Bus socket (pm test)\nDefaultDependencies=no\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n');
      await writeFile(
        join(this.unitDir, 'dbus.service'),
        '[Unit]\nDescription=D-Bus (pm test)\nDefaultDependencies=no\nRequires=dbus.socket\n[Service]\nType=notify\nExecStartPre=/bin/mkdir -p /run/dbus\n' +
          'ExecStart=/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n',
      );
      this.#polkitUnit = `pm-t${process.pid}n0-polkit.service`;
      await writeFile(
        join(this.unitDir, this.#polkitUnit),
        '[Unit]\nDescription=polkit (pm test)\nDefaultDependencies=no\nRequires=dbus.service\nAfter=dbus.service\n[Service]\nType=dbus\nBusName=org.freedesktop.PolicyKit1\nExecStart=/usr/lib/polkit-1/polkitd --no-debug\n',
      );
      await this.execOk(['systemctl', 'daemon-reload']);
      await this.execOk(['systemctl', 'start', 'dbus.socket', 'dbus.service', this.#polkitUnit]);
      this.#bus = true;
    } else {
      // polkitd watches rules.d, but a restart makes the new rule certain before the next call.
      await this.execOk(['systemctl', 'restart', this.#polkitUnit ?? '']);
    }
  }

  destroy(): Promise<void> {
    this.#destroyed ??= (async () => {
      signal(this.pid, 'SIGKILL');
      if (this.child.pid !== undefined) signal(this.child.pid, 'SIGKILL');
      await this.exited;
      await waitFor(() => !isAlive(this.pid), { timeoutMs: 10_000, intervalMs: 10, message: `systemd ${this.pid} to be gone` });
      live.delete(this);
      removeTestCgroups(this.#bus ? ['dbus.service', 'dbus.socket'] : []);
    })();
    return this.#destroyed;
  }
}

/** The child of unshare once it has executed systemd (its comm is then `systemd`). */
function systemdChildOf(unsharePid: number): number | undefined {
  let children: string;
  try {
    children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim();
  } catch {
    return undefined;
  }
  for (const word of children.split(' ')) {
    const pid = Number(word);
    if (Number.isInteger(pid) && pid > 0 && comm(pid) === 'systemd') return pid;
  }
  return undefined;
}

/** `<pid>:<start time>` of this process: the marker in each namespace's systemd environment. */
function ownerTag(pid = process.pid): string {
  return `${pid}:${startTime(pid) ?? '?'}`;
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const namespace of live) signal(namespace.pid, 'SIGKILL');
  });
}

/**
 * Kills test systemds whose owner (from their environment) is gone or is another process that
 * reused its PID, then removes test-unit cgroups of owners that are gone. Best effort.
 */
function sweepLeftovers(): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || comm(Number(entry)) !== 'systemd') continue;
    const pid = Number(entry);
    if (pid === 1) continue;
    let owner: string | undefined;
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      if (!exe.endsWith('/systemd/systemd')) continue;
      owner = readFileSync(`/proc/${pid}/environ`, 'utf8')
        .split('\0')
        .find((line) => line.startsWith(`${OWNER_ENV}=`))
        ?.slice(OWNER_ENV.length + 1);
    } catch {
      continue;
    }
    if (owner === undefined) continue;
    const ownerPid = Number(owner.split(':')[0]);
    if (!Number.isInteger(ownerPid) || ownerTag(ownerPid) !== owner || !isAlive(ownerPid)) signal(pid, 'SIGKILL');
  }
  removeTestCgroups([]);
}

/**
 * The namespace's systemd creates its units' cgroups in the host's hierarchies (the cgroup
 * namespace is shared). Removes the empty ones of test units whose owner is this process or gone,
 * and `extra` names. rmdir fails on a cgroup that still has processes: live ones are never touched.
 */
function removeTestCgroups(extra: readonly string[]): void {
  const slices = ['/sys/fs/cgroup/system.slice'];
  try {
    for (const hierarchy of readdirSync('/sys/fs/cgroup')) slices.push(join('/sys/fs/cgroup', hierarchy, 'system.slice'));
  } catch {
    return;
  }
  for (const slice of slices) {
    let entries: string[];
    try {
      entries = readdirSync(slice);
    } catch {
      continue;
    }
    for (const name of entries) {
      const owner = TEST_UNIT.exec(name)?.[1];
      const ours = owner !== undefined && (Number(owner) === process.pid || !isAlive(Number(owner)));
      if (!ours && !extra.includes(name)) continue;
      try {
        rmdirSync(join(slice, name));
      } catch {
        // still in use, or already gone
      }
    }
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // gone already
  }
}
