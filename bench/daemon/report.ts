// The results as markdown: what ran where, one table per scenario, and the block of
// docs/benchmarks.md between the bench:daemon markers that --write replaces.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release } from 'node:os';
import { formatMs, summarize, type Summary } from './stats.js';

export interface Machine {
  cpu: string;
  cores: number;
  os: string;
  kernel: string;
  node: string;
  commit: string;
}

export function describeMachine(): Machine {
  const cpuinfo = readOr('/proc/cpuinfo');
  const osRelease = readOr('/etc/os-release');
  let commit = 'unknown';
  try {
    const git = (...args: string[]): string => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    // What dist/ is built from: src/ and the build config; changes elsewhere do not count.
    const dirty = git('status', '--porcelain', '--', 'src', 'scripts/build.mjs') !== '';
    commit = `commit ${git('rev-parse', '--short=7', 'HEAD')}${dirty ? ' with uncommitted changes to src/' : ''}`;
  } catch {
    // not a git checkout
  }
  return {
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown CPU',
    cores: cpus().length,
    os: /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? 'unknown OS',
    kernel: `Linux ${release()}`,
    node: process.version,
    commit,
  };
}

/** The 1-, 5- and 15-minute load averages, as printed by uptime. */
export function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

export interface Row {
  label: string;
  samples: number[];
}

export function table(rows: Row[], first = 'manager'): string {
  const lines = [`| ${first} | runs | median | p99 | min–max | mean |`, '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const row of rows) {
    const s = summarize(row.samples);
    lines.push(`| ${row.label} | ${s.runs} | ${formatMs(s.median)} | ${formatMs(s.p99)} | ${formatMs(s.min).replace(' ms', '')}–${formatMs(s.max)} | ${formatMs(s.mean)} |`);
  }
  return lines.join('\n');
}

/** "pm / PM2: 1.10× the median, 1.31× the p99". */
export function ratio(pm: Summary, peerName: string, peer: Summary): string {
  const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
  return `pm / ${peerName}: ${x(pm.median, peer.median)} the median, ${x(pm.p99, peer.p99)} the p99, ${x(pm.mean, peer.mean)} the mean`;
}

export function mib(kib: number | undefined): string {
  return kib === undefined ? 'gone' : `${(kib / 1024).toFixed(1)} MiB`;
}

export const MARKER_BEGIN = '<!-- bench:daemon -->';
export const MARKER_END = '<!-- /bench:daemon -->';

/** Puts `block` between the markers in the doc (bench:daemon's unless told), adding them at its end the first time. */
export async function writeBlock(docPath: string, block: string, markers: { begin: string; end: string } = { begin: MARKER_BEGIN, end: MARKER_END }): Promise<'replaced' | 'appended'> {
  const doc = await readFile(docPath, 'utf8');
  const begin = doc.indexOf(markers.begin);
  const end = doc.indexOf(markers.end);
  const content = `${markers.begin}\n${block.trim()}\n${markers.end}`;
  if (begin >= 0 && end > begin) {
    await writeFile(docPath, `${doc.slice(0, begin)}${content}${doc.slice(end + markers.end.length)}`);
    return 'replaced';
  }
  await writeFile(docPath, `${doc.trimEnd()}\n\n${content}\n`);
  return 'appended';
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
