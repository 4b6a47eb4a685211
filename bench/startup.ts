// How long pm takes to start: a command that does nothing (`pm --version`), one that loads the
// bundled manifests (`pm validate -f manifests/`), and the daemon until it logs "pm daemon running"
// (an empty folder: its own start-up, no process). Each CLI given is run in turn, runs alternated,
// so that a slower moment of the machine falls on all of them alike; medians and min–max, and each
// CLI's median against the first's.
//
//   npm run build && npm run bench:startup -- [--runs N (20)] [--pm-cli PATH[,PATH...] (dist/cli/main.js)]
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './coldstart/analysis.js';
import { PM_NODE_FLAGS } from './daemon/managers/pm.js';
import { formatMs } from './daemon/stats.js';
import { startBenchRun } from './run.js';

const DEFAULT_CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const MANIFESTS = fileURLToPath(new URL('../manifests', import.meta.url));
const TIMEOUT_MS = 30_000;

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'pm-cli': { type: 'string' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`--runs ${values.runs}: a whole number of at least 1`);
const clis = (values['pm-cli'] ?? DEFAULT_CLI).split(',');

interface Case {
  label: string;
  args: (dir: string) => string[];
  /** The output that ends the measurement (the child is then sent SIGTERM); undefined: the exit. */
  until?: string;
}

const CASES: readonly Case[] = [
  { label: '`pm --version`', args: () => ['--version'] },
  { label: '`pm validate -f manifests/`', args: () => ['validate', '-f', MANIFESTS] },
  { label: '`pm daemon` on an empty folder, until it logs "pm daemon running"', args: (dir) => ['daemon', '-f', join(dir, 'empty'), '--state-dir', join(dir, 'state'), '--listen', '127.0.0.1:0'], until: '"msg":"pm daemon running"' },
];

/** ms from the spawn to the exit (or to `until` in its output); rejects on a failure or a timeout. */
function timeOnce(cli: string, args: string[], until: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const begin = process.hrtime.bigint();
    const child = spawn(process.execPath, [...PM_NODE_FLAGS, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PM_'))) });
    let output = '';
    let ended: number | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (until !== undefined && ended === undefined && output.includes(until)) {
        ended = Number(process.hrtime.bigint() - begin) / 1e6;
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const exitedAt = Number(process.hrtime.bigint() - begin) / 1e6;
      if (until !== undefined) return ended === undefined ? reject(new Error(`no "${until}" from pm ${args.join(' ')} (${code ?? signal}):\n${output}`)) : resolve(ended);
      if (code !== 0) return reject(new Error(`pm ${args.join(' ')} exited ${code ?? signal}:\n${output}`));
      resolve(exitedAt);
    });
  });
}

const run = await startBenchRun('startup');
try {
  const times = CASES.map(() => clis.map((): number[] => []));
  for (let i = 0; i < runs; i++) {
    for (const [c, testCase] of CASES.entries()) {
      for (const [k, cli] of clis.entries()) {
        const dir = join(run.root, `run-${i}-${c}-${k}`);
        await mkdir(join(dir, 'empty'), { recursive: true });
        times[c]?.[k]?.push(await timeOnce(cli, testCase.args(dir), testCase.until));
      }
    }
    run.progress(`run ${i + 1} of ${runs} done`);
  }
  const lines = [
    `${run.command} — ${runs} runs of each, alternated; ${run.machine.cores} × ${run.machine.cpu}, ${run.machine.os}, Node ${run.machine.node}, ${run.machine.commit}; load at start ${run.loadAtStart}`,
    '',
    `| command | ${clis.map((cli) => `${cli}: median (min–max)`).join(' | ')}${clis.length > 1 ? ' | median ÷ first' : ''} |`,
    `| --- | ${clis.map(() => '---:').join(' | ')}${clis.length > 1 ? ' | ---:' : ''} |`,
  ];
  for (const [c, testCase] of CASES.entries()) {
    const cells = clis.map((_, k) => {
      const t = times[c]?.[k] ?? [];
      return `${formatMs(median(t))} (${formatMs(Math.min(...t))}–${formatMs(Math.max(...t))})`;
    });
    const first = median(times[c]?.[0] ?? []);
    const ratios = clis.length > 1 ? ` | ${clis.slice(1).map((_, k) => (median(times[c]?.[k + 1] ?? []) / first).toFixed(2)).join(', ')}` : '';
    lines.push(`| ${testCase.label} | ${cells.join(' | ')}${ratios} |`);
  }
  console.log(lines.join('\n'));
  await run.exit(0);
} catch (error) {
  await run.exit(run.fail(error));
}
