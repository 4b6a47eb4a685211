// The daemon's memoryMode: V8 flags set as it starts. A daemon holds a few objects per supervised
// process and mostly waits; V8's optimizing compilers and its heap sizing are tuned for throughput,
// and in bench:footprint they cost a daemon about twice the memory per process (docs/benchmarks.md).
// These flags are heuristics V8 reads as it runs (whether to optimize a hot function, how far to
// grow the heap and when to shrink it), so setting them after start-up takes effect. What V8 sizes
// at start-up does not change: the young generation's cap comes from --max-semi-space-size=1 on the
// `pm` script's #! line and in `npm start`. Flags that change how V8 itself is set up (--jitless,
// --lite-mode) would need the command line, which the `pm` script shares with every command.
import { setFlagsFromString } from 'node:v8';
import type { PmConfig } from '../config/index.js';

export type MemoryMode = PmConfig['memoryMode'];

export const MEMORY_MODE_FLAGS: Readonly<Record<MemoryMode, readonly string[]>> = {
  // --no-maglev: off by default in Node 20's V8, on in later ones; it is an optimizing compiler too.
  lean: ['--no-opt', '--no-maglev', '--optimize-for-size'],
  fast: [],
};

/** Sets the mode's V8 flags; call before the daemon loads its modules, so they are run under them. */
export function applyMemoryMode(mode: MemoryMode): void {
  for (const flag of MEMORY_MODE_FLAGS[mode]) setFlagsFromString(flag);
}
