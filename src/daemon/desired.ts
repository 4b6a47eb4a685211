// What the daemon keeps running is the union of two sources:
//   watched — the manifest directory it was started with (-f DIR): authoritative for every process
//             declared under it, so a manifest removed from it is a process deleted (pruned);
//   applied — everything else: sets sent by `pm apply` through the API, and processes applied by
//             a pm without a daemon (their records), remembered in applied.json so a restarted
//             daemon keeps them.
// A name may come from one source only; an apply that would take over a watched name is refused.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredProcess, DesiredSet } from '../manifest/types.js';
import type { ProcessRecord } from '../store/records.js';
import { writeFileAtomic } from '../store/atomic.js';

export class DesiredSources {
  #watched = new Map<string, DesiredProcess>();
  #applied = new Map<string, DesiredProcess>();
  /** Whether a valid set has been read from the watched roots yet. */
  #watchedLoaded = false;
  readonly #nameListeners = new Set<(names: string[]) => void>();

  constructor(
    readonly watchedRoots: readonly string[],
    private readonly file: string,
  ) {}

  static async open(stateDir: string, watchedRoots: readonly string[], records: ReadonlyMap<string, ProcessRecord>): Promise<DesiredSources> {
    const sources = new DesiredSources(watchedRoots, join(stateDir, 'applied.json'));
    const saved = await readApplied(sources.file);
    for (const record of records.values()) {
      const proc = { name: record.name, manifest: record.manifest, source: record.source };
      // Until the directory has been read, what was last applied from it stands in for it: a
      // daemon started on a broken directory must not prune what runs.
      if (sources.isWatched(record.source.file)) sources.#watched.set(record.name, proc);
      else sources.#applied.set(record.name, saved.get(record.name) ?? proc);
    }
    for (const [name, proc] of saved) if (!sources.isWatched(proc.source.file) && !sources.#watched.has(name)) sources.#applied.set(name, proc);
    return sources;
  }

  get(name: string): DesiredProcess | undefined {
    return this.#watched.get(name) ?? this.#applied.get(name);
  }

  names(): string[] {
    return [...new Set([...this.#watched.keys(), ...this.#applied.keys()])].sort();
  }

  /** The whole set, for the dependency index and whole-set checks. */
  all(): Map<string, DesiredProcess> {
    return new Map(this.names().map((n) => [n, this.get(n) as DesiredProcess]));
  }

  /** Told the new names whenever the set of declared names changes (not a manifest's content); returns the unsubscribe function. */
  onNamesChange(listener: (names: string[]) => void): () => void {
    this.#nameListeners.add(listener);
    return () => this.#nameListeners.delete(listener);
  }

  /** Runs `change`, then tells the listeners if the names differ from before it. */
  #tellingNames<T>(change: () => T): T {
    const before = this.names().join('\n');
    const result = change();
    const after = this.names();
    if (after.join('\n') !== before) for (const listener of this.#nameListeners) listener(after);
    return result;
  }

  get watchedLoaded(): boolean {
    return this.#watchedLoaded;
  }

  isWatched(file: string): boolean {
    return this.watchedRoots.some((root) => file === root || file.startsWith(root.endsWith('/') ? root : `${root}/`));
  }

  /** Replaces the watched set; returns the names whose manifest changed, appeared or went away. */
  setWatched(set: DesiredSet): { changed: string[]; conflicts: string[] } {
    const conflicts = [...set.processes.keys()].filter((n) => this.#applied.has(n));
    const next = new Map([...set.processes].filter(([n]) => !this.#applied.has(n)));
    const changed = changedNames(this.#watched, next);
    // An unchanged process keeps the manifest object it had: records and instances hold it, and a
    // new copy for every process on each edit would leave two in memory per process (1.7 KiB each
    // at 500). One that moved within its file (a comment added above it) takes its new line.
    const changedSet = new Set(changed);
    for (const [name, proc] of next) {
      const before = this.#watched.get(name);
      if (!before || changedSet.has(name)) continue;
      next.set(name, before.source.line === proc.source.line ? before : { ...proc, manifest: before.manifest });
    }
    this.#tellingNames(() => (this.#watched = next));
    this.#watchedLoaded = true;
    return { changed, conflicts };
  }

  /**
   * Names an apply may not declare: those the watched directory declares. (An apply of the watched
   * directory itself is the daemon's job: it reads it on every change.)
   */
  watchedConflicts(names: Iterable<string>): string[] {
    return [...names].filter((n) => this.#watched.has(n));
  }

  /** Replaces applied processes: `remove` are dropped, `put` added or replaced. Persists; returns what changed. */
  async apply(put: readonly DesiredProcess[], remove: readonly string[]): Promise<string[]> {
    const next = new Map(this.#applied);
    for (const name of remove) next.delete(name);
    for (const proc of put) next.set(proc.name, proc);
    const changed = changedNames(this.#applied, next);
    await writeFileAtomic(this.file, JSON.stringify([...next.values()]));
    this.#tellingNames(() => (this.#applied = next));
    return changed;
  }

  /** Applied processes whose source lies under one of `roots` (the scope of an apply --prune). */
  appliedUnder(roots: readonly string[]): DesiredProcess[] {
    const under = (file: string): boolean => roots.some((root) => file === root || (root !== '-' && file.startsWith(root.endsWith('/') ? root : `${root}/`)));
    return [...this.#applied.values()].filter((p) => under(p.source.file));
  }

  isApplied(name: string): boolean {
    return this.#applied.has(name);
  }
}

function changedNames(before: ReadonlyMap<string, DesiredProcess>, after: ReadonlyMap<string, DesiredProcess>): string[] {
  const names = new Set([...before.keys(), ...after.keys()]);
  return [...names].filter((n) => {
    const a = before.get(n);
    const b = after.get(n);
    return !a || !b || JSON.stringify(a.manifest) !== JSON.stringify(b.manifest) || a.source.file !== b.source.file;
  });
}

async function readApplied(file: string): Promise<Map<string, DesiredProcess>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  const list = JSON.parse(text) as DesiredProcess[];
  return new Map(list.map((p) => [p.name, p]));
}
