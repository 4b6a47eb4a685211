// Shared by apply, delete and restart: print the plan, carry it out under the lock with progress,
// and print the outcome.
import type { DesiredSet } from '../manifest/types.js';
import type { Observation } from '../drivers/driver.js';
import type { ProcessRecord } from '../store/records.js';
import type { Plan } from '../plan/types.js';
import { execute } from '../apply/executor.js';
import { ExitCode } from '../errors.js';
import type { Cli } from './command.js';
import type { State } from './state.js';
import { renderPlan } from './output/plan-render.js';
import { makeProgress } from './output/progress.js';
import { formatTable } from './output/table.js';

export interface RunPlanInput {
  command: string;
  plan: Plan;
  desired: DesiredSet;
  records: ReadonlyMap<string, ProcessRecord>;
  observed: ReadonlyMap<string, Observation>;
  parallel: number;
  timeoutMs: number;
  /** Print the plan before acting. */
  showPlan: boolean;
}

export async function runPlan(cli: Cli, state: State, input: RunPlanInput): Promise<number> {
  const out = cli.stdout;
  if (input.showPlan) out.write(renderPlan(input.plan, cli.style));
  if (input.plan.actions.length === 0) return ExitCode.ok;
  if (input.showPlan) out.write('\n');

  const began = Date.now();
  const progress = makeProgress(out, out.isTTY === true && cli.env.TERM !== 'dumb', cli.style);
  let result;
  try {
    result = await execute(
      input.plan,
      { store: state.store, driver: state.driver, desired: input.desired, records: input.records, observed: input.observed, command: input.command, env: cli.env, now: Date.now },
      { parallel: input.parallel, timeoutMs: input.timeoutMs, signal: cli.signal, onProgress: (t) => progress.update(t) },
    );
  } finally {
    progress.finish();
  }

  const acted = input.plan.actions.filter((a) => a.kind !== 'update');
  const rows = acted.map((a) => {
    const tracker = result.trackers.get(a.name);
    const outcome = tracker ? `${tracker.state}${tracker.detail ? ` (${tracker.detail})` : ''}` : result.failures.some((f) => f.startsWith(`${a.name}:`)) ? 'failed' : 'done';
    return [a.name, a.kind, outcome];
  });
  if (rows.length > 0) out.write(`\n${formatTable(['NAME', 'ACTION', 'RESULT'], rows)}`);
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  if (result.ok) {
    out.write(`${cli.style.green(`${input.command}: done`)} in ${seconds}s\n`);
    return ExitCode.ok;
  }
  const why = result.interrupted === 'timeout' ? `did not converge within ${input.timeoutMs / 1000}s` : result.interrupted === 'signal' ? 'interrupted' : 'failed';
  cli.stderr.write(`${cli.errStyle.red(`${input.command} ${why}`)} after ${seconds}s:\n${result.failures.map((f) => `  ${f}`).join('\n')}\n`);
  if (result.interrupted) cli.stderr.write('  processes already started keep running; run the command again to continue\n');
  return result.interrupted === 'signal' ? ExitCode.interrupted : ExitCode.failed;
}
