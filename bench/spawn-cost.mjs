// How long spawn() blocks the event loop as the spawning Node process grows: libuv forks the whole
// process (page tables of every anonymous page) and waits for the child's exec. Used for the
// "spawn cost" figures of docs/benchmarks.md.
//
//   node bench/spawn-cost.mjs [BALLAST_MB ...]     (default: 0 30 60 120; one process per size)
import { spawn } from 'node:child_process';

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
  const began = process.hrtime.bigint();
  for (let i = 0; i < TRIALS; i++) spawn('/bin/true', [], { detached: true, stdio: 'ignore' }).unref();
  const ms = Number(process.hrtime.bigint() - began) / 1e6 / TRIALS;
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(`ballast ${String(mb).padStart(4)} MiB  rss ${rss.toFixed(0).padStart(4)} MiB  ${ms.toFixed(2)} ms per spawn (${TRIALS} spawns, the event loop blocked)  [${ballast.length}]`);
}
