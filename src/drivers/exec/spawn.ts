// Spawning one supervised process: no shell, its own session and process group, output to log
// files by descriptor, and every way it can fail turned into a StartError a user can act on.
import { limitsOf, type ResourceLimits } from '../../manifest/resources.js';
import { execSpecOf } from '../../manifest/runtime.js';
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { StartError } from '../../errors.js';
import type { ExitStatus, StartRequest } from '../driver.js';
import { behindGate, childProcessGate, gateFd, PipeGate, type Gate } from './cgroup/gate.js';
import type { RunCgroup } from './cgroup/index.js';
import { closeFds, LOG_FILE_MODE, openFd, openLogFiles } from './logs.js';
import { isOpenFailure, type FileToOpen, type NativeChild, type NativeSpawner } from './native.js';
import { readProcessIdentity, readProcStatSync } from './proc.js';

/** Names the notify descriptor in the process's environment (dinit's pipevar, for programs told the number at run time). */
export const READY_FD_ENV = 'PM_READY_FD';

const READY_FILE_MODE = 0o600;
/** open(2) flags of a log file (Node's 'a'). */
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;
/** open(2) flags of the notify file (Node's 'w'): emptied, so what it holds from then on is this run's. */
const EMPTIED = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;

/** What holds Node's event loop open while pm waits for a child: a ChildProcess or a NativeChild. */
export interface ChildRef {
  ref(): void;
  unref(): void;
}

/**
 * A child this pm process spawned: its exit is learned with code and signal. A class, so every
 * child has the same small shape (a daemon keeps one per running process).
 */
export class SpawnedChild {
  pid = 0;
  startTime = '';
  /** Set when the child has exited. */
  exit: ExitStatus | undefined = undefined;
  /** Resolves when the child exits; never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** The run's own cgroups, when its limits need them. */
  cgroup: RunCgroup | undefined = undefined;
  /** Called once, at the exit event (ExecDriver.onExit). */
  onExit: ((exit: ExitStatus) => void) | undefined = undefined;
  /** How many waitExit and onExit calls wait on it: while any does, it holds the event loop open. */
  waiters = 0;
  /** Set by the spawner once it has the child. */
  child: ChildRef = NO_CHILD;
  #resolve: (exit: ExitStatus) => void = () => undefined;

  constructor() {
    this.exited = new Promise<ExitStatus>((resolve) => (this.#resolve = resolve));
  }

  /** The exit, from the ChildProcess's 'exit' event or the native spawner's watch; once. */
  settle(exit: ExitStatus): void {
    if (this.exit) return;
    this.exit = exit;
    this.#resolve(exit);
    const listener = this.onExit;
    this.onExit = undefined;
    listener?.(exit);
  }
}

const NO_CHILD: ChildRef = { ref: () => undefined, unref: () => undefined };

/**
 * Spawns the request's command; resolves once its program runs, rejects with StartError. With
 * `cgroup`, the process is in it before its program's first instruction (cgroup/gate.ts). With
 * `spawner`, posix_spawn starts it (native.ts), unless it needs a user switch.
 */
export async function spawnProcess(request: StartRequest, cgroup?: RunCgroup, spawner?: NativeSpawner): Promise<SpawnedChild> {
  const { name, env } = request;
  const { command, cwd } = execSpecOf(request.manifest);
  const limited = withLimits(command, limitsOf(request.manifest));
  const notifyFd = request.readyFile === undefined ? undefined : request.manifest.spec.probes.startup?.notify?.fd;
  const gateDescriptor = gateFd(notifyFd);
  const [file, ...args] = cgroup ? behindGate(limited, gateDescriptor) : limited;
  // Before the log files: their folders are made when missing, and a log under a cwd that is gone
  // would make the cwd again, for the process to start in an empty folder.
  if (cwd !== undefined) await checkCwd(name, cwd);

  const files: ChildFiles = { logs: request.logs, ready: notifyFd === undefined ? undefined : request.readyFile, notifyFd, gate: cgroup ? gateDescriptor : undefined };
  const target: LaunchTarget = { file, args, cwd, env: notifyFd === undefined ? env : { ...env, [READY_FD_ENV]: String(notifyFd) } };
  // Not for a user switch, which posix_spawn cannot make: Node's spawn does those.
  const native = request.uid === undefined && request.gid === undefined ? spawner : undefined;
  const tracker = new SpawnedChild();
  let launched: Launched | Error | undefined;
  // A NUL byte in a path is refused by the spawner as a bad argument; opened here, it is named as the log file's fault.
  if (native && ![files.logs.stdout, files.logs.stderr, files.ready ?? ''].some((path) => path.includes('\0'))) {
    // The spawner opens the files in its own thread, with the spawn: one thread-pool round trip
    // for the files and the spawn, not three. When it cannot open one, nothing started, and pm
    // opens them itself below, which makes a missing log folder or says what is wrong.
    const log = (path: string): FileToOpen => ({ path, flags: APPEND, mode: LOG_FILE_MODE });
    const ready: FileToOpen | undefined = files.ready === undefined ? undefined : { path: files.ready, flags: EMPTIED, mode: READY_FILE_MODE };
    const opening = childFds(files, log(files.logs.stdout), log(files.logs.stderr), ready);
    launched = await launching(request, target, () => nativeLaunch(native, tracker, target, opening));
    if (isOpenFailure(launched)) launched = undefined;
  }
  launched ??= await launchWithOpenedFiles(request, tracker, target, files, native);

  if (launched instanceof Error) throw describeSpawnError(request, launched);
  const { pid, gate } = launched;
  if (cgroup) await joinCgroup(name, gate, pid, cgroup, tracker);
  tracker.child.unref();

  let startTime = launched.startTime ?? (await readProcessIdentity(pid))?.startTime;
  if (startTime === undefined) {
    // Only reachable off Linux, when the child exited before `ps` could see it.
    startTime = 'unknown';
  }
  tracker.pid = pid;
  tracker.startTime = startTime;
  tracker.cgroup = cgroup;
  return tracker;
}

/**
 * The child's start time, read at once: it cannot have been reaped yet. Undefined when /proc cannot
 * be read now (spawnProcess then asks again, asynchronously): nothing may throw between the spawn
 * and the gate's opening, or a gated child would wait on its pipe for ever.
 */
function startTimeNow(pid: number): string | undefined {
  try {
    return readProcStatSync(pid)?.startTime;
  } catch {
    return undefined;
  }
}

/** A child that runs (or an Error: the spawn failed). */
interface Launched {
  pid: number;
  /** Read before the child could have been reaped, even if it has already exited; undefined when /proc could not be read. */
  startTime: string | undefined;
  /** The cgroup gate's pipe, when the child was spawned behind one. */
  gate: Gate | undefined;
}

/** The program to start, its arguments, working directory and environment. */
interface LaunchTarget {
  file: string;
  args: string[];
  cwd: string | undefined;
  env: NodeJS.ProcessEnv;
}

/** The files a child gets as descriptors, and where. */
interface ChildFiles {
  logs: { stdout: string; stderr: string };
  /** The notify file, when the process has a notify startup probe. */
  ready: string | undefined;
  notifyFd: number | undefined;
  /** The cgroup gate's descriptor (a pipe), when the child starts behind one. */
  gate: 3 | 4 | undefined;
}

/** One descriptor of the child: a file, the gate's pipe, or nothing (/dev/null for 0–2, closed above). */
type ChildFd<F> = F | 'pipe' | undefined;

/** The child's descriptors: none on 0, its logs on 1 and 2, the notify file on notifyFd, the gate's pipe, nothing between. */
function childFds<F>(files: ChildFiles, stdout: F, stderr: F, ready: F | undefined): ChildFd<F>[] {
  const fds: ChildFd<F>[] = [undefined, stdout, stderr];
  if (ready !== undefined && files.notifyFd !== undefined) fds[files.notifyFd] = ready;
  if (files.gate !== undefined) fds[files.gate] = 'pipe';
  // Without holes: every descriptor up to the last is named, if only as nothing.
  return Array.from(fds);
}

/**
 * Opens the log and notify files here (making a missing log folder), then spawns with their
 * descriptors, which are closed as soon as the spawner has its copies.
 */
async function launchWithOpenedFiles(request: StartRequest, tracker: SpawnedChild, target: LaunchTarget, files: ChildFiles, native: NativeSpawner | undefined): Promise<Launched | Error> {
  const { name } = request;
  // Both at once: each is a thread-pool round trip, and a first start creates both files.
  const [logs, notify] = await Promise.allSettled([
    openLogFiles(files.logs),
    // Emptied: what the file holds from now on is this run's.
    files.ready === undefined ? Promise.resolve(undefined) : openFd(files.ready, 'w', READY_FILE_MODE),
  ]);
  const readyFds = notify.status === 'fulfilled' && notify.value !== undefined ? [notify.value] : [];
  if (logs.status === 'rejected') {
    closeFds(readyFds);
    throw new StartError(name, `cannot open log file: ${errorText(logs.reason)}`, 'check spec.exec.logs and the permissions of its folder', logs.reason);
  }
  const logFds = logs.value;
  if (notify.status === 'rejected') {
    logFds.close();
    throw new StartError(name, `cannot open its notification file ${files.ready}: ${errorText(notify.reason)}`, 'check that pm can write its state directory', notify.reason);
  }
  const fds = childFds(files, logFds.stdout, logFds.stderr, readyFds[0]);
  try {
    return launching(request, target, () => (native ? nativeLaunch(native, tracker, target, fds) : nodeLaunch(tracker, target, fds, request, files.gate)));
  } finally {
    logFds.close();
    closeFds(readyFds);
  }
}

/**
 * Starts a launch. Bad arguments (a NUL byte, an invalid uid) throw synchronously, and so does
 * Node's spawn for a cwd that became a file since checkCwd looked: those become a StartError.
 */
function launching(request: StartRequest, target: LaunchTarget, launch: () => Promise<Launched | Error>): Promise<Launched | Error> {
  try {
    return launch();
  } catch (err) {
    throw cwdError(request, err) ?? new StartError(request.name, `cannot start "${target.file}": ${errorText(err)}`, 'check spec.exec.command, user and group', err);
  }
}

/**
 * posix_spawn from the thread pool: resolves once the program has been exec'd, or with the error.
 * Descriptors in `fds` are copied before this returns (the caller closes its own at once); files
 * to open are opened in the thread pool, just before the spawn.
 */
function nativeLaunch(spawner: NativeSpawner, tracker: SpawnedChild, target: LaunchTarget, fds: readonly ChildFd<number | FileToOpen>[]): Promise<Launched | Error> {
  return spawner.spawn({ ...target, fds, onExit: (exit) => tracker.settle(exit) }).then(
    (child: NativeChild): Launched => {
      tracker.child = child;
      return { pid: child.pid, startTime: child.startTime, gate: child.pipe === undefined ? undefined : new PipeGate(child.pipe) };
    },
    // A program that cannot be run is reported as Node's spawn reports it: an error, not a throw.
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
}

/** Node's spawn: libuv forks pm and waits for the exec; 'spawn' or 'error' tells which. */
function nodeLaunch(tracker: SpawnedChild, target: LaunchTarget, fds: readonly ChildFd<number>[], ids: { uid?: number; gid?: number }, gate: 3 | 4 | undefined): Promise<Launched | Error> {
  const child = spawn(target.file, target.args, {
    shell: false,
    // Own session and process group: the group can be signalled as a whole, and the process
    // outlives the pm command that started it.
    detached: true,
    cwd: target.cwd,
    env: target.env,
    uid: ids.uid,
    gid: ids.gid,
    stdio: fds.map((fd) => fd ?? 'ignore'),
    windowsHide: true,
  });
  const startTime = child.pid === undefined ? undefined : startTimeNow(child.pid);
  tracker.child = child;
  // Listen now: 'spawn', 'error' and even 'exit' may fire while the log files are closed.
  child.once('exit', (code, signal) => tracker.settle({ code, signal, at: Date.now(), known: true }));
  const childGate = gate === undefined ? undefined : childProcessGate(child, gate);
  const spawned = new Promise<Launched | Error>((resolve) => {
    // Each removes the other: neither stays on the child for as long as it runs.
    const onSpawn = (): void => {
      child.off('error', onError);
      resolve({ pid: child.pid as number, startTime, gate: childGate });
    };
    const onError = (error: Error): void => {
      child.off('spawn', onSpawn);
      resolve(error);
    };
    child.once('spawn', onSpawn);
    child.once('error', onError);
  });
  // After 'spawn', later 'error' events (e.g. a failed kill) must not crash pm.
  child.on('error', () => undefined);
  return spawned;
}

/** Puts the gated child in its cgroups and lets it run; else ends it (it never ran the program) and rejects with StartError. */
async function joinCgroup(name: string, gate: Gate | undefined, pid: number, cgroup: RunCgroup, tracker: SpawnedChild): Promise<void> {
  try {
    if (!gate) throw new Error('the child has no gate pipe');
    await cgroup.join(pid);
    await gate.open();
  } catch (err) {
    gate?.close();
    // Only while it runs: both spawners reap the child as they report its exit, and its PID may
    // be another process's after that.
    if (tracker.exit === undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile: its exit is on its way.
      }
    }
    await tracker.exited;
    throw new StartError(name, `cannot put the process in its cgroup (${cgroup.dirs.join(', ')}): ${errorText(err)}`, 'start it again (another pm may have removed the cgroup meanwhile); if it persists, check that pm may write its cgroups', err);
  }
}

async function checkCwd(name: string, cwd: string): Promise<void> {
  let info;
  try {
    info = await stat(cwd);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new StartError(name, `cwd ${cwd} does not exist`, 'create the folder or fix spec.exec.cwd', err);
    }
    throw new StartError(name, `cwd ${cwd} cannot be read: ${errorText(err)}`, 'check spec.exec.cwd and its permissions', err);
  }
  if (!info.isDirectory()) {
    throw new StartError(name, `cwd ${cwd} is not a directory`, 'point spec.exec.cwd at a folder');
  }
}

/** Turns a spawn 'error' event into a message that names what failed. */
function describeSpawnError(request: StartRequest, err: unknown): StartError {
  const { name, env } = request;
  const { command } = execSpecOf(request.manifest);
  const file = command[0];
  const code = (err as NodeJS.ErrnoException).code;
  const inCwd = cwdError(request, err);
  if (inCwd) return inCwd;
  switch (code) {
    case 'ENOENT':
      if (file.includes('/')) {
        return new StartError(name, `command "${file}" not found`, 'check the path in spec.exec.command', err);
      }
      return new StartError(
        name,
        `command "${file}" not found in PATH`,
        env.PATH === undefined
          ? 'the process has no PATH: give an absolute path in spec.exec.command or set PATH in spec.exec.env'
          : `PATH is ${env.PATH}; give an absolute path in spec.exec.command or fix PATH in spec.exec.env`,
        err,
      );
    case 'EACCES':
      return new StartError(
        name,
        `command "${file}" cannot be executed: permission denied`,
        'make it executable (chmod +x), check its folder permissions and that it is not on a noexec mount',
        err,
      );
    case 'EPERM':
      return new StartError(
        name,
        `cannot run "${file}" as uid ${request.uid ?? '-'} gid ${request.gid ?? '-'}: operation not permitted`,
        'pm must run as root to start a process as another user',
        err,
      );
    case 'ENOEXEC':
      return new StartError(name, `command "${file}" is not a program the system can run`, 'scripts need a #! line, or run them through their interpreter', err);
    default:
      return new StartError(name, `cannot start "${file}": ${errorText(err)}`, 'check spec.exec.command', err);
  }
}

/** A failed spawn's error when the cwd is what is wrong. A failed chdir has the same codes as a failed exec, so the cwd is looked at again. */
function cwdError(request: StartRequest, err: unknown): StartError | undefined {
  const { cwd } = execSpecOf(request.manifest);
  const problem = cwd === undefined ? undefined : cwdStateNow(cwd);
  return problem === undefined ? undefined : new StartError(request.name, `cwd ${cwd} ${problem}`, 'create the folder or fix spec.exec.cwd', err);
}

function cwdStateNow(cwd: string): string | undefined {
  try {
    if (!statSync(cwd).isDirectory()) return 'is not a directory';
    accessSync(cwd, constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'does not exist';
    if (code === 'EACCES') return 'cannot be entered: permission denied';
    return undefined;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** util-linux's prlimit: sets the limits, then execs the program in the same process (same PID). */
export const PRLIMIT = '/usr/bin/prlimit';

/**
 * The argv that starts `command` with the manifest's rlimits in force from its first instruction:
 * prlimit sets them on itself and execs the program, so no moment runs without them (setting them
 * on the PID after the spawn would leave one). No shell is involved.
 */
export function withLimits(command: readonly [string, ...string[]], limits: ResourceLimits): [string, ...string[]] {
  if (limits.openFiles === undefined) return [...command];
  return [PRLIMIT, `--nofile=${limits.openFiles}:${limits.openFiles}`, '--', ...command];
}
