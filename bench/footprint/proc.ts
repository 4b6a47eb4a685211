// What bench/footprint.ts reads in /proc: a process's resident memory (VmRSS; from smaps_rollup
// PSS, which splits shared pages among the processes mapping them, and USS, its private pages:
// what its exit would free), and the process table
// (pid → parent, name, argv[0]) from which a manager's long-lived processes and its children are found.
import { readdirSync, readFileSync } from 'node:fs';

export interface Memory {
  rssKiB: number;
  /** PSS and USS (Private_Clean + Private_Dirty): undefined without smaps_rollup (before Linux 4.14). */
  pssKiB: number | undefined;
  ussKiB: number | undefined;
}

/** VmRSS and PSS of one process, in KiB; undefined when it is gone. */
export function memoryOf(pid: number): Memory | undefined {
  const status = readOr(`/proc/${pid}/status`);
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (rss === undefined) return undefined;
  const rollup = readOr(`/proc/${pid}/smaps_rollup`);
  const field = (name: string): number | undefined => {
    const kib = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(rollup)?.[1];
    return kib === undefined ? undefined : Number(kib);
  };
  const [clean, dirty] = [field('Private_Clean'), field('Private_Dirty')];
  return { rssKiB: Number(rss), pssKiB: field('Pss'), ussKiB: clean === undefined || dirty === undefined ? undefined : clean + dirty };
}

export interface ProcessEntry {
  pid: number;
  ppid: number;
  /** The kernel's short name (comm), e.g. "node", "supervisord", "systemd". */
  comm: string;
}

/** Every process now, by pid (a process that exits while the table is read is left out). */
export function processTable(): Map<number, ProcessEntry> {
  const table = new Map<number, ProcessEntry>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readOr(`/proc/${name}/stat`);
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    // "PID (comm) STATE PPID …": the name may hold spaces and parentheses, hence the last ')'.
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    table.set(Number(name), { pid: Number(name), ppid, comm: stat.slice(stat.indexOf('(') + 1, close) });
  }
  return table;
}

/** `root` and every process below it, parents before their children. */
export function subtree(root: number, table: ReadonlyMap<number, ProcessEntry>): ProcessEntry[] {
  const children = new Map<number, ProcessEntry[]>();
  for (const entry of table.values()) {
    const siblings = children.get(entry.ppid);
    if (siblings) siblings.push(entry);
    else children.set(entry.ppid, [entry]);
  }
  const top = table.get(root);
  if (top === undefined) return [];
  const found: ProcessEntry[] = [top];
  for (let i = 0; i < found.length; i++) found.push(...(children.get((found[i] as ProcessEntry).pid) ?? []));
  return found;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
