// Watches one running instance for the daemon: its exit (an event from the driver, not a poll,
// for the children this daemon spawned) and its probes, in the Kubernetes order — the startup
// probe holds readiness and liveness off until it passes; readiness and liveness then run for as
// long as the instance lives. It decides nothing: it reports, and the supervisor acts.
import { driverProbeHooks } from '../probes/context.js';
import { probesOf } from '../probes/effective.js';
import { optionalCwd } from '../manifest/runtime.js';
import { describeHandle, type Driver, type ExitStatus, type ProcessHandle } from '../drivers/driver.js';
import type { DesiredProcess } from '../manifest/types.js';
import { runProbe, type ProbeContext, type RunnableProbe } from '../probes/runners.js';
import { ProbeWorker, runProbeLoop, type ProbeKind, type ProbeUpdate } from '../probes/worker.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_TIMER_MS } from '../util/duration.js';

/** A failed exit watch is tried again after this long, doubling up to the max. */
const WATCH_RETRY_MIN_MS = 100;
const WATCH_RETRY_MAX_MS = 5_000;

export interface InstanceListener {
  exited(exit: ExitStatus): void;
  /** Ready (startup and readiness passed, up minReadySeconds) or no longer ready. */
  readiness(ready: boolean, detail: string): void;
  /** The startup probe reached failureThreshold, or liveness did: the instance must be restarted. */
  unhealthy(kind: 'startup' | 'liveness', detail: string): void;
  /** A line worth showing in the status (the last failing probe result). */
  note(detail: string): void;
}

export interface InstanceIdentity {
  env: Record<string, string>;
  uid?: number;
  gid?: number;
  /** Where a notify startup probe finds what the run wrote to its descriptor. */
  readyFile?: string;
}

export class Instance {
  readonly handle: ProcessHandle;
  /** Epoch ms. */
  readonly startedAt: number;
  /** A deliberate stop is under way: its exit is not a failure. */
  stopping = false;
  #ready = false;
  #startupPassed: boolean;
  #readinessPassed: boolean;
  #upLongEnough: boolean;
  /** A postStart hook is running: readiness waits for it (as Kubernetes does). */
  #heldBy: string | undefined;
  /** The start's record is not on disk yet: readiness waits for it (see readyOnceRecorded). */
  #unrecorded = false;
  #closed = false;
  /** Why the exit watch failed, until the driver answers again. */
  #watchLost: string | undefined;
  /** Made on first use: most instances never need one (an own child's exit comes as an event). */
  #abortController: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Stops the driver's exit listener (onExit). */
  #unwatchExit: (() => void) | undefined;

  constructor(
    private readonly proc: DesiredProcess,
    handle: ProcessHandle,
    startedAt: number,
    private readonly identity: InstanceIdentity,
    private readonly driver: Driver,
    private readonly listener: InstanceListener,
    now: number,
  ) {
    this.handle = handle;
    this.startedAt = startedAt;
    const probes = probesOf(proc.manifest);
    this.#startupPassed = !probes.startup;
    this.#readinessPassed = !probes.readiness;
    const settleMs = startedAt + proc.manifest.spec.minReadySeconds * 1000 - now;
    this.#upLongEnough = settleMs <= 0;
    // A oneshot job is never ready while it runs: it counts once it has exited with code 0.
    if (proc.manifest.spec.type === 'oneshot') this.#heldBy = 'a oneshot job counts when it completes';
    else if (!this.#upLongEnough) {
      this.#timer = setTimeout(() => {
        this.#upLongEnough = true;
        this.#update();
      }, Math.min(settleMs, MAX_TIMER_MS));
    }
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Keeps the instance not ready until release(), whatever its probes say. Call before watch(). */
  hold(reason: string): void {
    this.#heldBy = reason;
  }

  /**
   * Keeps the instance not ready until `written` settles: a process reported ready is one a
   * restarted daemon finds by its record (and counts the run of). A write that fails (reported by
   * its writer, a full disk say) lets it be ready all the same: dependents do not wait on the disk.
   * Call before watch().
   */
  readyOnceRecorded(written: Promise<void>): void {
    this.#unrecorded = true;
    const settled = (): void => {
      this.#unrecorded = false;
      this.#update();
    };
    written.then(settled, settled);
  }

  release(): void {
    if (this.proc.manifest.spec.type === 'oneshot') return;
    this.#heldBy = undefined;
    this.#update();
  }

  /** Starts watching. Resolves at once; reports arrive through the listener until close(). */
  watch(): void {
    this.#unwatchExit = this.driver.onExit?.(this.handle, (exit) => {
      if (this.#closed) return;
      this.close();
      this.listener.exited(exit);
    });
    if (this.#unwatchExit === undefined) void this.#watchExit();
    if (this.proc.manifest.spec.type === 'oneshot') return;
    void this.#probe();
    this.#update();
  }

  /** Stops watching (not the process): probes and timers end, no more reports. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatchExit?.();
    this.#abortController?.abort(new Error('instance closed'));
    clearTimeout(this.#timer);
  }

  get #abort(): AbortController {
    if (!this.#abortController) {
      this.#abortController = new AbortController();
      if (this.#closed) this.#abortController.abort(new Error('instance closed'));
    }
    return this.#abortController;
  }

  /**
   * Waits for the exit through the driver. A wait that fails (the Docker Engine restarting, its
   * socket reset) is not an exit, and must not leave the instance unwatched: it is not ready
   * meanwhile (its state is unknown), and the driver is asked again, with a growing pause, until it
   * answers; an exit that happened meanwhile is then reported like any other.
   */
  async #watchExit(): Promise<void> {
    const signal = this.#abort.signal;
    let pauseMs = WATCH_RETRY_MIN_MS;
    while (!this.#closed) {
      try {
        const exit = await this.driver.waitExit(this.handle, signal);
        if (this.#closed) return;
        this.close();
        this.listener.exited(exit);
        return;
      } catch (error) {
        if (this.#closed || signal.aborted) return;
        if (this.#watchLost === undefined) {
          this.#watchLost = (error as Error).message;
          this.listener.note(`exit watch lost (${this.#watchLost}): retrying`);
          this.#update();
        }
      }
      try {
        await sleep(pauseMs, undefined, { signal });
      } catch {
        return;
      }
      pauseMs = Math.min(pauseMs * 2, WATCH_RETRY_MAX_MS);
      const seen = await this.driver.inspect(this.handle).catch(() => undefined);
      if (seen?.state === 'running' && this.#watchLost !== undefined) {
        this.#watchLost = undefined;
        pauseMs = WATCH_RETRY_MIN_MS;
        this.#update();
      }
    }
  }

  async #probe(): Promise<void> {
    const probes = probesOf(this.proc.manifest);
    if (probes.startup) {
      const passed = await this.#loop('startup', probes.startup, (update) => {
        if (update.status === 'failure') {
          this.listener.unhealthy('startup', `startup probe failed ${update.consecutiveFailures} times: ${update.result.message}`);
          return 'stop';
        }
        if (update.status === 'success') return 'stop';
        if (!update.result.ok) this.listener.note(`startup: ${update.result.message}`);
        return 'go on';
      });
      if (!passed || this.#closed) return;
      this.#startupPassed = true;
      this.#update();
    }
    const loops: Promise<unknown>[] = [];
    if (probes.readiness) {
      loops.push(
        this.#loop('readiness', probes.readiness, (update) => {
          if (update.changed || update.status === 'failure') {
            this.#readinessPassed = update.status === 'success';
            if (!update.result.ok) this.listener.note(`readiness: ${update.result.message} (${update.consecutiveFailures} failed)`);
            this.#update();
          }
          return 'go on';
        }),
      );
    }
    if (probes.liveness) {
      loops.push(
        this.#loop('liveness', probes.liveness, (update) => {
          if (update.changed && update.status === 'failure') {
            this.listener.unhealthy('liveness', `liveness probe failed ${update.consecutiveFailures} times: ${update.result.message}`);
            return 'stop';
          }
          return 'go on';
        }),
      );
    }
    await Promise.all(loops);
  }

  /** Runs one probe until `onUpdate` says stop or the instance closes; true when it ended on a success. */
  async #loop(kind: ProbeKind, probe: RunnableProbe, onUpdate: (update: ProbeUpdate) => 'stop' | 'go on'): Promise<boolean> {
    const done = new AbortController();
    const stop = (): void => done.abort();
    this.#abort.signal.addEventListener('abort', stop, { once: true });
    const { ports } = this.proc.manifest.spec;
    const context: ProbeContext = { ports, ...optionalCwd(this.proc.manifest), env: this.identity.env, signal: done.signal, ...ids(this.identity), ...driverProbeHooks(this.driver, this.handle), ...(this.identity.readyFile !== undefined && { readyFile: this.identity.readyFile }) };
    const worker = new ProbeWorker(kind, probe, () => runProbe(probe, context));
    let lastStatus = worker.status;
    try {
      await runProbeLoop(worker, probe, {
        signal: done.signal,
        onResult: (update) => {
          lastStatus = update.status;
          if (this.#closed || onUpdate(update) === 'stop') stop();
        },
      });
    } catch {
      // A loop that throws ends this probe; the instance is still watched for its exit.
    } finally {
      this.#abort.signal.removeEventListener('abort', stop);
    }
    return lastStatus === 'success';
  }

  #update(): void {
    if (this.#closed) return;
    const ready = this.#heldBy === undefined && !this.#unrecorded && this.#watchLost === undefined && this.#startupPassed && this.#readinessPassed && this.#upLongEnough;
    if (ready === this.#ready) return;
    this.#ready = ready;
    const why = this.#watchLost !== undefined ? `state unknown: ${this.#watchLost}` : 'readiness probe failing';
    this.listener.readiness(ready, ready ? describeHandle(this.handle) : why);
  }
}

function ids(identity: InstanceIdentity): { uid?: number; gid?: number } {
  return { ...(identity.uid !== undefined && { uid: identity.uid }), ...(identity.gid !== undefined && { gid: identity.gid }) };
}
