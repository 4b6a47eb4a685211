// How long a spawn blocks the event loop as the spawning Node process grows: libuv forks the whole
// process (page tables of every anonymous page) and waits for the child's exec; pm's native
// spawner (native/spawn.c, when built) uses posix_spawn, which copies nothing, from libuv's thread
// pool, so the loop is held only while the call copies its arguments. Used for the "spawn cost"
// figures of docs/benchmarks.md and docs/daemon.md.
//
//   node bench/spawn-cost.mjs [BALLAST_MB ...]     (default: 0 30 60 120; one process per size)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const TRIALS = 200;
const sizes = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [0, 30, 60, 120];
if (process.env.SPAWN_COST_BALLAST === undefined) {
  // One fresh process per size, so one size's ballast cannot weigh on the next.
  for (const mb of sizes) {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname], { env: { ...process.env, SPAWN_COST_BALLAST: String(mb) }, stdio: 'inherit' });
    await new Promise((resolve) => child.once('exit', resolve));
  }
} else {
  const mb = Number(process.env.SPAWN_COST_BALLAST);
  // Touched memory outside the V8 heap: anonymous pages, as a large heap would be.
  const ballast = Array.from({ length: mb }, () => Buffer.alloc(1 << 20, 1));
  const rss = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0).padStart(4);
  const report = (label, ms) => console.log(`ballast ${String(mb).padStart(4)} MiB  rss ${rss()} MiB  ${label.padEnd(11)} ${ms.toFixed(2)} ms per spawn (${TRIALS} spawns, the event loop blocked)  [${ballast.length}]`);
  let began = process.hrtime.bigint();
  for (let i = 0; i < TRIALS; i++) spawn('/bin/true', [], { detached: true, stdio: 'ignore' }).unref();
  report('node', Number(process.hrtime.bigint() - began) / 1e6 / TRIALS);
  const addonPath = new URL('../native/build/pm_spawn.node', import.meta.url).pathname;
  if (existsSync(addonPath)) {
    const addon = createRequire(import.meta.url)(addonPath);
    // As the exec driver calls it: own session, /dev/null for 0-2, exits watched (and reaped) by
    // pidfd. One at a time: the loop is held for the call; the spawn's own time is the wait after it.
    let held = 0n;
    began = process.hrtime.bigint();
    for (let i = 0; i < TRIALS; i++) {
      const call = process.hrtime.bigint();
      const started = addon.spawn('/bin/true', ['/bin/true'], [], null, [], () => undefined);
      held += process.hrtime.bigint() - call;
      addon.unref((await started).handle);
    }
    const total = Number(process.hrtime.bigint() - began) / 1e6 / TRIALS;
    console.log(`ballast ${String(mb).padStart(4)} MiB  rss ${rss()} MiB  posix_spawn ${(Number(held) / 1e6 / TRIALS).toFixed(2)} ms per spawn (${TRIALS} spawns, the event loop blocked; ${total.toFixed(2)} ms from the call to the child running)  [${ballast.length}]`);
  } else {
    console.log(`(the native spawner is not built: ${addonPath})`);
  }
}
