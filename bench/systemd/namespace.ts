// The systemd side of bench/systemd.ts: a unit's properties as systemd reports them (its monotonic
// timestamps are CLOCK_MONOTONIC in µs, the clock of process.hrtime.bigint(), so they need no
// mapping), the host pid of a unit's main process (MainPID is namespace-relative), the systemctl
// calls pm makes timed one by one, and the removal of empty unit cgroups left by a run cut short.
import { readFileSync, rmdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SystemdNamespace } from '../../test/support/systemd.js';
import { ANCHOR_TARGET } from '../../src/drivers/systemd/anchor.js';
import { Systemctl } from '../../src/drivers/systemd/index.js';
import { cmdline, runCommand } from '../daemon/proc.js';

/** `systemctl show -p …` of one unit, as Key → value. */
export async function showUnit(sd: SystemdNamespace, unit: string, properties: readonly string[]): Promise<Map<string, string>> {
  const stdout = await sd.execOk(['systemctl', 'show', '-p', properties.join(','), unit]);
  return new Map(stdout.split('\n').flatMap((line) => (line.includes('=') ? [[line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)] as [string, string]] : [])));
}

/** A `…TimestampMonotonic` value (µs) on the bench's hrtime scale (ns); undefined when unset (0). */
export function monotonicNs(value: string | undefined): bigint | undefined {
  if (value === undefined || !/^\d+$/.test(value) || value === '0') return undefined;
  return BigInt(value) * 1000n;
}

/**
 * The host pid of systemd's child whose pid in the namespace is `nsPid`, checked to run `program`
 * (every unit's main process is forked by systemd, PID 1 inside). Throws when there is none.
 */
export function hostPidOf(sd: SystemdNamespace, nsPid: number, program: string): number {
  let children: string;
  try {
    children = readFileSync(`/proc/${sd.pid}/task/${sd.pid}/children`, 'utf8');
  } catch (error) {
    throw new Error(`cannot list systemd's children: ${(error as Error).message}`, { cause: error });
  }
  for (const word of children.trim().split(' ')) {
    const pid = Number(word);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const nspid = /^NSpid:\s+(.+)$/m.exec(readOr(`/proc/${pid}/status`))?.[1]?.trim().split(/\s+/);
    if (nspid === undefined || Number(nspid[nspid.length - 1]) !== nsPid) continue;
    if (cmdline(pid)?.[0] !== program) throw new Error(`pid ${nsPid} in the namespace (${pid} here) is not the reporter: ${cmdline(pid)?.join(' ') ?? 'gone'}`);
    return pid;
  }
  throw new Error(`no child of systemd has pid ${nsPid} in the namespace`);
}

/** The first line of `systemctl --version` inside: "systemd 252 (252.38-1~deb12u1)". */
export async function systemdVersion(sd: SystemdNamespace): Promise<string> {
  return (await sd.execOk(['systemctl', '--version'])).split('\n')[0]?.trim() ?? 'systemd ?';
}

/** CPU time (user + system) of a process and of its children it has waited for, in ms (USER_HZ 100). */
export interface CpuTimes {
  own: number;
  children: number;
}

export function cpuTimes(pid: number): CpuTimes | undefined {
  const stat = readOr(`/proc/${pid}/stat`);
  if (stat === '') return undefined;
  // Fields after the command's closing parenthesis: state is field 3, utime 14 … cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const tick = (i: number): number => Number(fields[i - 3]) * 10;
  return { own: tick(14) + tick(15), children: tick(16) + tick(17) };
}

/** The calls timed in (b), in the order of a round. */
export const CALLS = ['prefix', 'show', 'reload', 'load', 'anchor', 'start'] as const;
export type Call = (typeof CALLS)[number];
export type CallTimes = Record<Call, number[]>;

/**
 * pm's systemctl calls, one at a time, through pm's own runner (src/drivers/systemd) and the
 * bench's prefix: `nsenter … true` alone; the poll's `show` of one unit; `daemon-reload`; the
 * `show` install() checks the loaded file with; `start pm.target` (already active); `start` of a
 * stopped Type=exec unit (stopped again after each round, untimed). ms, round trip included.
 */
export async function timeCalls(sd: SystemdNamespace, unit: string, rounds: number, interrupted: () => boolean): Promise<CallTimes> {
  const systemctl = new Systemctl({ prefix: sd.prefix });
  const times: CallTimes = { prefix: [], show: [], reload: [], load: [], anchor: [], start: [] };
  const timed = async (call: Call, work: () => Promise<unknown>): Promise<void> => {
    const t0 = process.hrtime.bigint();
    await work();
    times[call].push(Number(process.hrtime.bigint() - t0) / 1e6);
  };
  for (let i = 0; i < rounds; i++) {
    if (interrupted()) throw new Error('interrupted');
    await timed('prefix', async () => {
      const result = await runCommand([...sd.prefix, 'true']);
      if (result.code !== 0) throw new Error(`${sd.prefix.join(' ')} true exited ${result.code ?? result.signal}: ${result.output}`);
    });
    await timed('show', () => systemctl.showUnits([unit]));
    await timed('reload', () => systemctl.daemonReload());
    await timed('load', () => systemctl.showProperties(unit, ['Id', 'LoadState', 'LoadError', 'FragmentPath', 'DropInPaths', 'NeedDaemonReload']));
    await timed('anchor', () => systemctl.verb('start', ANCHOR_TARGET));
    await timed('start', () => systemctl.verb('start', unit));
    await sd.execOk(['systemctl', 'stop', unit]);
  }
  return times;
}

/**
 * The cgroups systemd made for `units` in the host's hierarchies (the cgroup namespace is shared)
 * are removed when it stops them; after a namespace killed with units running, empty ones stay.
 * rmdir fails on a cgroup that still has processes, so nothing live is touched.
 */
export function removeUnitCgroups(units: readonly string[]): void {
  let hierarchies: string[];
  try {
    hierarchies = ['', ...readdirSync('/sys/fs/cgroup')];
  } catch {
    return;
  }
  for (const hierarchy of hierarchies) {
    for (const unit of units) {
      try {
        rmdirSync(join('/sys/fs/cgroup', hierarchy, 'system.slice', unit));
      } catch {
        // not there, or still in use
      }
    }
  }
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
