// Every scenario of issue 6, one after the other on the same machine, each writing its section of
// docs/benchmarks.md: (a) crash → restart (bench:daemon), (b) cold start of a dependency DAG
// (bench:coldstart), (c) memory and idle CPU (bench:footprint), (d) one process reconfigured
// (bench:reconfig), (e) load + validate + plan (bench:plan). One at a time: a benchmark running
// beside another would measure both.
//
// Usage: npm run build && npm run bench:all -- [--quick] [--write] [--only a,b,c,d,e]
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SCENARIOS = {
  a: { script: 'daemon.ts', what: 'crash → restart, pm beside PM2, supervisord, systemd and Docker' },
  b: { script: 'coldstart.ts', what: 'cold start of 100 processes in a 5-level DAG gated on readiness' },
  c: { script: 'footprint.ts', what: 'resident memory and idle CPU with 10 to 1,000 processes' },
  d: { script: 'reconfig.ts', what: 'one process reconfigured: time to run with the new config, the others untouched' },
  e: { script: 'plan.ts', what: 'load + validate + plan at 1,000 and 10,000 processes' },
} as const;
type Key = keyof typeof SCENARIOS;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    only: { type: 'string', default: Object.keys(SCENARIOS).join(',') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log('npm run bench:all -- [--quick] [--write] [--only a,b,c,d,e]');
  process.exit(0);
}
const keys = values.only.split(',').map((k) => k.trim());
for (const key of keys) {
  if (!(key in SCENARIOS)) {
    console.error(`bench:all: --only takes scenario letters among ${Object.keys(SCENARIOS).join(', ')}, not ${JSON.stringify(key)}`);
    process.exit(2);
  }
}

/** Runs one bench script to its end with this Node and tsx; its output goes straight through. Ctrl-C reaches it first (same process group). */
function run(script: string, args: string[]): Promise<number> {
  const path = fileURLToPath(new URL(script, import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path, ...args], { stdio: 'inherit' });
    child.once('error', reject);
    child.once('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

const failed: string[] = [];
for (const key of keys as Key[]) {
  const { script, what } = SCENARIOS[key];
  // bench:plan has no --quick: smaller sizes stand for it.
  const args = [...(values.write ? ['--write'] : []), ...(values.quick ? (key === 'e' ? ['--sizes', '1000', '--runs', '3'] : ['--quick']) : [])];
  console.log(`\n=== (${key}) ${what}: bench/${script} ${args.join(' ')}`);
  const code = await run(script, args);
  if (code !== 0) failed.push(`(${key}) bench/${script} exited ${code}`);
}
if (failed.length > 0) {
  console.error(`\nbench:all: ${failed.length} scenario(s) failed:\n  ${failed.join('\n  ')}`);
  process.exit(1);
}
console.log(`\nbench:all: ${keys.length} scenario(s) done${values.write ? '; docs/benchmarks.md updated' : ''}`);
