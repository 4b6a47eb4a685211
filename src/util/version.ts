import { readFileSync } from 'node:fs';
import { packagePath } from './package-root.js';

/** pm's version, from the package.json it was installed with. */
export function pmVersion(): string {
  const pkg = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string };
  return pkg.version;
}
