import { readFileSync } from 'node:fs';

/** pm's version, from the package.json it was installed with. */
export function pmVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
