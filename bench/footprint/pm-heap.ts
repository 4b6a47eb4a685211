// Where pm's resident memory goes, from the daemon's own /metrics (prom-client's default Node
// metrics): the V8 heap in use and reserved, memory outside it (external: Buffers and the like),
// and the heap by space. Read once, after the measurement window (the scrape allocates).
import { findDaemon } from '../../src/server/client.js';
import { cmdline } from '../daemon/proc.js';

export interface PmHeap {
  /** V8 heap: bytes in live objects, and bytes reserved for it. */
  heapUsed: number;
  heapTotal: number;
  /** Memory of C++ objects bound to JavaScript (Buffers, …): outside the V8 heap. */
  external: number;
  /** The daemon's own view of its RSS at the scrape. */
  resident: number;
  /** Used bytes per heap space (old_space, code_space, …), largest first. */
  spaces: [string, number][];
}

/** The heap of the pm daemon with this pid (found through its --state-dir's daemon.json); undefined when it cannot be read. */
export async function pmHeap(daemonPid: number): Promise<PmHeap | undefined> {
  const argv = cmdline(daemonPid) ?? [];
  const stateDir = argv[argv.indexOf('--state-dir') + 1];
  if (!argv.includes('--state-dir') || stateDir === undefined) return undefined;
  const endpoint = await findDaemon(stateDir);
  if (endpoint?.url === undefined) return undefined;
  const response = await fetch(`${endpoint.url.replace(/\/$/, '')}/metrics`, { signal: AbortSignal.timeout(30_000) });
  if (!response.ok) return undefined;
  const text = await response.text();
  const value = (name: string): number => Number(new RegExp(`^pm_daemon_${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN);
  const spaces = [...text.matchAll(/^pm_daemon_nodejs_heap_space_size_used_bytes\{space="([^"]+)"\} (\S+)/gm)].map(([, space, bytes]) => [space, Number(bytes)] as [string, number]);
  return {
    heapUsed: value('nodejs_heap_size_used_bytes'),
    heapTotal: value('nodejs_heap_size_total_bytes'),
    external: value('nodejs_external_memory_bytes'),
    resident: value('process_resident_memory_bytes'),
    spaces: spaces.sort((a, b) => b[1] - a[1]),
  };
}
