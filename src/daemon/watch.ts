// Watches the daemon's manifest source — a file, or a directory recursively — and calls back once
// per settled burst of changes. The callback only says which paths moved; the daemon re-reads the
// whole source (level-based), so a spurious callback costs one re-read and a missed one costs
// correctness: every choice below errs towards calling back.
//
// Three layers:
// - one fs.watch per directory below the root, and per symlinked manifest (the "tree", see
//   folder-watch.ts), for changes inside it;
// - an fs.watch on the root's parent (the "anchor"), because the tree does not notice the root
//   itself being replaced: after `rm -rf root && mkdir root` (a `git checkout` that swaps the
//   folder) or a swapped symlink (`ln -s v2 tmp && mv -T tmp root`, Kubernetes ConfigMap-style),
//   its watches sit on the old inode. An entry event naming the root rebuilds the tree;
// - a one-second stat of the root and its parent as a backstop for what the anchor cannot see
//   (the parent itself replaced, a swapped symlink higher up, a dead watch).
// Events feed a Debouncer: one callback after debounceMs of quiet, never more than maxWaitMs late.
//
// Latency, measured on Linux (ext4, Node 20, 2 shared CPUs) with chokidar as the tree, rewriting
// an existing manifest 20 times: debounceMs 100 → callback after a median of 103 ms (range
// 102–113 ms over three runs; a temp + rename save and a deletion alike); debounceMs 50 → 53–54 ms
// median: the debounce is nearly all of it. A 350-file `git checkout` run beside the watcher gave
// one callback with 50 or 100 ms, but two to five with 20 ms.
import { watch as fsWatch, type FSWatcher as FsWatch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { FolderTree } from './folder-watch.js';
import { realClock, type Clock } from './queue.js';

/** How often the root and its parent are stat'ed in case the anchor missed their replacement. */
const ROOT_POLL_MS = 1_000;

export interface DebouncerOptions {
  /** Quiet time after the last add before the keys are flushed (trailing debounce). */
  waitMs: number;
  /** The longest a burst waits, from its first add (or its last flush): a key added every few ms is still flushed. */
  maxWaitMs: number;
  /**
   * A flush that comes sooner than this after the last add — forced by maxWaitMs, or waitMs is
   * shorter — is not final: its keys are flushed again once the last add is this old (unless new
   * adds restart the wait). Default and minimum: waitMs.
   */
  settleMs?: number;
  /** The burst's keys, deduplicated and sorted. Called from a timer. */
  onFlush: (keys: string[]) => void;
  /** Default: realClock (monotonic time, real timers). */
  clock?: Clock;
}

/** Trailing debounce with a maximum wait, over a set of keys; pure timing on an injected clock. */
export class Debouncer {
  readonly waitMs: number;
  readonly maxWaitMs: number;
  readonly settleMs: number;
  readonly #onFlush: (keys: string[]) => void;
  readonly #clock: Clock;
  readonly #keys = new Set<string>();
  /** Where maxWaitMs counts from: the burst's first add, or its last flush. */
  #burstAt = 0;
  #lastAddAt = 0;
  /** The keys were flushed since the last add; only the settle flush is left. */
  #flushed = false;
  /** One timer at a time; it may fire early (adds only move the due time later) and re-arms itself. */
  #timer: { dueAt: number; cancel: () => void } | undefined;
  #closed = false;

  constructor(options: DebouncerOptions) {
    this.waitMs = nonNegativeMs(options.waitMs, 'waitMs');
    this.maxWaitMs = nonNegativeMs(options.maxWaitMs, 'maxWaitMs');
    this.settleMs = nonNegativeMs(options.settleMs ?? this.waitMs, 'settleMs');
    if (this.maxWaitMs < this.waitMs) throw new RangeError(`maxWaitMs (${this.maxWaitMs}) must be at least waitMs (${this.waitMs})`);
    if (this.settleMs < this.waitMs) throw new RangeError(`settleMs (${this.settleMs}) must be at least waitMs (${this.waitMs})`);
    this.#onFlush = options.onFlush;
    this.#clock = options.clock ?? realClock;
  }

  /** Adds key to the current burst and restarts the quiet wait. Ignored after close(). */
  add(key: string): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#keys.size === 0) this.#burstAt = now;
    this.#keys.add(key);
    this.#lastAddAt = now;
    this.#flushed = false;
    this.#arm();
  }

  /** Keys waiting for a flush (including those flushed once and waiting to settle). */
  get pending(): number {
    return this.#keys.size;
  }

  /** Drops the pending burst and its timer; later adds are ignored. Idempotent. */
  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#keys.clear();
  }

  #dueAt(): number {
    if (this.#flushed) return this.#lastAddAt + this.settleMs;
    return Math.min(this.#lastAddAt + this.waitMs, this.#burstAt + this.maxWaitMs);
  }

  #arm(): void {
    const dueAt = this.#dueAt();
    if (this.#timer !== undefined && this.#timer.dueAt <= dueAt) return;
    this.#timer?.cancel();
    this.#timer = { dueAt, cancel: this.#clock.setTimer(() => this.#fire(), dueAt - this.#clock.now()) };
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#closed || this.#keys.size === 0) return;
    const now = this.#clock.now();
    if (now < this.#dueAt()) return this.#arm();
    const keys = [...this.#keys].sort();
    if (now < this.#lastAddAt + this.settleMs) {
      this.#flushed = true;
      this.#burstAt = now;
      this.#arm();
    } else {
      this.#keys.clear();
    }
    // State is settled first, so onFlush may add keys (a new burst) or throw.
    this.#onFlush(keys);
  }
}

export interface WatchManifestsOptions {
  /** Quiet time before the callback, in ms (the daemon's watchDebounceMs). */
  debounceMs: number;
  /** Cap on the wait while the source keeps changing; default 10 × debounceMs, at least 1 s. */
  maxWaitMs?: number;
  /** The changed paths in the burst (absolute; the root itself when it was replaced), deduplicated and sorted. */
  onChange: (paths: string[]) => void;
  /** Each path below the root as its event arrives, before the debounce (for work that can start early). */
  onEvent?: (path: string) => void;
  /** Watch errors (and a throw from onChange); without it they are dropped, except onChange's, which is rethrown. */
  onError?: (error: Error) => void;
}

export interface ManifestWatcher {
  /** Stops watching; a pending burst is dropped, no callback comes after. Idempotent: the same promise every time. */
  close(): Promise<void>;
}

/** Watches root (a file or a directory); resolves once the initial scan is done. A root that does not exist yet is watched for. */
export async function watchManifests(root: string, options: WatchManifestsOptions): Promise<ManifestWatcher> {
  return SourceWatcher.create(path.resolve(root), options);
}

class SourceWatcher implements ManifestWatcher {
  readonly #root: string;
  readonly #parent: string;
  readonly #debouncer: Debouncer;
  readonly #options: WatchManifestsOptions;
  #tree: FolderTree | undefined;
  #anchor: FsWatch | undefined;
  /** Identities of the root the tree watches and of the parent the anchor watches; undefined: missing. */
  #rootId: string | undefined;
  #parentId: string | undefined;
  /** Root checks run one at a time, in this chain; one more is queued at most. */
  #checks: Promise<void> = Promise.resolve();
  #checkQueued = false;
  /** A queued check must rebuild the tree even if the root looks the same (an inode number can be reused). */
  #forceRebuild = false;
  /** The last stat failure reported, by path: the poll would otherwise repeat it every second. */
  readonly #statErrors = new Map<string, string>();
  #poll: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  private constructor(root: string, options: WatchManifestsOptions) {
    const debounceMs = nonNegativeMs(options.debounceMs, 'debounceMs');
    const maxWaitMs = options.maxWaitMs === undefined ? Math.max(10 * debounceMs, 1_000) : nonNegativeMs(options.maxWaitMs, 'maxWaitMs');
    if (maxWaitMs < debounceMs) throw new RangeError(`maxWaitMs (${maxWaitMs}) must be at least debounceMs (${debounceMs})`);
    this.#root = root;
    this.#parent = path.dirname(root);
    this.#options = options;
    this.#debouncer = new Debouncer({
      waitMs: debounceMs,
      maxWaitMs,
      onFlush: (paths) => this.#deliver(paths),
    });
  }

  static async create(root: string, options: WatchManifestsOptions): Promise<SourceWatcher> {
    const watcher = new SourceWatcher(root, options);
    const started = watcher.#start();
    watcher.#checks = started.catch(() => undefined);
    try {
      await started;
    } catch (error) {
      await watcher.close();
      throw error;
    }
    return watcher;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #start(): Promise<void> {
    const [rootId, parentId] = await Promise.all([this.#identity(this.#root), this.#identity(this.#parent)]);
    this.#openAnchor(parentId);
    this.#rootId = rootId;
    if (rootId !== undefined) await this.#openTree();
    if (this.#closing) return;
    this.#poll = setInterval(() => this.#queueCheck(false), ROOT_POLL_MS);
    this.#poll.unref(); // the watches keep a daemon alive; the backstop alone should not
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#poll);
    this.#debouncer.close();
    this.#anchor?.close();
    this.#anchor = undefined;
    this.#tree?.close();
    this.#tree = undefined;
    await this.#checks; // a check in flight sees #closing and opens nothing more
  }

  /** The tree names manifests and directories; anything hidden below the root is not part of the source. */
  #onTreeEvent(file: string): void {
    const relative = path.relative(this.#root, file);
    if (relative !== '' && (isOutside(relative) || relative.split(path.sep).some((part) => part.startsWith('.')))) return;
    this.#debouncer.add(file);
    this.#options.onEvent?.(file);
  }

  #deliver(paths: string[]): void {
    try {
      this.#options.onChange(paths);
    } catch (error) {
      if (this.#options.onError === undefined) throw error;
      this.#options.onError(error instanceof Error ? error : new Error(String(error)));
    }
  }

  #report(error: unknown): void {
    this.#options.onError?.(error instanceof Error ? error : new Error(String(error)));
  }

  /** Watches the root and every directory below it. */
  async #openTree(): Promise<void> {
    const tree = await FolderTree.open(this.#root, { onChange: (file) => this.#onTreeEvent(file), onError: (error) => this.#report(error) });
    if (this.#closing) tree.close();
    else this.#tree = tree;
  }

  /** Watches the parent directory for entries naming the root: 'rename' is a create, delete or rename. */
  #openAnchor(parentId: string | undefined): void {
    this.#anchor?.close();
    this.#anchor = undefined;
    this.#parentId = parentId;
    if (parentId === undefined || this.#parent === this.#root) return;
    const name = path.basename(this.#root);
    try {
      const anchor = fsWatch(this.#parent, { persistent: true }, (event, entry) => {
        if (entry === null || entry === name) this.#queueCheck(event === 'rename');
      });
      anchor.on('error', (error) => {
        this.#report(error);
        anchor.close();
        if (this.#anchor !== anchor) return;
        this.#anchor = undefined;
        this.#parentId = undefined; // the poll opens it again
      });
      this.#anchor = anchor;
    } catch (error) {
      this.#parentId = undefined;
      if (!isMissing(error)) this.#report(error);
    }
  }

  #queueCheck(rebuild: boolean): void {
    if (this.#closing) return;
    if (rebuild) this.#forceRebuild = true;
    if (this.#checkQueued) return;
    this.#checkQueued = true;
    this.#checks = this.#checks
      .then(() => {
        this.#checkQueued = false;
        const force = this.#forceRebuild;
        this.#forceRebuild = false;
        return this.#checkRoot(force);
      })
      .catch((error: unknown) => this.#report(error));
  }

  /** Re-reads what the root and its parent are; rebuilds the tree and re-opens the anchor when they changed. */
  async #checkRoot(force: boolean): Promise<void> {
    if (this.#closing) return;
    const [rootId, parentId] = await Promise.all([this.#identity(this.#root), this.#identity(this.#parent)]);
    if (this.#closing) return;
    if (parentId !== this.#parentId) this.#openAnchor(parentId);
    if (!force && rootId === this.#rootId) return;
    // Replaced, removed or back: the whole source counts as changed, announced once now and once
    // more after the new tree's scan, since files written before its watches existed were not seen.
    this.#rootId = rootId;
    this.#debouncer.add(this.#root);
    this.#tree?.close();
    this.#tree = undefined;
    if (rootId === undefined || this.#closing) return;
    await this.#openTree();
    if (!this.#closing) this.#debouncer.add(this.#root);
  }

  /** What path is now (through symlinks): device, inode and birth time; undefined when missing. */
  async #identity(file: string): Promise<string | undefined> {
    try {
      const info = await stat(file);
      this.#statErrors.delete(file);
      // An inode number is reused at once by a delete-then-create; the birth time tells them apart.
      return `${info.isDirectory() ? 'dir' : 'file'}:${info.dev}:${info.ino}:${info.birthtimeMs}`;
    } catch (error) {
      const message = isMissing(error) ? undefined : (error as Error).message;
      if (message !== undefined && message !== this.#statErrors.get(file)) this.#report(error);
      if (message === undefined) this.#statErrors.delete(file);
      else this.#statErrors.set(file, message);
      return undefined;
    }
  }
}

function isOutside(relative: string): boolean {
  return relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function nonNegativeMs(value: number, field: string): number {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${field} must be a finite number of milliseconds ≥ 0, got ${value}`);
  return value;
}
