// Load + validate + plan for generated sets of processes with a random DAG.
// Usage: npm run bench:plan -- [--sizes 1000,2000,5000,10000] [--runs 7] [--files 100] [--write]
// Each run loads the YAML files from disk (parse, schema, semantic checks, normalization) and plans
// against an empty state (everything to start: the largest plan) and against a converged state
// where one process changed (the common case). Sizes take turns run by run, so a drift of the
// host's load falls on all of them alike. Prints medians and the exponent b of a least-squares fit
// of time = a × n^b over every size (linear: b = 1), which two sizes alone cannot settle: their
// ratio swings with the smaller size's noise. --write also puts them into docs/benchmarks.md
// between the <!-- bench:plan --> markers.
import { execSpecOf } from '../src/manifest/runtime.js';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadDesiredSet } from '../src/manifest/index.js';
import { plan } from '../src/plan/planner.js';
import type { Observation } from '../src/drivers/driver.js';
import type { ProcessRecord } from '../src/store/records.js';
import { describeMachine, loadAverage, writeBlock } from './daemon/report.js';

const { values } = parseArgs({
  options: { sizes: { type: 'string', default: '1000,2000,5000,10000' }, runs: { type: 'string', default: '7' }, files: { type: 'string', default: '100' }, write: { type: 'boolean', default: false } },
});
/** Every line printed, for --write. */
const printed: string[] = [];
function say(line: string): void {
  console.log(line);
  printed.push(line);
}
const sizes = values.sizes.split(',').map(Number);
const runs = Number(values.runs);
const fileCount = Number(values.files);

/** Mulberry32: a seeded generator, so every run benchmarks the same graph. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function manifestYaml(i: number, deps: number[]): string {
  const dependsOn = deps.length === 0 ? '' : `  dependsOn:\n${deps.map((d) => `    - name: p${d}\n      condition: ready\n`).join('')}`;
  return `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: p${i}
  labels: {bench: "true", shard: "s${i % 10}"}
spec:
  exec:
    command: [node, server.js, --id, "${i}"]
    env: {PORT: ${20000 + i}, MODE: bench}
  ports: [{name: http, port: ${20000 + (i % 40000)}}]
${dependsOn}  probes:
    readiness:
      http: {port: http, path: /ready}
      periodSeconds: 1
`;
}

async function generate(dir: string, n: number): Promise<void> {
  const next = random(42 + n);
  const docs: string[][] = Array.from({ length: fileCount }, () => []);
  for (let i = 0; i < n; i++) {
    // Edges only point to lower indices: a DAG by construction, 0-3 dependencies each.
    const deps = new Set<number>();
    const count = i === 0 ? 0 : Math.floor(next() * 4);
    for (let k = 0; k < count; k++) deps.add(Math.floor(next() * i));
    docs[i % fileCount]?.push(manifestYaml(i, [...deps]));
  }
  await mkdir(dir, { recursive: true });
  await Promise.all(docs.map((d, f) => writeFile(join(dir, `shard-${f}.yaml`), d.join('---\n'))));
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

/** Least squares of log y against log x: y ≈ a × x^exponent, and how much of log y's variance the line explains. */
function powerFit(points: [number, number][]): { exponent: number; r2: number } {
  const xs = points.map(([x]) => Math.log(x));
  const ys = points.map(([, y]) => Math.log(y));
  const mean = (v: number[]): number => v.reduce((sum, x) => sum + x, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  const exponent = sxy / sxx;
  return { exponent, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy) };
}

const root = await mkdtemp(join(tmpdir(), 'pm-bench-plan-'));
try {
  say(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown cpu'}, node ${process.version}; ${runs} runs per size, ${fileCount} files`);
  say('processes   load+validate ms   plan (all new) ms   plan (one changed) ms   total ms   total µs/process');
  const samples = new Map(sizes.map((n) => [n, { load: [] as number[], planNew: [] as number[], planOne: [] as number[] }]));
  for (const n of sizes) await generate(join(root, String(n)), n);
  for (let r = 0; r < runs + 1; r++) {
    for (const n of sizes) {
      const t0 = performance.now();
      const desired = await loadDesiredSet([join(root, String(n))]);
      const t1 = performance.now();
      plan({ desired, observed: new Map(), records: new Map(), now: 0 });
      const t2 = performance.now();
      const records = new Map<string, ProcessRecord>();
      const observed = new Map<string, Observation>();
      for (const p of desired.processes.values()) {
        records.set(p.name, { name: p.name, manifest: p.manifest, source: p.source, appliedAt: '', handle: { driver: 'exec', pid: 1, pgid: 1, startTime: '1', bootId: 'b' }, startedAt: '', starts: 1 });
        observed.set(p.name, { state: 'running', pid: 1 });
      }
      const changed = records.get('p0') as ProcessRecord;
      records.set('p0', { ...changed, manifest: { ...changed.manifest, spec: { ...changed.manifest.spec, exec: { ...execSpecOf(changed.manifest), command: ['node', 'old.js'] } } } });
      const t3 = performance.now();
      plan({ desired, observed, records, now: 0 });
      const t4 = performance.now();
      if (r === 0) continue; // warm-up
      const into = samples.get(n) as { load: number[]; planNew: number[]; planOne: number[] };
      into.load.push(t1 - t0);
      into.planNew.push(t2 - t1);
      into.planOne.push(t4 - t3);
    }
  }
  const results: { n: number; total: number }[] = [];
  for (const [n, { load, planNew, planOne }] of samples) {
    const total = median(load) + median(planNew);
    results.push({ n, total });
    say(
      `${String(n).padStart(9)}   ${median(load).toFixed(1).padStart(16)}   ${median(planNew).toFixed(1).padStart(17)}   ${median(planOne).toFixed(1).padStart(21)}   ${total.toFixed(1).padStart(8)}   ${((total * 1000) / n).toFixed(1).padStart(16)}`,
    );
  }
  if (results.length >= 2) {
    const [a, b] = [results[0], results[results.length - 1]] as [{ n: number; total: number }, { n: number; total: number }];
    say(`scaling: ${b.n / a.n}× the processes took ${(b.total / a.total).toFixed(1)}× the time (linear would be ${b.n / a.n}×)`);
  }
  if (results.length >= 3) {
    const fit = powerFit(results.map((r) => [r.n, r.total]));
    say(`fit over ${results.length} sizes: time ∝ n^${fit.exponent.toFixed(2)} (least squares on log time against log n; 1.00 is linear; r² ${fit.r2.toFixed(3)})`);
  }

  // The same work as a user meets it: a fresh `pm diff` process (Node start-up, module loading and
  // the validator's compilation included) against an empty state directory.
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  say('\ncold CLI: `pm diff -f DIR` in a new process, empty state (npm run build first)');
  say('processes   median ms   min-max ms');
  for (const n of sizes) {
    const times: number[] = [];
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      const result = spawnSync(process.execPath, [cli, 'diff', '-f', join(root, String(n)), '--state-dir', join(root, `state-${n}`)], { encoding: 'utf8', maxBuffer: 1 << 30 }); // the plan of 20,000 is more than the default 1 MiB of output
      times.push(performance.now() - t0);
      if (result.status !== 1) throw new Error(`pm diff exited ${result.status ?? result.signal}: ${result.error?.message ?? result.stderr}`);
    }
    say(`${String(n).padStart(9)}   ${median(times).toFixed(0).padStart(9)}   ${Math.min(...times).toFixed(0)}-${Math.max(...times).toFixed(0)}`);
  }
  if (values.write) {
    const machine = describeMachine();
    const command = `npm run bench:plan -- ${process.argv.slice(2).join(' ')}`.trim();
    const block = [`### Run of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, '', `\`${command}\`; ${machine.cpu}; ${machine.os}; load average ${loadAverage()} at the end.`, '', '```', ...printed, '```'].join('\n');
    await writeBlock(fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url)), block, { begin: '<!-- bench:plan -->', end: '<!-- /bench:plan -->' });
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
