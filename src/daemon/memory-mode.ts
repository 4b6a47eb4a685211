// The daemon's memoryMode: V8 flags set as it starts. A daemon holds a few objects per supervised
// process and mostly waits; V8's optimizing compiler and its heap sizing are tuned for throughput,
// and in bench:footprint they cost a daemon about twice the memory per process (docs/benchmarks.md).
// Both flags are heuristics V8 reads as it runs (whether to optimize a hot function, how far to
// grow the heap), so setting them after start-up is safe; flags that change how V8 itself was set
// up (--jitless, --lite-mode) are not, and are left alone.
import { setFlagsFromString } from 'node:v8';
import type { PmConfig } from '../config/index.js';

export type MemoryMode = PmConfig['memoryMode'];

export const MEMORY_MODE_FLAGS: Readonly<Record<MemoryMode, readonly string[]>> = {
  lean: ['--no-opt', '--optimize-for-size'],
  fast: [],
};

/** Sets the mode's V8 flags; call before the daemon loads its modules, so they are run under them. */
export function applyMemoryMode(mode: MemoryMode): void {
  for (const flag of MEMORY_MODE_FLAGS[mode]) setFlagsFromString(flag);
}
