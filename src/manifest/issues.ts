// Small helpers to build, order and de-duplicate ManifestIssues.
import type { ManifestIssue } from '../errors.js';
import type { FieldPath } from './locate.js';
import type { ParsedDocument } from './parse.js';

/** An issue located at `path` in `doc` (at the key with `at: 'key'`). */
export function issueAt(
  doc: ParsedDocument,
  path: FieldPath,
  code: string,
  message: string,
  hint: string,
  at: 'value' | 'key' = 'value',
): ManifestIssue {
  const { line, col } = doc.locator.locate(path, at);
  return { code, file: doc.source.display, line, col, message, hint };
}

/** `manifests/a.yaml:3:9`, for messages that point at a second place. */
export function where(doc: ParsedDocument, path: FieldPath): string {
  const { line, col } = doc.locator.locate(path);
  return `${doc.source.display}:${line}:${col}`;
}

/**
 * Issues in reading order — files as they were loaded (`fileOrder`), then line and column — with
 * repeats at the same place with the same message dropped.
 */
export function finishIssues(issues: readonly ManifestIssue[], fileOrder: ReadonlyMap<string, number>): ManifestIssue[] {
  const seen = new Set<string>();
  const unique = issues.filter((issue) => {
    const key = `${issue.file}\u0000${issue.line}\u0000${issue.col}\u0000${issue.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const order = (file: string): number => fileOrder.get(file) ?? Number.MAX_SAFE_INTEGER;
  return unique.sort((a, b) => order(a.file) - order(b.file) || a.line - b.line || a.col - b.col);
}
