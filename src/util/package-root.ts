// Where pm's own files are (package.json, schemas/, native/): the nearest folder above this module
// that holds a package.json. Found by looking, not by a fixed number of `..`: this module runs from
// src/util/ under tsx and from the bundle's folder (dist/cli/) once built, at different depths.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}: pm's files are missing`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** A file of pm's package, by its path from the package's root ('schemas/process.schema.json'). */
export function packagePath(relative: string): string {
  return path.join(PACKAGE_ROOT, relative);
}
