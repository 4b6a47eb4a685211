// Loading a desired set: collect sources → read YAML → schema (with defaults) → set-wide checks →
// normalize. The set is accepted whole or not at all: any issue anywhere throws a ManifestError
// carrying every issue found, each at file:line:col with a hint.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ManifestError, UsageError, type ManifestIssue } from '../errors.js';
import type { ManifestCache } from './cache.js';
import { collectSources } from './collect.js';
import { finishIssues } from './issues.js';
import { buildDesiredSet, normalizeManifest } from './normalize.js';
import type { Locator } from './locate.js';
import { parseSource, type ParsedDocument, type SourceFile } from './parse.js';
import { isValidManifest } from './schema-check.js';
import { checkSet, type ValidDocument } from './semantic.js';
import type { DesiredSet, ProcessManifest } from './types.js';

export type { DesiredProcess, DesiredSet, ManifestSource } from './types.js';
export { isManifestFileName } from './collect.js';
export { ManifestCache } from './cache.js';

export interface LoadOptions {
  /** Base for relative -f arguments and for the file names in issues. Default: process.cwd(). */
  cwd?: string;
  /** Read for a `-` argument. Default: process.stdin. */
  stdin?: NodeJS.ReadableStream;
  /** Files read unchanged since the last load are not parsed and checked again (the daemon's reloads). */
  cache?: ManifestCache;
}

/**
 * Reads -f arguments (file, directory recursively for .yaml/.yml sorted by path, or '-' for stdin),
 * parses every YAML document, validates the whole set. Throws ManifestError with ALL issues when
 * anything is invalid; otherwise returns the normalized set. Throws UsageError when `paths` is empty.
 */
export async function loadDesiredSet(paths: string[], options: LoadOptions = {}): Promise<DesiredSet> {
  if (paths.length === 0) throw new UsageError('no manifests given', 'pass -f with a file, a directory, or - for stdin');
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const collected = await collectSources(paths, { cwd, stdin: () => options.stdin ?? process.stdin });
  return validateCollected(collected, options.cache);
}

/** loadDesiredSet, also returning what was read: for sending the set to a daemon (loadDesiredSetFromFiles). */
export async function loadDesiredSetWithFiles(paths: string[], options: LoadOptions = {}): Promise<{ desired: DesiredSet; files: { path: string; text: string }[]; roots: string[] }> {
  if (paths.length === 0) throw new UsageError('no manifests given', 'pass -f with a file, a directory, or - for stdin');
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const collected = await collectSources(paths, { cwd, stdin: () => options.stdin ?? process.stdin });
  const desired = await validateCollected(collected, options.cache);
  return { desired, files: collected.sources.map((s) => ({ path: s.path, text: s.text })), roots: collected.roots };
}

/**
 * Files read elsewhere (sent to the daemon by `pm apply`), validated exactly as loadDesiredSet
 * would: each file belongs to the first root it lies under; paths are absolute (`-` for stdin,
 * whose relative paths resolve against `cwd`).
 */
export async function loadDesiredSetFromFiles(files: readonly { path: string; text: string }[], roots: readonly string[], cwd: string): Promise<DesiredSet> {
  const rootOf = (file: string): number => {
    const index = roots.findIndex((root) => file === root || (root !== '-' && file.startsWith(root.endsWith('/') ? root : `${root}/`)));
    if (index < 0) throw new UsageError(`${file} lies under none of the roots ${roots.join(', ')}`, 'send each file with the -f argument it was found through');
    return index;
  };
  const sources = files.map((f) => ({ display: f.path, path: f.path, dir: f.path === '-' ? cwd : path.dirname(f.path), root: rootOf(f.path), text: f.text }));
  return validateCollected({ roots: [...roots], rootDisplays: [...roots], sources, issues: [] });
}

/**
 * Everything after reading: parse, schema, set-wide checks, normalize. With a cache, files whose
 * text it has seen pass are taken from it; a set with any issue is then checked again without it,
 * because only a parse can say where an issue is.
 */
export async function validateCollected(collected: Awaited<ReturnType<typeof collectSources>>, cache?: ManifestCache): Promise<DesiredSet> {
  const issues: ManifestIssue[] = [...collected.issues];

  const documents: ParsedDocument[] = [];
  /** Documents the cache vouches for: they passed the schema when their file was last read. */
  const known = new Set<ParsedDocument>();
  const parsedWhole: { source: SourceFile; documents: ParsedDocument[] }[] = [];
  let namesComplete = collected.issues.length === 0;
  for (const source of collected.sources) {
    const cached = cache?.lookup(source);
    if (cached) {
      for (const { line, manifest } of cached) {
        const doc: ParsedDocument = { source, line, data: manifest, locator: unlocated(line) };
        known.add(doc);
        documents.push(doc);
      }
      continue;
    }
    const parsed = parseSource(source);
    // Loops, not push(...): a file may hold more documents than a call takes arguments.
    for (const doc of parsed.documents) documents.push(doc);
    for (const issue of parsed.issues) issues.push(issue);
    if (parsed.issues.length > 0) namesComplete = false;
    else if (cache) parsedWhole.push({ source, documents: parsed.documents });
  }
  const rootsWithDocuments = new Set(documents.map((doc) => doc.source.root));
  const filesWithIssues = new Set(issues.map((issue) => issue.file));
  collected.rootDisplays.forEach((display, root) => {
    const files = collected.sources.filter((source) => source.root === root);
    if (rootsWithDocuments.has(root) || files.length === 0 || files.some((file) => filesWithIssues.has(file.display))) return;
    issues.push({
      code: 'source.empty',
      file: display,
      line: 1,
      col: 1,
      message: `no manifests found in ${display}`,
      hint: 'a manifest is a YAML document with apiVersion, kind, metadata and spec',
    });
  });

  const valid: ValidDocument[] = [];
  const invalid: ParsedDocument[] = [];
  const named: { doc: ParsedDocument; name: string }[] = [];
  for (const doc of documents) {
    const name = nameOf(doc.data);
    if (name !== undefined) named.push({ doc, name });
    if (known.has(doc) || isValidManifest(doc.data)) valid.push({ doc, manifest: doc.data as ProcessManifest });
    else invalid.push(doc);
  }
  if (invalid.length > 0) {
    const { explainDocument } = await import('./schema-explain.js');
    for (const doc of invalid) for (const issue of explainDocument(doc)) issues.push(issue);
  }
  for (const issue of checkSet({ valid, named, namesComplete })) issues.push(issue);

  cache?.keepOnly(new Set(collected.sources.map((source) => source.path)));
  if (issues.length > 0) {
    if (known.size > 0) return validateCollected(collected);
    throw new ManifestError(finishIssues(issues, fileOrder(collected)));
  }
  // Cached documents were normalized when they were first read.
  const set = buildDesiredSet(valid, collected.roots, known);
  for (const { source, documents: docs } of parsedWhole) cache?.remember(source, docs.map((doc) => ({ line: doc.line, manifest: doc.data as ProcessManifest })));
  return set;
}

/**
 * Reads, parses and checks one file before the load that will read it, and notes it in the cache
 * when every document in it is valid on its own: the daemon does this for each manifest its
 * watcher names while the burst settles, so the reload after the debounce finds the files in the
 * cache and is left with the set-wide checks. `root` is the index of the -f argument the file lies
 * under. Whatever is wrong (a missing file, a YAML or schema issue) is left to that load to report.
 */
export function readAhead(file: string, root: number, cache: ManifestCache): void {
  let text: string;
  try {
    // Not blocking, and only a regular file: a FIFO named *.yaml would otherwise hold the event
    // loop until something writes to it (the load skips anything but files).
    const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      if (!fstatSync(fd).isFile()) return;
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return;
  }
  const source: SourceFile = { display: file, path: file, dir: path.dirname(file), root, text };
  if (cache.lookup(source)) return;
  const parsed = parseSource(source);
  if (parsed.issues.length > 0 || !parsed.documents.every((doc) => isValidManifest(doc.data))) return;
  cache.remember(source, parsed.documents.map((doc) => ({ line: doc.line, manifest: normalizeManifest(doc.data as ProcessManifest, source.dir) })));
}

/** The locator of a cached document: never asked, since a set with issues is checked again uncached. */
function unlocated(line: number): Locator {
  return { locate: () => ({ line, col: 1 }) };
}

function nameOf(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const metadata = (data as { metadata?: unknown }).metadata;
  if (metadata === null || typeof metadata !== 'object') return undefined;
  const name = (metadata as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** Files in the order they were given and found, for reporting issues in reading order. */
function fileOrder(collected: Awaited<ReturnType<typeof collectSources>>): Map<string, number> {
  const order = new Map<string, number>();
  const add = (file: string): void => {
    if (!order.has(file)) order.set(file, order.size);
  };
  collected.rootDisplays.forEach((display, root) => {
    add(display);
    for (const source of collected.sources) if (source.root === root) add(source.display);
  });
  return order;
}
