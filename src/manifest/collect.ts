// Finds and reads the sources behind -f arguments: a file, a directory (recursively, .yaml and .yml
// sorted by path), or `-` for stdin. Problems (missing path, unreadable file, a directory without
// manifests) become issues, so one run reports all of them.
import { readFileSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ManifestIssue } from '../errors.js';
import type { SourceFile } from './parse.js';

export interface CollectOptions {
  /** Absolute directory that relative arguments and displayed paths are relative to. */
  cwd: string;
  /** Called only when an argument is `-` (touching process.stdin has side effects). */
  stdin: () => NodeJS.ReadableStream;
}

export interface Collected {
  /** The arguments resolved to absolute paths (`-` for stdin), without repeats. */
  roots: string[];
  /** Each argument as displayed in issues, by root index. */
  rootDisplays: string[];
  sources: SourceFile[];
  issues: ManifestIssue[];
}

/** Files a directory contributes: YAML by extension, hidden entries (.git, editor files) skipped. */
export function isManifestFileName(name: string): boolean {
  return !name.startsWith('.') && (name.endsWith('.yaml') || name.endsWith('.yml'));
}

const READ_BATCH = 256;

export async function collectSources(args: readonly string[], options: CollectOptions): Promise<Collected> {
  const { cwd } = options;
  const roots: string[] = [];
  const rootDisplays: string[] = [];
  const issues: ManifestIssue[] = [];
  const pending: Omit<SourceFile, 'text'>[] = [];
  const seenFiles = new Set<string>();
  let stdinText: Promise<string> | undefined;

  for (const arg of args) {
    const absolute = arg === '-' ? '-' : path.resolve(cwd, arg);
    if (roots.includes(absolute)) continue;
    const root = roots.length;
    roots.push(absolute);
    const display = arg === '-' ? '-' : displayPath(cwd, arg, '');
    rootDisplays.push(display);
    if (arg === '-') {
      stdinText = readStream(options.stdin());
      stdinText.catch(() => undefined); // reported when awaited below
      pending.push({ display: '-', path: '-', dir: cwd, root });
      continue;
    }
    const fileIssue = (code: string, message: string, hint: string): void => {
      issues.push({ code, file: display, line: 1, col: 1, message, hint });
    };
    const info = await stat(absolute).catch((error: NodeJS.ErrnoException) => error);
    if (info instanceof Error) {
      if (info.code === 'ENOENT' || info.code === 'ENOTDIR') {
        fileIssue('source.not-found', `no such file or directory: ${display}`, 'check the path given to -f');
      } else {
        fileIssue('source.unreadable', `cannot read ${display}: ${info.message}`, 'check the path and its permissions');
      }
      continue;
    }
    const issuesBefore = issues.length;
    const files = info.isDirectory()
      ? await findManifestFiles(absolute, (relative, error) => {
          const file = displayPath(cwd, arg, relative);
          issues.push({ code: 'source.unreadable', file, line: 1, col: 1, message: `cannot read ${file}: ${error.message}`, hint: 'check the path and its permissions' });
        })
      : [''];
    if (files.length === 0) {
      if (issues.length === issuesBefore) fileIssue('source.empty', `no manifests found in ${display}`, 'add .yaml or .yml files, or point -f at another directory');
      continue;
    }
    // Below a root that is not an ancestor of cwd, every name is the root's name joined with the rest.
    const cwdInside = cwd !== absolute && isUnder(cwd, absolute);
    const fileDisplay = (relative: string): string =>
      relative === '' ? display : cwdInside ? displayPath(cwd, arg, relative) : path.join(display, relative);
    for (const relative of files) {
      const file = relative === '' ? absolute : path.join(absolute, relative);
      if (seenFiles.has(file)) continue;
      seenFiles.add(file);
      pending.push({ display: fileDisplay(relative), path: file, dir: path.dirname(file), root });
    }
  }

  const sources: SourceFile[] = [];
  for (let start = 0; start < pending.length; start += READ_BATCH) {
    // Small files read fastest synchronously (the thread pool costs more than the read); yielding
    // between batches keeps a daemon's timers and probes running during a large reload.
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    for (const source of pending.slice(start, start + READ_BATCH)) {
      try {
        const text = source.path === '-' ? await (stdinText as Promise<string>) : readFileSync(source.path, 'utf8');
        sources.push({ ...source, text });
      } catch (error) {
        issues.push({
          code: 'source.unreadable',
          file: source.display,
          line: 1,
          col: 1,
          message: `cannot read ${source.display}: ${(error as Error).message}`,
          hint: 'check the path and its permissions',
        });
      }
    }
  }
  return { roots, rootDisplays, sources, issues };
}

/** The argument joined with the path below it; relative to cwd when under it. */
function displayPath(cwd: string, arg: string, relative: string): string {
  const absolute = path.resolve(cwd, arg, relative);
  if (absolute === cwd) return '.';
  if (isUnder(absolute, cwd)) return path.relative(cwd, absolute);
  return path.join(arg, relative);
}

/** Whether `child` is `parent` or below it (both absolute and normalized). */
function isUnder(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith(path.sep) ? parent : parent + path.sep);
}

/** Paths (relative to `dir`) of the manifest files below it, sorted; symlink loops are walked once. */
async function findManifestFiles(dir: string, onError: (relative: string, error: Error) => void): Promise<string[]> {
  const found: string[] = [];
  const visited = new Set<string>();
  const queue = [''];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const absolute = path.join(dir, next);
    let entries;
    try {
      const real = await realpath(absolute);
      if (visited.has(real)) continue;
      visited.add(real);
      entries = await readdir(absolute, { withFileTypes: true });
    } catch (error) {
      onError(next, error as Error);
      continue;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const relative = path.join(next, entry.name);
      let isDirectory = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await stat(path.join(dir, relative)).catch(() => undefined);
        isDirectory = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDirectory) queue.push(relative);
      else if (isFile && isManifestFileName(entry.name)) found.push(relative);
    }
  }
  return found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
