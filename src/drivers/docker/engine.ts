// The Docker Engine API, narrowed to the calls the driver makes. One dockerode client without
// docker-modem's idle `timeout` (that option destroys the long polls: wait, events); instead every
// short call runs under its own deadline, an AbortSignal that dockerode hands to http.request.
//
// The API version is not pinned: unversioned paths mean "the engine's own version", which every
// engine serves, while a pinned v1.41 is refused by engines whose minimum is newer (Docker 29
// requires ≥ 1.44). The fields used here are the same from 1.41 (Debian's 20.10) on.
//
// Request bodies go as `_body` with an explicit `_query`: without them docker-modem sends the whole
// options object as the query string too, which would put the environment into the URL.
import type { IncomingMessage } from 'node:http';
import type DockerModem from 'docker-modem';
import Docker from 'dockerode';
import { classifyEngineError, DockerError, DockerErrorCode, timedOut } from './errors.js';

export const DEFAULT_SOCKET = '/var/run/docker.sock';
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface EngineOptions {
  socketPath: string;
  /** Deadline of each short call (not of waits and the event stream). */
  timeoutMs: number;
}

export interface CallOptions {
  /** The caller's cancellation. */
  signal?: AbortSignal | undefined;
  /** Overrides the engine's deadline for this call; null: no deadline (long polls). */
  timeoutMs?: number | null;
  /** Values that must not appear in an error message (the environment of a create). */
  secrets?: readonly string[];
}

/** The create response: Docker reports dropped settings only here, and dockerode's createContainer discards it. */
export interface Created {
  id: string;
  warnings: string[];
}

export type KillOutcome = 'sent' | 'not-running' | 'gone';
export type WaitOutcome = { state: 'exited'; code: number } | { state: 'gone' } | { state: 'timeout' };

export class Engine {
  readonly docker: Docker;
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(options: EngineOptions) {
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs;
    // Builds no connection: dockerode dials per request.
    this.docker = new Docker({ socketPath: options.socketPath });
  }

  /**
   * Runs one engine call under the deadline and the caller's signal. A caller's abort rejects with
   * its reason; the deadline with E_DOCKER_TIMEOUT; anything else is classified (errors.ts).
   */
  async call<T>(what: string, run: (signal: AbortSignal) => Promise<T>, options: CallOptions = {}): Promise<T> {
    options.signal?.throwIfAborted();
    const timeoutMs = options.timeoutMs === undefined ? this.timeoutMs : options.timeoutMs;
    const deadline = timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs);
    const signals = [options.signal, deadline].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length === 1 ? signals[0]! : signals.length === 0 ? new AbortController().signal : AbortSignal.any(signals);
    try {
      return await run(signal);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason;
      if (deadline?.aborted && timeoutMs !== null) throw timedOut(what, timeoutMs);
      throw classifyEngineError(error, what, this.socketPath, options.secrets);
    }
  }

  /** The container's full inspect, or undefined when there is none by that id or name. */
  async inspectContainer(idOrName: string, signal?: AbortSignal): Promise<Docker.ContainerInspectInfo | undefined> {
    try {
      return await this.call(`inspect container ${idOrName}`, (abortSignal) => this.docker.getContainer(idOrName).inspect({ abortSignal }), { signal });
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** POST /containers/create with the name in the query and everything else in the body. */
  async createContainer(name: string, body: object, secrets: readonly string[], signal?: AbortSignal): Promise<Created> {
    const result = await this.call(
      `create container ${name}`,
      (abortSignal) =>
        this.#dial({
          path: '/containers/create?',
          method: 'POST',
          options: { _query: { name }, _body: body },
          abortSignal,
          statusCodes: { 200: true, 201: true, 400: 'bad parameter', 404: 'no such image', 409: 'conflict', 500: 'server error' },
        }),
      { signal, secrets },
    );
    const { Id, Warnings } = (result ?? {}) as { Id?: unknown; Warnings?: unknown };
    if (typeof Id !== 'string') throw new DockerError(DockerErrorCode.other, `create container ${name}: the engine answered without an Id`, { hint: 'is something other than dockerd listening on the socket?' });
    return { id: Id, warnings: Array.isArray(Warnings) ? Warnings.filter((w): w is string => typeof w === 'string') : [] };
  }

  /**
   * Runs `cmd` in the running container (the engine's exec, no shell) and resolves with its exit
   * code, or rejects on the deadline (the exec itself may run on: the engine cannot stop one).
   * Output is read and dropped: a probe's verdict is its exit code.
   */
  async execIn(id: string, cmd: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<number> {
    return this.call(
      `exec in container ${id}`,
      async (abortSignal) => {
        const exec = await this.docker.getContainer(id).exec({ Cmd: [...cmd], AttachStdout: true, AttachStderr: true, abortSignal });
        const stream = await exec.start({ Detach: false, Tty: false, abortSignal });
        await new Promise<void>((resolve, reject) => {
          const fail = (): void => {
            stream.destroy();
            reject(abortSignal.reason as Error);
          };
          abortSignal.addEventListener('abort', fail, { once: true });
          stream.on('error', reject);
          stream.on('end', () => {
            abortSignal.removeEventListener('abort', fail);
            resolve();
          });
          stream.resume();
        });
        const info = await exec.inspect({ abortSignal });
        return info.ExitCode ?? -1;
      },
      { signal, timeoutMs },
    );
  }

  /**
   * The container's output as the engine's log driver kept it, written to `out` (stdout and stderr
   * frames demultiplexed, in order); `follow` goes on until the container stops or `signal` aborts.
   * No deadline: a follow runs as long as the caller wants.
   */
  async logs(id: string, options: { stdout: boolean; stderr: boolean; follow: boolean; tail?: number }, out: NodeJS.WritableStream, signal?: AbortSignal): Promise<void> {
    await this.call(
      `logs of container ${id}`,
      async (abortSignal) => {
        const query = { stdout: options.stdout, stderr: options.stderr, ...(options.tail !== undefined && { tail: options.tail }), abortSignal };
        const container = this.docker.getContainer(id);
        if (!options.follow) {
          writeFrames(await container.logs({ ...query, follow: false }), out);
          return;
        }
        // An http.IncomingMessage at run time; typed as the bare stream interface.
        const stream = (await container.logs({ ...query, follow: true })) as NodeJS.ReadableStream & { destroy(): void };
        await new Promise<void>((resolve, reject) => {
          const stop = (): void => {
            stream.destroy();
            resolve();
          };
          abortSignal.addEventListener('abort', stop, { once: true });
          this.docker.modem.demuxStream(stream, out, out);
          stream.on('error', (error: Error) => (abortSignal.aborted ? resolve() : reject(error)));
          stream.on('end', () => {
            abortSignal.removeEventListener('abort', stop);
            resolve();
          });
        });
      },
      { signal, timeoutMs: null },
    );
  }

  /** Starts a created container; "already started" (304) counts as done. */
  async startContainer(id: string, signal?: AbortSignal): Promise<void> {
    try {
      await this.call(`start container ${id}`, (abortSignal) => this.docker.getContainer(id).start({ abortSignal }), { signal });
    } catch (error) {
      if (!isStatus(error, 304)) throw error;
    }
  }

  /** Sends a signal to the container's main process. */
  async killContainer(id: string, signalName: NodeJS.Signals, signal?: AbortSignal): Promise<KillOutcome> {
    try {
      await this.call(`send ${signalName} to container ${id}`, (abortSignal) => this.docker.getContainer(id).kill({ signal: signalName, abortSignal }), { signal });
      return 'sent';
    } catch (error) {
      if (isStatus(error, 404)) return 'gone';
      // 409: "Container … is not running".
      if (isStatus(error, 409)) return 'not-running';
      throw error;
    }
  }

  /** Removes a container and its anonymous volumes. `force` kills it first when it runs. */
  async removeContainer(id: string, force: boolean, signal?: AbortSignal): Promise<'removed' | 'gone'> {
    try {
      await this.call(`remove container ${id}`, (abortSignal) => this.docker.getContainer(id).remove({ force, v: true, abortSignal }), { signal });
      return 'removed';
    } catch (error) {
      if (isStatus(error, 404)) return 'gone';
      throw error;
    }
  }

  /**
   * Waits until the container is not running (returns at once when it already is not), up to
   * `timeoutMs` (null: as long as it takes). The engine's wait endpoint, one long poll, no polling.
   */
  async waitNotRunning(id: string, timeoutMs: number | null, signal?: AbortSignal): Promise<WaitOutcome> {
    const deadline = timeoutMs === null ? undefined : AbortSignal.timeout(Math.max(0, timeoutMs));
    const signals = [signal, deadline].filter((s): s is AbortSignal => s !== undefined);
    const combined = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
    try {
      const result = (await this.call(`wait for container ${id}`, (abortSignal) => this.docker.getContainer(id).wait({ condition: 'not-running', abortSignal }), {
        signal: combined,
        timeoutMs: null,
      })) as { StatusCode?: unknown };
      return { state: 'exited', code: typeof result.StatusCode === 'number' ? result.StatusCode : -1 };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (deadline?.aborted) return { state: 'timeout' };
      if (isStatus(error, 404)) return { state: 'gone' };
      throw error;
    }
  }

  /** Containers (running or not) carrying every one of `labels` (`key=value`). */
  listContainers(labels: readonly string[], signal?: AbortSignal): Promise<Docker.ContainerInfo[]> {
    return this.call(`list containers labelled ${labels.join(', ')}`, (abortSignal) => this.docker.listContainers({ all: true, filters: { label: [...labels] }, abortSignal }), { signal });
  }

  /** Whether the image is on the engine. */
  async hasImage(ref: string, signal?: AbortSignal): Promise<boolean> {
    try {
      // dockerode's Image.inspect ignores abortSignal: dialled directly.
      await this.call(`inspect image ${ref}`, (abortSignal) => this.#dial({ path: `/images/${ref}/json`, method: 'GET', abortSignal, statusCodes: { 200: true, 404: 'no such image', 500: 'server error' } }), { signal });
      return true;
    } catch (error) {
      if (isStatus(error, 404)) return false;
      throw error;
    }
  }

  /**
   * Opens GET /events; resolves once the engine has sent the headers (from then on nothing is
   * missed). The response is the NDJSON stream; the connection timeout only covers that far.
   */
  openEvents(query: { since?: string; filters: Record<string, string[]> }, signal: AbortSignal): Promise<IncomingMessage> {
    const _query: Record<string, string> = { filters: JSON.stringify(query.filters) };
    if (query.since !== undefined) _query.since = query.since;
    let response: IncomingMessage | undefined;
    const connect = new AbortController();
    // The deadline may only cut the connection attempt, never the stream that follows.
    const timer = setTimeout(() => {
      if (!response) connect.abort();
    }, this.timeoutMs);
    return this.call(
      'watch engine events',
      (abortSignal) =>
        this.#dial({ path: '/events?', method: 'GET', options: { _query }, abortSignal, isStream: true, statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error' } }).then((result) => {
          response = result as IncomingMessage;
          return response;
        }),
      { signal: AbortSignal.any([signal, connect.signal]), timeoutMs: null },
    )
      .catch((error: unknown) => {
        if (connect.signal.aborted && !signal.aborted) throw timedOut('watch engine events', this.timeoutMs);
        throw error;
      })
      .finally(() => clearTimeout(timer));
  }

  /** docker-modem's dial as a promise: for the calls dockerode wraps without what pm needs. */
  #dial(options: DockerModem.DialOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(options, (error, result) => (error ? reject(error) : resolve(result)));
    });
  }
}

/** An engine answer with this HTTP status. */
export function isStatus(error: unknown, status: number): boolean {
  return error instanceof DockerError && error.status === status;
}

/**
 * The engine's multiplexed log format (no TTY): frames of an 8-byte header (stream type, 3 zero
 * bytes, a big-endian length) and that many bytes. Written in order, both streams to `out`.
 */
export function writeFrames(buffer: Buffer, out: NodeJS.WritableStream): void {
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const length = buffer.readUInt32BE(offset + 4);
    out.write(buffer.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
}
