import { loadDesiredSet } from '../../manifest/index.js';
import { plan } from '../../plan/planner.js';
import { ExitCode, UsageError } from '../../errors.js';
import { listOption, pruneScopeOptions, type Command } from '../command.js';
import { observeAll, openState } from '../state.js';
import { renderPlan } from '../output/plan-render.js';

export const diffCommand: Command = {
  name: 'diff',
  summary: 'Show what apply would do, and why.',
  usage: 'pm diff -f PATH [--prune [-l SELECTOR]]',
  description:
    'Compares the manifests with what runs now and prints the plan: each action with its reason, the\nchanged fields (a JSON Patch against the last-applied manifest), and the order of the waves.\nChanges nothing. Exit code 0 when there is nothing to do, 1 when there are changes, 2 on error.',
  examples: ['pm diff -f manifests/', 'pm diff -f manifests/ --prune', 'pm diff -f manifests/ && echo "in sync"'],
  options: {
    filename: { type: 'string', short: 'f', multiple: true },
    prune: { type: 'boolean' },
    selector: { type: 'string', short: 'l' },
  },
  optionHelp: [
    ['-f, --filename PATH', 'manifest file, folder, or - for stdin (repeatable)'],
    ['--prune', 'also show deletions of processes these paths no longer declare'],
    ['-l, --selector K=V', 'with --prune: only prune processes with these labels'],
  ],
  async run(values, _positionals, cli) {
    const paths = listOption(values, 'filename');
    if (paths.length === 0) throw new UsageError('pm diff needs -f PATH', 'e.g. pm diff -f manifests/');
    const { prune, selector } = pruneScopeOptions(values, paths);
    const desired = await loadDesiredSet(paths, { cwd: cli.cwd, stdin: cli.stdin });
    const state = await openState(cli);
    const records = await state.store.listRecords();
    const observed = await observeAll(state.driver, records);
    const result = plan({ desired, observed, records, now: Date.now(), prune, pruneSelector: selector });
    cli.stdout.write(renderPlan(result, cli.style));
    return result.actions.length === 0 ? ExitCode.ok : ExitCode.failed;
  },
};
