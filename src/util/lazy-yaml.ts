// `yaml`, loaded on first use. The manifests pm reads are almost always in the fast reader's subset
// (manifest/fast-yaml.ts), so a daemon need never load this library: about 70 modules, 50 ms of
// start-up and 4 MiB resident (bench:footprint). Synchronous, for the synchronous parsers that
// fall back to it: yaml ships CommonJS, and require gives the instance an import would.
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

const require = createRequire(import.meta.url);
let loaded: typeof Yaml | undefined;

export function yaml(): typeof Yaml {
  return (loaded ??= require('yaml') as typeof Yaml);
}
