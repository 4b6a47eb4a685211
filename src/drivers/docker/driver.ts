// The docker driver: pm creates a container per process (named pm-<process>), labels it as its own,
// starts it, and finds it again through the engine. Exit codes are the engine's, so they are known
// to every later pm process too (`known: true`), not only to the one that started the container.
//
// Ownership: a container is this pm's iff its pm.owner label equals `owner`. Anything else on the
// engine is never stopped, removed or replaced — a foreign container that holds the name is an
// error (E_DOCKER_NAME_CONFLICT), not something to clean up.
//
// Stopping: API 1.41 has no signal parameter on stop (1.42 added it), and the container's
// StopSignal is fixed at create. So stop() sends the requested signal with kill, waits on the
// engine's wait endpoint for the grace period, then sends SIGKILL; it knows whether it forced.
import { DockerError, DockerErrorCode, imageNotFound, invalidSpec } from './errors.js';
import { DEFAULT_SOCKET, DEFAULT_TIMEOUT_MS, Engine, isStatus, type Created } from './engine.js';
import { watchEvents, type DockerEvent, type WatchOptions } from './events.js';
import { isOwnedBy, Label, ownerFilter } from './labels.js';
import { containerLabels, containerName, createBody, droppedSettings, isImageRef, specDigest, validateSpec, type ContainerSpec } from './spec.js';
import { exitFromCode, exitOf, healthOf, isRunningState, observe, unknownExit, type HealthStatus } from './state.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import type { DockerHandle, ExitStatus, Observation, StopOptions, StopResult } from '../driver.js';

export interface DockerDriverOptions {
  /** Identifies this pm (e.g. host name + state directory digest); the pm.owner label. */
  owner: string;
  /** Default /var/run/docker.sock. */
  socketPath?: string;
  /** Deadline of each engine call, ms (not of waits and the event stream). Default 30 s. */
  timeoutMs?: number;
  /** The clock, for exit times the engine does not report. Default Date.now. */
  now?: () => number;
}

export interface DockerStartOptions {
  /** The instance marker, chosen and recorded by the caller before the start (see recover). */
  instance: string;
  signal?: AbortSignal;
}

/** A container with this pm's pm.owner label, as listed by the engine. */
export interface OwnedContainer {
  id: string;
  name: string;
  /** pm.process, pm.instance, pm.spec; undefined when the label is missing (someone else set pm.owner). */
  process: string | undefined;
  instance: string | undefined;
  specDigest: string | undefined;
  /** The engine's state: created, running, paused, restarting, removing, exited or dead. */
  state: string;
  /** Epoch ms of its creation. */
  created: number;
}

/** A removal by another client (docker rm -f) is waited for this long, looking this often. */
const REMOVAL_WAIT_MS = 10_000;
const REMOVAL_POLL_MS = 50;
/** After SIGKILL a container ends within moments unless its process is stuck in the kernel. */
const KILL_WAIT_MS = 10_000;
const OWNER = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$/;
const INSTANCE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

export class DockerDriver {
  readonly owner: string;
  readonly #engine: Engine;
  readonly #now: () => number;

  constructor(options: DockerDriverOptions) {
    if (!OWNER.test(options.owner)) throw new TypeError(`owner ${JSON.stringify(options.owner)}: letters, digits and _ . : @ -, at most 200, starting with a letter or digit`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(Number.isInteger(timeoutMs) && timeoutMs > 0)) throw new TypeError(`timeoutMs must be a positive whole number of ms, got ${timeoutMs}`);
    this.owner = options.owner;
    this.#engine = new Engine({ socketPath: options.socketPath ?? DEFAULT_SOCKET, timeoutMs });
    this.#now = options.now ?? Date.now;
  }

  /** Resolves when the image is on the engine; rejects with E_DOCKER_IMAGE_NOT_FOUND (pm never pulls). */
  async checkImage(image: string, signal?: AbortSignal): Promise<void> {
    if (!isImageRef(image)) throw invalidSpec(image, `${JSON.stringify(image)} is not an image reference`);
    if (!(await this.#engine.hasImage(image, signal))) throw imageNotFound(image);
  }

  /**
   * Creates and starts the container pm-<process>. An old container of this pm by that name is
   * removed first when it is not running; one that runs is refused (stop it first); one that is
   * not this pm's is never touched (E_DOCKER_NAME_CONFLICT). A created container that cannot start,
   * or whose limits the engine dropped, is removed again before the rejection.
   */
  async start(spec: ContainerSpec, options: DockerStartOptions): Promise<DockerHandle> {
    validateSpec(spec);
    if (!INSTANCE.test(options.instance)) throw invalidSpec(spec.process, `instance ${JSON.stringify(options.instance)} is not a marker (letters, digits, _ . : -)`);
    const { signal } = options;
    const name = containerName(spec.process);
    // One look at the name serves both: reuse the container, or clear the name for a new one.
    const existing = await this.#engine.inspectContainer(name, signal);
    const reused = existing && (await this.#restartSame(name, existing, spec, signal));
    if (reused) return reused;
    await this.#clearName(name, existing, signal);

    let created: Created;
    try {
      created = await this.#engine.createContainer(name, createBody(spec, containerLabels(spec, this.owner, options.instance)), Object.values(spec.env), signal);
    } catch (error) {
      if (isStatus(error, 404)) throw imageNotFound(spec.image);
      // Someone took the name between the look and the create.
      if (isStatus(error, 409)) throw await this.#nameTaken(name, signal, error);
      throw error;
    }
    try {
      const dropped = droppedSettings(created.warnings);
      if (dropped.length > 0) {
        throw new DockerError(DockerErrorCode.limitUnsupported, `${name}: the engine would drop what was asked: ${dropped.join(' ')}`, {
          hint: 'remove that limit from the spec, or enable the cgroup controller it needs on this host (docker info lists what is missing)',
        });
      }
      await this.#engine.startContainer(created.id, signal);
      const info = await this.#engine.inspectContainer(created.id, signal);
      if (!info) throw new DockerError(DockerErrorCode.other, `${name} was removed right after its start`, { hint: 'something else removes containers on this engine: see docker events' });
      return handleOf(info, options.instance);
    } catch (error) {
      // Never leave a container that did not start behind: its name would block the next try.
      await this.#engine.removeContainer(created.id, true).catch(() => undefined);
      throw error;
    }
  }

  /** What the handle's run is doing: see state.ts observe(). Gone: 'missing'. */
  async inspect(handle: DockerHandle, signal?: AbortSignal): Promise<Observation> {
    const info = await this.#ours(handle, signal);
    if (!info) return { state: 'missing' };
    return observe(handle, info.State, this.#now());
  }

  /** The HEALTHCHECK status of the handle's run; 'none' without a healthcheck or once it is gone. */
  /** The container's output (see Engine.logs); nothing for a container that is gone. */
  async logs(handle: DockerHandle, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    const info = await this.#ours(handle, signal);
    if (!info) return;
    await this.#engine.logs(handle.id, options, out, signal);
  }

  /** Runs `cmd` in the handle's container (an exec probe): its exit code; rejects on timeout or when the container is not this pm's. */
  async execIn(handle: DockerHandle, cmd: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const info = await this.#ours(handle, signal);
    if (!info || !isRunningState(info.State)) throw new DockerError(DockerErrorCode.other, `${handle.name} is not running`, { hint: 'the container exited; pm restarts it under its restart policy' });
    return this.#engine.execIn(handle.id, cmd, timeoutMs, signal);
  }

  async health(handle: DockerHandle, signal?: AbortSignal): Promise<HealthStatus> {
    const info = await this.#ours(handle, signal);
    if (!info || info.State.StartedAt !== handle.startedAt) return 'none';
    return healthOf(info.State);
  }

  /**
   * Sends `options.signal`, waits up to the grace period, then SIGKILL. Safe on a container that is
   * gone or stopped. Stops the container the handle names whichever run it is in (a restart by
   * someone else does not make it less pm's); refuses one with another owner.
   */
  async stop(handle: DockerHandle, options: StopOptions, signal?: AbortSignal): Promise<StopResult> {
    const info = await this.#ours(handle, signal);
    if (!info) return { forced: false, wasRunning: false };
    if (!isRunningState(info.State)) return { forced: false, wasRunning: false, ...this.#sameRunExit(handle, info) };
    if ((await this.#engine.killContainer(handle.id, options.signal, signal)) !== 'sent') {
      return { forced: false, wasRunning: false, ...(await this.#exitNow(handle, signal)) };
    }
    let forced = false;
    let waited = await this.#engine.waitNotRunning(handle.id, Math.max(0, options.gracePeriodMs), signal);
    if (waited.state === 'timeout') {
      forced = true;
      await this.#engine.killContainer(handle.id, 'SIGKILL', signal);
      waited = await this.#engine.waitNotRunning(handle.id, KILL_WAIT_MS, signal);
      if (waited.state === 'timeout') {
        throw new DockerError(DockerErrorCode.timeout, `${handle.name} still runs ${KILL_WAIT_MS} ms after SIGKILL`, {
          hint: `its process may be stuck in the kernel (state D): look with docker top ${handle.id.slice(0, 12)}, and at the engine's log`,
        });
      }
    }
    const exit = waited.state === 'exited' ? await this.#exitAfterWait(handle, waited.code, signal) : unknownExit(this.#now());
    return { forced, wasRunning: true, exit };
  }

  /** Removes the stopped container (and its anonymous volumes). Gone: nothing to do. Running: refused. */
  async remove(handle: DockerHandle, signal?: AbortSignal): Promise<void> {
    const info = await this.#ours(handle, signal);
    if (!info) return;
    if (isRunningState(info.State)) throw stillRunning(handle.name, handle.id);
    try {
      await this.#engine.removeContainer(handle.id, false, signal);
    } catch (error) {
      if (isStatus(error, 409)) throw stillRunning(handle.name, handle.id);
      throw error;
    }
  }

  /**
   * The exit of the handle's run when it is over: ended (code or signal from the engine), or gone,
   * or replaced by another run (unknown); undefined while it runs. One inspect.
   */
  async exitIfOver(handle: DockerHandle, signal?: AbortSignal): Promise<ExitStatus | undefined> {
    const info = await this.#ours(handle, signal);
    if (!info || info.State.StartedAt !== handle.startedAt) return unknownExit(this.#now());
    return isRunningState(info.State) ? undefined : exitOf(info.State, this.#now());
  }

  /**
   * Resolves with the exit of the handle's run: at once when it is over, else when the engine's
   * wait endpoint returns (one long poll, no deadline). `signal` cancels the wait. The daemon
   * waits on all its containers through one event stream instead (exit-watch.ts).
   */
  async waitExit(handle: DockerHandle, signal?: AbortSignal): Promise<ExitStatus> {
    const over = await this.exitIfOver(handle, signal);
    if (over) return over;
    const waited = await this.#engine.waitNotRunning(handle.id, null, signal);
    if (waited.state !== 'exited') return unknownExit(this.#now());
    return this.#exitAfterWait(handle, waited.code, signal);
  }

  /**
   * The container of this owner with pm.instance = `instance`, if any: found again when pm died
   * between creating it and recording its handle. A container that never started has startedAt
   * equal to the engine's zero time and is observed as exited (unknown).
   */
  async recover(instance: string, signal?: AbortSignal): Promise<DockerHandle | undefined> {
    const found = await this.#engine.listContainers(ownerFilter(this.owner, { instance }), signal);
    const best = found.sort((a, b) => Number(b.State === 'running') - Number(a.State === 'running') || b.Created - a.Created)[0];
    if (!best) return undefined;
    const info = await this.#engine.inspectContainer(best.Id, signal);
    if (!info || !isOwnedBy(info.Config.Labels, this.owner)) return undefined;
    return handleOf(info, instance);
  }

  /** Every container carrying this pm's owner label, running or not: for adoption and drift. */
  async listOwned(signal?: AbortSignal): Promise<OwnedContainer[]> {
    const found = await this.#engine.listContainers(ownerFilter(this.owner), signal);
    return found.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      process: c.Labels[Label.process],
      instance: c.Labels[Label.instance],
      specDigest: c.Labels[Label.spec],
      state: c.State,
      created: c.Created * 1000,
    }));
  }

  /** This owner's container events (events.ts) until `signal` aborts. */
  watchEvents(onEvent: (event: DockerEvent) => void, signal: AbortSignal, options?: WatchOptions): Promise<void> {
    return watchEvents(this.#engine, this.owner, onEvent, signal, options);
  }

  /** Makes the name free for a new container of ours, or explains why it is not. */
  /**
   * This pm's stopped container made from the same spec (pm.spec digest: command, environment
   * values, ports, volumes, limits, labels) is started again instead of being replaced: its output
   * so far stays in the engine's log (pm logs shows the run that crashed), and a restart costs no
   * remove and create. The handle keeps the container's own pm.instance label. Undefined when there
   * is none to reuse.
   */
  async #restartSame(name: string, existing: Docker.ContainerInspectInfo, spec: ContainerSpec, signal: AbortSignal | undefined): Promise<DockerHandle | undefined> {
    if (!isOwnedBy(existing.Config.Labels, this.owner)) return undefined;
    if (existing.Config.Labels?.[Label.spec] !== specDigest(spec)) return undefined;
    const instance = existing.Config.Labels[Label.instance];
    if (instance === undefined || !['exited', 'created'].includes(existing.State.Status)) return undefined;
    await this.#engine.startContainer(existing.Id, signal);
    const info = await this.#engine.inspectContainer(existing.Id, signal);
    if (!info) throw new DockerError(DockerErrorCode.other, `${name} was removed right after its start`, { hint: 'something else removes containers on this engine: see docker events' });
    return handleOf(info, instance);
  }

  async #clearName(name: string, existing: Docker.ContainerInspectInfo | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (!existing) return;
    if (!isOwnedBy(existing.Config.Labels, this.owner)) throw nameConflict(name, existing);
    if (isRunningState(existing.State)) throw stillRunning(name, existing.Id);
    if (existing.State.Status === 'removing') return this.#waitGone(name, existing.Id, signal);
    try {
      await this.#engine.removeContainer(existing.Id, false, signal);
    } catch (error) {
      // 409: it was started again meanwhile, or someone else's removal (docker rm -f) is under way.
      if (!isStatus(error, 409)) throw error;
      const now = await this.#engine.inspectContainer(existing.Id, signal);
      if (now && now.State.Status !== 'removing' && now.State.Status !== 'dead') throw stillRunning(name, existing.Id);
      await this.#waitGone(name, existing.Id, signal);
    }
  }

  /** Another client is removing the container: wait (bounded) until its name is free. */
  async #waitGone(name: string, id: string, signal: AbortSignal | undefined): Promise<void> {
    const deadline = this.#now() + REMOVAL_WAIT_MS;
    while (await this.#engine.inspectContainer(id, signal)) {
      if (this.#now() > deadline) throw new DockerError(DockerErrorCode.other, `${name} (${id.slice(0, 12)}) has been being removed for ${REMOVAL_WAIT_MS / 1000} s`, { hint: 'the engine may be stuck: see docker ps -a and the dockerd log' });
      await sleep(REMOVAL_POLL_MS, undefined, signal ? { signal } : undefined);
    }
  }

  async #nameTaken(name: string, signal: AbortSignal | undefined, cause: unknown): Promise<DockerError> {
    const holder = await this.#engine.inspectContainer(name, signal).catch(() => undefined);
    if (!holder) return cause instanceof DockerError ? cause : new DockerError(DockerErrorCode.other, `${name}: the name was taken and released again`, { hint: 'try again' });
    return isOwnedBy(holder.Config.Labels, this.owner) ? stillRunning(name, holder.Id) : nameConflict(name, holder);
  }

  /** The handle's container when it still exists; throws when it carries another owner's label. */
  async #ours(handle: DockerHandle, signal: AbortSignal | undefined): Promise<Docker.ContainerInspectInfo | undefined> {
    const info = await this.#engine.inspectContainer(handle.id, signal);
    if (!info) return undefined;
    if (!isOwnedBy(info.Config.Labels, this.owner)) {
      throw new DockerError(DockerErrorCode.notOwned, `container ${handle.id.slice(0, 12)} (${handle.name}) is not this pm's: its ${Label.owner} label is ${JSON.stringify(info.Config.Labels?.[Label.owner] ?? null)}, not ${JSON.stringify(this.owner)}`, {
        hint: 'pm never touches containers of another owner; the handle may come from another pm state directory',
      });
    }
    return info;
  }

  /** The exit of a stopped container, when its last run is the handle's. */
  #sameRunExit(handle: DockerHandle, info: Docker.ContainerInspectInfo): { exit?: ExitStatus } {
    return info.State.StartedAt === handle.startedAt ? { exit: exitOf(info.State, this.#now()) } : {};
  }

  async #exitNow(handle: DockerHandle, signal: AbortSignal | undefined): Promise<{ exit?: ExitStatus }> {
    const info = await this.#engine.inspectContainer(handle.id, signal);
    return info ? this.#sameRunExit(handle, info) : {};
  }

  /** After the wait endpoint returned `code`: the full exit (time, OOM) from inspect when it is still there. */
  async #exitAfterWait(handle: DockerHandle, code: number, signal: AbortSignal | undefined): Promise<ExitStatus> {
    const info = await this.#engine.inspectContainer(handle.id, signal).catch(() => undefined);
    if (info && info.State.StartedAt === handle.startedAt && !isRunningState(info.State)) return exitOf(info.State, this.#now());
    return exitFromCode(code, this.#now());
  }
}

function handleOf(info: Docker.ContainerInspectInfo, instance: string): DockerHandle {
  // Pid is 0 when the run already ended (a command that exits at once).
  return { driver: 'docker', id: info.Id, name: info.Name.replace(/^\//, ''), instance, startedAt: info.State.StartedAt, pid: info.State.Pid };
}

function nameConflict(name: string, holder: Docker.ContainerInspectInfo): DockerError {
  const id = holder.Id.slice(0, 12);
  const otherOwner = holder.Config.Labels?.[Label.owner];
  const whose = otherOwner === undefined ? 'not created by pm' : `owned by another pm (${Label.owner}=${otherOwner})`;
  return new DockerError(DockerErrorCode.nameConflict, `the container name ${name} is taken by container ${id} (${holder.State.Status}), ${whose}`, {
    hint: `pm never touches containers it does not own: if ${id} is not needed, remove it (docker rm -f ${id}); else rename the pm process`,
    status: 409,
  });
}

function stillRunning(name: string, id: string): DockerError {
  return new DockerError(DockerErrorCode.stillRunning, `this pm's container ${name} (${id.slice(0, 12)}) is still running`, {
    hint: 'stop it first (pm stops before it starts anew; a manual `docker start` may have revived it)',
    status: 409,
  });
}
