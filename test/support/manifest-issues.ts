// Shared by the manifest tests: load a set and get the issues it was rejected with, and build the
// small manifests they are written against.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { ManifestError, type ManifestIssue } from '../../src/errors.js';
import { loadDesiredSet, type LoadOptions } from '../../src/manifest/index.js';

/** The issues `loadDesiredSet` rejects the set with; fails the test when it accepts it. */
export async function loadIssues(paths: string[], options: LoadOptions): Promise<ManifestIssue[]> {
  try {
    await loadDesiredSet(paths, options);
  } catch (error) {
    assert.ok(error instanceof ManifestError, String(error));
    return [...error.issues];
  }
  return assert.fail('expected a ManifestError');
}

/** Writes `files` under a fresh <tmp>/manifests (removed after the test) and loads it with cwd = <tmp>. */
export async function issuesOfFiles(t: TestContext, files: Record<string, string>): Promise<ManifestIssue[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pm-manifests-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(path.join(dir, 'manifests'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, 'manifests', name), text);
  return loadIssues(['manifests'], { cwd: dir });
}

/** `file:line:col` of an issue. */
export const at = (issue: ManifestIssue | undefined): string => `${issue?.file}:${issue?.line}:${issue?.col}`;

export function only(issues: ManifestIssue[]): ManifestIssue {
  assert.equal(issues.length, 1, JSON.stringify(issues, null, 2));
  return issues[0] as ManifestIssue;
}

/** A manifest whose lines 1-7 are fixed; `more` starts at line 8 (inside spec). */
export const proc = (name: string, more = ''): string => `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: ${name}
spec:
  exec:
    command: [sleep, "1000"]
${more}`;
