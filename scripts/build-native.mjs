// Builds pm's native spawner (native/spawn.c → native/build/pm_spawn.node). Runs at `npm install`
// and in `npm run build`. Plain JavaScript and no dependency, because it runs before anything else
// is installed. It calls the C compiler directly rather than node-gyp: one file, and node-gyp
// would download Node's headers, which a machine without network cannot; Node's own installation
// has them.
//
// It never fails the install: without a compiler or headers, pm starts processes with Node's spawn
// and says so in the daemon's log. Set PM_NATIVE_REQUIRED=1 to make a failed build an error.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'native', 'spawn.c');
const output = join(root, 'native', 'build', 'pm_spawn.node');
const required = process.env.PM_NATIVE_REQUIRED === '1';

function skip(reason) {
  const message = `pm: the native spawner was not built: ${reason}. pm will start processes with Node's spawn, which blocks its event loop longer per start (see docs/daemon.md). To build it: install a C compiler (Debian: apt install gcc libc6-dev), then run npm run build:native.`;
  if (required) {
    console.error(message);
    process.exit(1);
  }
  console.warn(message);
  process.exit(0);
}

if (process.platform !== 'linux') skip('it is for Linux only');

function build() {
  const headerCandidates = [
    process.env.PM_NODE_HEADERS,
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
    process.env.HOME && join(process.env.HOME, '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ].filter((dir) => typeof dir === 'string' && dir !== '');
  const headers = headerCandidates.find((dir) => existsSync(join(dir, 'node_api.h')) && existsSync(join(dir, 'uv.h')));
  if (headers === undefined) return `Node's headers (node_api.h, uv.h) are in none of ${headerCandidates.join(', ')}; set PM_NODE_HEADERS to their folder`;

  // Up to date: nothing to do (npm test builds every time).
  const built = existsSync(output) ? statSync(output).mtimeMs : 0;
  if (built >= statSync(source).mtimeMs && built >= statSync(fileURLToPath(import.meta.url)).mtimeMs) return undefined;

  const compiler = process.env.CC || 'cc';
  const partial = `${output}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(output), { recursive: true });
    // An undeclared function (glibc older than 2.34 lacks posix_spawn_file_actions_addclosefrom_np)
    // is an error here, not an addon that fails to load later.
    execFileSync(compiler, ['-std=gnu11', '-O2', '-fPIC', '-shared', '-Wall', '-Wextra', '-Werror=implicit-function-declaration', '-I', headers, '-o', partial, source], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
    // Renamed into place: a half-written addon is never loaded.
    renameSync(partial, output);
  } catch (error) {
    rmSync(partial, { force: true });
    return error.code === 'ENOENT' ? `no C compiler (${compiler}) was found` : `${error.message.split('\n')[0]}`;
  }
  console.log(`pm: built the native spawner (${output})`);
  return undefined;
}

let failure;
try {
  failure = build();
} catch (error) {
  failure = error instanceof Error ? error.message : String(error);
}
if (failure !== undefined) skip(failure);
