// Builds dist/: pm's TypeScript bundled by esbuild into dist/cli/main.js, plus one chunk per lazy
// import (each command's code, the database, the Docker driver, ...) so that what a command does
// not use is still not loaded. npm dependencies stay in node_modules.
//
// Bundled, not compiled file by file (tsc): Node resolves, reads, compiles and links every ES
// module on its own, and a daemon loaded 106 of pm's files (34 chunks now): the bundle starts it in
// 0.85 of the time; a short command gains less (docs/daemon.md, "Start-up"). Types are checked by
// `npm run typecheck`; esbuild only strips them.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outdir: 'dist/cli',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  // Error classes take their name from the class (new.target.name): no renaming in the bundle.
  keepNames: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});
