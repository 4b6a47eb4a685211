// pm's native spawner (native/spawn.c): posix_spawn and a pidfd per child, instead of libuv's
// fork, which copies the daemon's page tables and blocks its event loop for longer the larger the
// daemon is. Built at `npm install` when a C compiler and Node's headers are there
// (scripts/build-native.mjs); without it pm uses Node's spawn, and says so in the daemon's log.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { PmError } from '../../errors.js';
import { packagePath } from '../../util/package-root.js';
import { signalName } from '../../util/signals.js';
import type { ExitStatus } from '../driver.js';

/** Where the build puts the addon (native/build/ in pm's package). */
export const NATIVE_SPAWNER_PATH = packagePath('native/build/pm_spawn.node');

/** PM_SPAWN: auto (the native spawner when built), native (refuse to run without it), node. */
export type SpawnChoice = 'auto' | 'native' | 'node';
const CHOICES: readonly SpawnChoice[] = ['auto', 'native', 'node'];
/** The addon's fds value for "a new pipe, its read end to the child" (PIPE_TO_CHILD in spawn.c). */
const PIPE_TO_CHILD = -2;

/** PM_SPAWN_VERSION in native/spawn.c: the interface this file speaks. */
const ADDON_VERSION = 4;

/** A file the spawner opens for the child in the thread pool, just before the spawn (open(2)'s flags and mode). */
export interface FileToOpen {
  path: string;
  flags: number;
  mode: number;
}

interface Addon {
  version?: number;
  /** Copies what it is given, opens the files asked for and spawns in libuv's thread pool; throws only on bad arguments. */
  spawn(file: string, argv: string[], envp: string[], cwd: string | null, fds: Array<number | FileToOpen>, onExit: (code: number | null, signal: number, known: boolean) => void): Promise<{ pid: number; handle: object; startTime?: string; pipe?: number }>;
  ref(handle: object): void;
  unref(handle: object): void;
}

/** A child started by the native spawner: its watch can hold Node's event loop open, or not. */
export class NativeChild {
  constructor(
    readonly pid: number,
    readonly handle: object,
    private readonly addon: Addon,
    /** The write end of the pipe asked for with 'pipe' (pm's to close), if any. */
    readonly pipe: number | undefined,
    /** Field 22 of /proc/PID/stat, read in the thread pool right after the spawn; undefined if it could not be. */
    readonly startTime: string | undefined,
  ) {}

  ref(): void {
    this.addon.ref(this.handle);
  }

  unref(): void {
    this.addon.unref(this.handle);
  }
}

export interface NativeSpawnOptions {
  file: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string | undefined;
  /**
   * The parent's descriptor for each of the child's; undefined: /dev/null for 0–2, closed above;
   * 'pipe' (one at most): the read end of a new pipe, whose write end is NativeChild.pipe;
   * a FileToOpen: that file, opened in the thread pool (one path asked for twice with the same
   * flags is opened once, and both descriptors share it).
   */
  fds: readonly (number | 'pipe' | FileToOpen | undefined)[];
  onExit: (exit: ExitStatus) => void;
}

export class NativeSpawner {
  readonly method = 'posix_spawn';
  constructor(private readonly addon: Addon) {}

  /**
   * Starts the program from libuv's thread pool: the event loop goes on while the spawn waits for
   * the child's exec. The descriptors in `fds` are copied before this returns, so the caller may
   * close its own at once. Rejects with an Error with `code` (ENOENT, EACCES, ...) as Node's spawn
   * reports it, or with an OpenFailure when a file in `fds` could not be opened (nothing was
   * started); throws a TypeError at once for a NUL byte.
   */
  spawn(options: NativeSpawnOptions): Promise<NativeChild> {
    const { file, args, env, cwd, fds, onExit } = options;
    const envp: string[] = [];
    for (const [key, value] of Object.entries(env)) if (value !== undefined) envp.push(`${key}=${value}`);
    const argv = [file, ...args];
    // C strings end at a NUL byte: refuse what Node's spawn refuses, rather than run something else.
    const opened = fds.flatMap((fd) => (typeof fd === 'object' ? [fd.path] : []));
    const withNul = [file, cwd ?? '', ...argv, ...envp, ...opened].find((text) => text.includes('\0'));
    if (withNul !== undefined) throw new TypeError(`an argument, the working directory or a variable holds a NUL byte: ${JSON.stringify(withNul)}`);
    let started;
    try {
      started = this.addon.spawn(file, argv, envp, cwd ?? null, fds.map((fd) => (fd === 'pipe' ? PIPE_TO_CHILD : (fd ?? -1))), (code, signal, known) => {
        onExit({ code, signal: signal === 0 ? null : (signalName(signal) ?? null), at: Date.now(), known });
      });
    } catch (err) {
      throw withErrorCode(err, file);
    }
    return started.then(
      (child) => new NativeChild(child.pid, child.handle, this.addon, child.pipe, child.startTime),
      (err: unknown) => Promise.reject(withErrorCode(err, file)),
    );
  }
}

/** The spawner PM_SPAWN asks for; throws PmError for an unknown value. */
export function spawnChoiceOf(env: NodeJS.ProcessEnv): SpawnChoice {
  const value = env.PM_SPAWN;
  if (value === undefined || value === '') return 'auto';
  if ((CHOICES as readonly string[]).includes(value)) return value as SpawnChoice;
  throw new PmError('E_PM_SPAWN', `PM_SPAWN=${value}: not a way pm knows to start processes`, { hint: 'use auto (the default), native or node' });
}

let loaded: { spawner: NativeSpawner } | { reason: string } | undefined;

/** The native spawner, loaded once; or why it cannot be used. */
export function loadNativeSpawner(): { spawner: NativeSpawner } | { reason: string } {
  loaded ??= load();
  return loaded;
}

function load(): { spawner: NativeSpawner } | { reason: string } {
  if (process.platform !== 'linux') return { reason: 'is for Linux only' };
  if (!existsSync(NATIVE_SPAWNER_PATH)) return { reason: `is not built (${NATIVE_SPAWNER_PATH} is missing: run npm run build:native, which needs a C compiler)` };
  try {
    const addon = createRequire(import.meta.url)(NATIVE_SPAWNER_PATH) as Addon;
    if (addon.version !== ADDON_VERSION) return { reason: `is out of date (built from an older native/spawn.c: version ${addon.version ?? 1}, not ${ADDON_VERSION}; run npm run build:native)` };
    return { spawner: new NativeSpawner(addon) };
  } catch (err) {
    return { reason: `cannot be loaded: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** The spawner for a choice: undefined means Node's spawn. PmError when `native` is asked for and cannot be had. */
export function spawnerFor(choice: SpawnChoice): NativeSpawner | undefined {
  if (choice === 'node') return undefined;
  const native = loadNativeSpawner();
  if ('spawner' in native) return native.spawner;
  if (choice === 'native') throw new PmError('E_PM_SPAWN', `spawn is native (PM_SPAWN, --spawn), but pm's native spawner ${native.reason}`, { hint: "build it (npm run build:native), or use spawn auto to fall back to Node's spawn" });
  return undefined;
}

/** How the exec driver starts processes under a choice, for the daemon's log. */
export function describeSpawner(choice: SpawnChoice): { spawn: string; reason?: string } {
  if (choice === 'node') return { spawn: 'node', reason: 'spawn: node was asked for' };
  const native = loadNativeSpawner();
  return 'spawner' in native ? { spawn: native.spawner.method } : { spawn: 'node', reason: `the native spawner ${native.reason}` };
}

/** errno number → name, the first name of each number winning (EAGAIN, not its alias EWOULDBLOCK). */
const errnoNames = new Map<number, string>();
for (const [name, number] of Object.entries(constants.errno)) if (!errnoNames.has(number)) errnoNames.set(number, name);

/** The addon throws errno as Node does (negative); the code is what describeSpawnError reads. */
function withErrorCode(err: unknown, file: string): unknown {
  if (!(err instanceof Error)) return err;
  const errno = (err as NodeJS.ErrnoException).errno;
  if (typeof errno !== 'number') return err;
  // Node's names first, as its spawn reports them; the OS's table for those libuv lacks (ENOEXEC).
  const libuvName = getSystemErrorName(errno);
  const code = libuvName.startsWith('Unknown system error') ? (errnoNames.get(-errno) ?? libuvName) : libuvName;
  const { syscall, path } = err as NodeJS.ErrnoException;
  if (syscall === 'open' && path !== undefined) {
    return Object.assign(new Error(`open ${path} ${code}`, { cause: err }), { code, errno, syscall, path, fd: (err as { fd?: number }).fd });
  }
  return Object.assign(new Error(`spawn ${file} ${code}`, { cause: err }), { code, errno, syscall, path: file });
}

/** The spawner could not open a file it was asked to (a FileToOpen): nothing was started. */
export function isOpenFailure(err: unknown): err is NodeJS.ErrnoException & { path: string } {
  return err instanceof Error && (err as NodeJS.ErrnoException).syscall === 'open' && typeof (err as NodeJS.ErrnoException).path === 'string';
}
