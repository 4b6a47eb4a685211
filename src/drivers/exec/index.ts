// The exec driver: pm spawns the process itself, in its own session and process group, and finds
// it again later through a stored handle (PID + kernel start time + boot id).
//
// Exit codes are known only for children this pm process spawned (it is their parent). A later
// pm command sees the process through /proc and learns only *that* it ended (`known: false`).
//
// Limits: openFiles through prlimit; memory, cpus, pids and ioWeight through a cgroup of the run's
// own (cgroup/), made before the spawn and removed once the run has ended, which this driver learns
// at the exit of its own child, or at the next stop, waitExit, recover or start of that process.
import { setTimeout as sleep } from 'node:timers/promises';
import { PmError } from '../../errors.js';
import { limitsOf } from '../../manifest/resources.js';
import type { Driver, ExecHandle, ExitStatus, Observation, StartRequest, StopOptions, StopResult } from '../driver.js';
import { findMarkedLeader, INSTANCE_ENV, newInstanceMarker } from './instance.js';
import { isLiveState, isPlausiblePid, readBootId, readProcessIdentity } from './proc.js';
import { spawnerFor, type NativeSpawner, type SpawnChoice } from './native.js';
import { spawnProcess, type SpawnedChild } from './spawn.js';
import { StopTarget } from './stop-target.js';
import { sendSignal, signalGroup } from './group.js';
import { checkStartable } from './preflight.js';
import { cgroupLimitsOf, Cgroups, type RunCgroup } from './cgroup/index.js';

export { readBootId, readProcessIdentity, parseProcStat, type ProcessIdentity } from './proc.js';
export { INSTANCE_ENV, newInstanceMarker } from './instance.js';

/** How often stop() looks at the group while waiting for it to end. There is no pidfd in Node. */
const STOP_POLL_MS = 15;
/** How often waitExit() looks for a process this pm did not spawn. */
const WAIT_POLL_MS = 50;
/** Every 20th poll (each second) checks the process's identity, not only that its PID exists. */
const IDENTITY_EVERY = 20;
/** After SIGKILL a group ends within moments unless a member is stuck in the kernel (state D). */
const KILL_WAIT_MS = 5000;

export interface ExecDriverOptions {
  /** Where runs with memory, cpus, pids or ioWeight limits get their cgroups (a test's fake hierarchy). */
  cgroups?: Cgroups;
  /** How processes are started (PM_SPAWN): auto, the default, uses the native spawner when it was built. */
  spawn?: SpawnChoice;
}

export class ExecDriver implements Driver {
  /** Children this pm process spawned, by `pid:startTime`. */
  readonly #children = new Map<string, SpawnedChild>();
  /** Stops in flight, by run and options (see stop). */
  readonly #stopping = new Map<string, Promise<StopResult>>();
  readonly #cgroups: Cgroups;
  readonly #spawner: NativeSpawner | undefined;

  constructor(options: ExecDriverOptions = {}) {
    this.#cgroups = options.cgroups ?? new Cgroups();
    this.#spawner = spawnerFor(options.spawn ?? 'auto');
  }

  check(request: StartRequest): Promise<void> {
    return checkStartable(request, this.#cgroups);
  }

  async start(request: StartRequest): Promise<ExecHandle> {
    // The marker is inherited by everything the process forks: see instance.ts.
    const instance = request.instance ?? newInstanceMarker();
    const limits = limitsOf(request.manifest);
    let cgroup: RunCgroup | undefined;
    if (cgroupLimitsOf(limits).length > 0) {
      // Earlier runs' cgroups left empty (by a pm that crashed, or that did not see the exit) go first.
      await this.#cgroups.sweep(request.name);
      cgroup = await this.#cgroups.create(request.name, instance, limits);
    }
    let spawned: SpawnedChild;
    try {
      spawned = await spawnProcess({ ...request, env: { ...request.env, [INSTANCE_ENV]: instance } }, cgroup, this.#spawner);
    } catch (err) {
      await cgroup?.remove();
      throw err;
    }
    // Removed as soon as the run ends; what it forked may keep it busy until a stop or the next start.
    if (cgroup) void spawned.exited.then(() => cgroup.remove()).catch(() => undefined);
    this.#children.set(childKey(spawned.pid, spawned.startTime), spawned);
    return {
      driver: 'exec',
      pid: spawned.pid,
      pgid: spawned.pid,
      startTime: spawned.startTime,
      bootId: await readBootId(),
      instance,
    };
  }

  async inspect(handle: ExecHandle): Promise<Observation> {
    const own = this.#own(handle);
    if (own) return own.exit ? { state: 'exited', exit: own.exit } : { state: 'running', pid: own.pid };
    if (await isRunning(handle)) return { state: 'running', pid: handle.pid };
    return { state: 'exited', exit: unknownExit() };
  }

  /**
   * Two stops of one run at once (a shutdown and a restart, say) share one outcome: the second
   * would otherwise find the process gone that the first just ended, and report it was not running.
   * Only with the same options: a stop with a shorter grace period must not wait for a longer one.
   */
  stop(handle: ExecHandle, options: StopOptions): Promise<StopResult> {
    const key = `${handle.pid}:${handle.startTime}:${options.signal}:${options.gracePeriodMs}`;
    const inFlight = this.#stopping.get(key);
    if (inFlight) return inFlight;
    const stopping = this.#stopAndRelease(handle, options).finally(() => this.#stopping.delete(key));
    this.#stopping.set(key, stopping);
    return stopping;
  }

  async #stopAndRelease(handle: ExecHandle, options: StopOptions): Promise<StopResult> {
    const own = this.#own(handle);
    // Read while the leader may still be in it: a pm elsewhere (another cgroup) may have made it.
    const leaderCgroup = own?.cgroup ?? (handle.instance !== undefined && isPlausiblePid(handle.pid) ? await this.#cgroups.ofProcess(handle.pid, handle.instance) : undefined);
    const result = await this.#stop(handle, options, own);
    await this.#release(handle, leaderCgroup);
    return result;
  }

  async #stop(handle: ExecHandle, options: StopOptions, own: SpawnedChild | undefined): Promise<StopResult> {
    // Identity first: a PID (and its group id) reused by another program is never signalled. The
    // exec driver's processes lead their own group, so a handle whose pgid differs is not ours.
    if (!isPlausiblePid(handle.pid) || handle.pgid !== handle.pid || handle.bootId !== (await readBootId())) {
      return { forced: false, wasRunning: false };
    }
    // Nothing left of the group at all (the common case after an exit): one syscall answers it.
    if ((!own || own.exit) && signalGroup(handle.pgid, 0) === 'gone') return { forced: false, wasRunning: false, ...(own?.exit && { exit: own.exit }) };
    const identity = await readProcessIdentity(handle.pid);
    if (identity !== undefined && identity.startTime !== handle.startTime) {
      return { forced: false, wasRunning: false, ...(own?.exit && { exit: own.exit }) };
    }
    // While the leader holds its PID the whole group is ours; after that only members carrying the
    // instance marker are (the number may since name a stranger's group). See stop-target.ts.
    const target = new StopTarget(handle, own);
    if (!(await target.alive())) {
      return { forced: false, wasRunning: false, ...(own?.exit && { exit: own.exit }) };
    }

    if ((await target.signal(options.signal)) === 'denied') throw permissionDenied(handle, options.signal);
    let forced = false;
    const leaderExit = own && own.exit === undefined ? own.exited : undefined;
    if (!(await waitGone(target, Date.now() + Math.max(0, options.gracePeriodMs), leaderExit))) {
      forced = true;
      if ((await target.signal('SIGKILL')) === 'denied') throw permissionDenied(handle, 'SIGKILL');
      if (!(await waitGone(target, Date.now() + KILL_WAIT_MS))) {
        throw new PmError('E_STOP', `process group ${handle.pgid} still has live members ${KILL_WAIT_MS} ms after SIGKILL`, {
          hint: `a member may be stuck in the kernel (state D): look with \`ps -o pid,stat,wchan,cmd -g ${handle.pgid}\``,
        });
      }
    }
    return { forced, wasRunning: true, exit: own ? await own.exited : unknownExit() };
  }

  onExit(handle: ExecHandle, exited: (exit: ExitStatus) => void): (() => void) | undefined {
    const own = this.#own(handle);
    if (!own || own.onExit !== undefined) return undefined;
    if (own.exit) {
      const exit = own.exit;
      queueMicrotask(() => exited(exit));
      return () => undefined;
    }
    this.#hold(own);
    own.onExit = (exit) => {
      this.#letGo(own);
      exited(exit);
    };
    return () => {
      if (own.onExit === undefined) return;
      own.onExit = undefined;
      this.#letGo(own);
    };
  }

  async waitExit(handle: ExecHandle, signal?: AbortSignal): Promise<ExitStatus> {
    signal?.throwIfAborted();
    const own = this.#own(handle);
    if (own) return own.exit ?? this.#waitOwn(own, signal);
    // Not our child: no exit event, so poll. kill(pid, 0) is one cheap syscall; the full identity
    // check (start time, zombie state: /proc) runs every IDENTITY_EVERY polls, which bounds what a
    // daemon that adopted many processes spends at idle. A PID reused within that second would
    // need the whole PID space to cycle.
    for (let poll = 0; ; poll++) {
      if (poll % IDENTITY_EVERY === 0 ? !(await isRunning(handle)) : sendSignal(handle.pid, 0) === 'gone') break;
      try {
        await sleep(WAIT_POLL_MS, undefined, { signal });
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        throw err;
      }
    }
    await this.#release(handle);
    return unknownExit();
  }

  /**
   * Finds the running leader of the instance with this marker: a process started under a marker
   * recorded before the spawn, whose handle its starter did not live to record. Scans /proc.
   */
  async recover(instance: string): Promise<ExecHandle | undefined> {
    const leader = await findMarkedLeader(instance);
    if (!leader) {
      await (await this.#cgroups.ofInstance(instance))?.remove();
      return undefined;
    }
    return { driver: 'exec', pid: leader.pid, pgid: leader.pid, startTime: leader.startTime, bootId: await readBootId(), instance };
  }

  /** Drops what this driver remembers about a child it spawned (call once its exit is recorded). */
  forget(handle: ExecHandle): void {
    this.#children.delete(childKey(handle.pid, handle.startTime));
  }

  /**
   * Waits for the exit event of an own child. Children are unref'd so pm can exit while they run;
   * while someone waits for one, it holds the event loop open again.
   */
  async #waitOwn(own: SpawnedChild, signal: AbortSignal | undefined): Promise<ExitStatus> {
    this.#hold(own);
    try {
      return await abortable(own.exited, signal);
    } finally {
      this.#letGo(own);
    }
  }

  /** One more waiter (waitExit, onExit) on an own child: the first holds the event loop open. */
  #hold(own: SpawnedChild): void {
    if (own.waiters++ === 0) own.child.ref();
  }

  #letGo(own: SpawnedChild): void {
    if (--own.waiters === 0) own.child.unref();
  }

  /** Removes the run's cgroups that are empty now (all of them once nothing of the run is left). */
  async #release(handle: ExecHandle, known?: RunCgroup): Promise<void> {
    await known?.remove();
    if (handle.instance !== undefined) await (await this.#cgroups.ofInstance(handle.instance))?.remove();
  }

  #own(handle: ExecHandle): SpawnedChild | undefined {
    return this.#children.get(childKey(handle.pid, handle.startTime));
  }
}

function childKey(pid: number, startTime: string): string {
  return `${pid}:${startTime}`;
}

/** Running iff the PID exists with the recorded start time, in this boot, and is not a zombie. */
async function isRunning(handle: ExecHandle): Promise<boolean> {
  if (!isPlausiblePid(handle.pid) || handle.bootId !== (await readBootId())) return false;
  const identity = await readProcessIdentity(handle.pid);
  return identity !== undefined && identity.startTime === handle.startTime && isLiveState(identity.state);
}

/** Polls until nothing of the instance runs any more (for an own child: its exit event has arrived too). */
async function waitGone(target: StopTarget, deadline: number, leaderExit?: Promise<unknown>): Promise<boolean> {
  // An own child's exit event ends a wait at once (bench:flags measured ~15 ms of polling on every
  // deliberate restart); what it left in its group is then polled for, as before.
  let exitPending = leaderExit !== undefined;
  void leaderExit?.then(() => (exitPending = false));
  while (true) {
    if (!(await target.alive())) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    const wait = new AbortController();
    const tick = sleep(Math.min(STOP_POLL_MS, left), undefined, { signal: wait.signal }).catch(() => undefined);
    await (exitPending && leaderExit ? Promise.race([tick, leaderExit]) : tick);
    wait.abort();
  }
}

function unknownExit(): ExitStatus {
  return { code: null, signal: null, known: false, at: Date.now() };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function permissionDenied(handle: ExecHandle, signal: NodeJS.Signals): PmError {
  return new PmError('E_STOP', `cannot send ${signal} to process group ${handle.pgid} (or a process left in it): permission denied`, {
    hint: 'run pm as the user that started the process, or as root',
  });
}
