import { loadDesiredSetWithFiles } from '../../manifest/index.js';
import { plan } from '../../plan/planner.js';
import { ExitCode, UsageError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { listOption, parallelOption, pruneScopeOptions, stringOption, type Command } from '../command.js';
import { observeAll, openState } from '../state.js';
import { renderPlan } from '../output/plan-render.js';
import { runPlan } from '../run-plan.js';
import { awaitConvergence, daemonClient, type Expectation } from '../via-daemon.js';
import type { ApplyRequest } from '../../daemon/api.js';
import type { DaemonClient } from '../../server/client.js';
import type { Cli } from '../command.js';

export const applyCommand: Command = {
  name: 'apply',
  summary: 'Make what runs match the manifests.',
  usage: 'pm apply -f PATH [--dry-run] [--prune [-l SELECTOR]] [--timeout DURATION] [--parallel N]',
  description: [
    'Validates the whole set (nothing is touched if any manifest is invalid), plans the minimal actions,',
    'prints them with their reasons, then carries them out: stops in reverse dependency order, then',
    'starts in dependency order, each start waiting for its dependencies to be started, ready or',
    'completed as declared. Waits until every started process is ready (or, for one-shot jobs,',
    'completed), and fails naming what did not get there and why.',
    '',
    'Pruning: without --prune nothing is ever deleted; processes no manifest declares are listed as',
    'kept. With --prune, pm deletes only processes it manages that were applied from under the same',
    '-f paths (and match -l, when given); processes applied from elsewhere are never pruned.',
    '',
    'While a pm daemon runs on the state directory, the set is sent to it (it holds the lock) and pm',
    'apply waits for the daemon to converge it; manifests the daemon watches are changed in its folder.',
    '',
    'Exit codes: 0 converged, 1 an action failed or timed out, 2 invalid manifests or flags, 3 another',
    'pm command holds the state lock.',
  ].join('\n'),
  examples: [
    'pm apply -f manifests/',
    'pm apply -f manifests/ --dry-run',
    'pm apply -f manifests/ --prune --timeout 2m',
    'pm apply -f api.yaml -f worker.yaml --parallel 4',
  ],
  options: {
    filename: { type: 'string', short: 'f', multiple: true },
    'dry-run': { type: 'boolean' },
    prune: { type: 'boolean' },
    selector: { type: 'string', short: 'l' },
    timeout: { type: 'string' },
    parallel: { type: 'string' },
  },
  interruptible: true,
  optionHelp: [
    ['-f, --filename PATH', 'manifest file, folder, or - for stdin (repeatable)'],
    ['--dry-run', 'print the plan and stop'],
    ['--prune', 'delete managed processes these paths no longer declare'],
    ['-l, --selector K=V', 'with --prune: only prune processes with these labels'],
    ['--timeout DURATION', 'how long to wait for convergence (default 5m)'],
    ['--parallel N', 'most actions of a wave at once (default 32)'],
  ],
  async run(values, _positionals, cli) {
    const paths = listOption(values, 'filename');
    if (paths.length === 0) throw new UsageError('pm apply needs -f PATH', 'e.g. pm apply -f manifests/');
    const { prune, selector } = pruneScopeOptions(values, paths);
    const timeoutMs = parseDuration(stringOption(values, 'timeout') ?? '5m', '--timeout');
    const parallel = parallelOption(values);

    const { desired, files, roots } = await loadDesiredSetWithFiles(paths, { cwd: cli.cwd, stdin: cli.stdin });
    const client = await daemonClient(cli);
    if (client) {
      const request = { files, roots, cwd: cli.cwd, prune, ...(selector && { pruneSelector: selector }), dryRun: values['dry-run'] === true };
      return applyThroughDaemon(client, request, cli, timeoutMs);
    }
    const state = await openState(cli);
    if (values['dry-run'] === true) {
      const records = await state.store.listRecords();
      const observed = await observeAll(state.driver, records);
      const result = plan({ desired, observed, records, now: Date.now(), prune, pruneSelector: selector });
      cli.stdout.write(renderPlan(result, cli.style));
      cli.stdout.write('(dry run: nothing was changed)\n');
      return ExitCode.ok;
    }
    const lock = await state.store.lock('apply');
    try {
      const records = await state.store.listRecords();
      const observed = await observeAll(state.driver, records);
      const result = plan({ desired, observed, records, now: Date.now(), prune, pruneSelector: selector });
      return await runPlan(cli, state, { command: 'apply', plan: result, desired, records, observed, parallel, timeoutMs, showPlan: true });
    } finally {
      await lock.release();
    }
  },
};

async function applyThroughDaemon(client: DaemonClient, request: ApplyRequest, cli: Cli, timeoutMs: number): Promise<number> {
  const since = Date.now();
  const response = await client.apply(request, { signal: cli.signal });
  for (const action of response.actions) cli.stdout.write(`${action.kind} ${action.name}: ${action.reason}\n`);
  if (response.actions.length === 0) cli.stdout.write('nothing to do: everything is as declared\n');
  if (request.dryRun) {
    cli.stdout.write('(dry run: nothing was changed)\n');
    return ExitCode.ok;
  }
  const expected = new Map<string, Expectation>();
  for (const action of response.actions) {
    if (action.kind === 'start' || action.kind === 'restart') expected.set(action.name, { kind: 'started', since });
    else if (action.kind === 'delete') expected.set(action.name, { kind: 'gone' });
  }
  const failures = await awaitConvergence(client, expected, { timeoutMs, signal: cli.signal, out: cli.stdout });
  for (const failure of failures) cli.stderr.write(`${cli.errStyle.red('failed')}: ${failure}\n`);
  return failures.length === 0 ? ExitCode.ok : ExitCode.failed;
}
