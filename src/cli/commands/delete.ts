import { loadDesiredSet } from '../../manifest/index.js';
import { planDelete } from '../../plan/planner.js';
import { ExitCode, NotFoundError, UsageError } from '../../errors.js';
import { listOption, parallelOption, type Command } from '../command.js';
import { observeAll, openState } from '../state.js';
import { runPlan } from '../run-plan.js';
import { daemonClient } from '../via-daemon.js';

export const deleteCommand: Command = {
  name: 'delete',
  summary: 'Stop processes and forget them.',
  usage: 'pm delete NAME [NAME ...] | pm delete -f PATH',
  description: [
    'Stops each process (its stop signal to the whole process group, SIGKILL after the grace period),',
    'dependents before their dependencies, and removes it from the state. Its log files are kept.',
    'With -f, deletes the processes the manifests under PATH declare. While a pm daemon runs, it does',
    'the deleting; a process declared in the folder it watches is deleted by removing its manifest.',
  ].join('\n'),
  examples: ['pm delete worker', 'pm delete -f manifests/', 'pm delete api worker'],
  options: { filename: { type: 'string', short: 'f', multiple: true }, parallel: { type: 'string' }, 'ignore-not-found': { type: 'boolean' } },
  interruptible: true,
  optionHelp: [
    ['-f, --filename PATH', 'delete what these manifests declare (repeatable)'],
    ['--ignore-not-found', 'do not fail for names pm does not manage'],
    ['--parallel N', 'most stops of a wave at once (default 32)'],
  ],
  async run(values, positionals, cli) {
    const paths = listOption(values, 'filename');
    if (paths.length === 0 && positionals.length === 0) throw new UsageError('pm delete needs NAME or -f PATH', 'e.g. pm delete worker');
    const names = new Set(positionals);
    if (paths.length > 0) {
      const set = await loadDesiredSet(paths, { cwd: cli.cwd, stdin: cli.stdin });
      for (const name of set.processes.keys()) names.add(name);
    }
    const client = await daemonClient(cli);
    if (client) {
      const known = new Set((await client.list({ signal: cli.signal })).items.map((s) => s.name));
      const missing = [...names].filter((n) => !known.has(n));
      if (missing.length > 0 && values['ignore-not-found'] !== true && paths.length === 0) throw new NotFoundError(missing[0] as string);
      const present = [...names].filter((n) => known.has(n));
      if (present.length === 0) {
        cli.stdout.write('nothing to delete\n');
        return ExitCode.ok;
      }
      const { results } = await client.delete(present, { signal: cli.signal, timeoutMs: 10 * 60_000 });
      for (const result of results) cli.stdout.write(`${result.message}\n`);
      return results.every((r) => r.changed) ? ExitCode.ok : ExitCode.failed;
    }
    const state = await openState(cli);
    const lock = await state.store.lock('delete');
    try {
      const records = await state.store.listRecords();
      const missing = [...names].filter((n) => !records.has(n));
      if (missing.length > 0 && values['ignore-not-found'] !== true && paths.length === 0) throw new NotFoundError(missing[0] as string);
      const result = planDelete([...names], records);
      if (result.actions.length === 0) {
        cli.stdout.write('nothing to delete\n');
        return ExitCode.ok;
      }
      const observed = await observeAll(state.driver, records);
      return await runPlan(cli, state, {
        command: 'delete',
        plan: result,
        desired: { processes: new Map(), roots: [] },
        records,
        observed,
        parallel: parallelOption(values),
        timeoutMs: 10 * 60_000,
        showPlan: true,
      });
    } finally {
      await lock.release();
    }
  },
};
