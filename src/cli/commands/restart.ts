import { plan, desiredFromRecords } from '../../plan/planner.js';
import { ExitCode, NotFoundError, UsageError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { parallelOption, stringOption, type Command } from '../command.js';
import { observeAll, openState } from '../state.js';
import { runPlan } from '../run-plan.js';
import { awaitConvergence, daemonClient, type Expectation } from '../via-daemon.js';
import { requestByFlag } from '../flag-request.js';

export const restartCommand: Command = {
  name: 'restart',
  summary: 'Restart processes by name.',
  usage: 'pm restart NAME [NAME ...] [--later] [--timeout DURATION]',
  description: [
    'Records a restart request for each NAME (like kubectl rollout restart), then honours it at once',
    "using the last-applied manifests: stop, start, wait until ready. Dependents that declare",
    '`restart: true` on a restarted dependency restart too. With --later the request is only recorded',
    'and the next pm apply honours it. While a pm daemon runs, the request goes to it (a process with',
    'restartPolicy.strategy script runs its restart script instead) and pm restart waits for it.',
    'With a database configured (databaseUrl), the request is a row in pm.flags, like any other',
    "system's; pm restart waits for the daemon to handle it.",
  ].join('\n'),
  examples: ['pm restart api', 'pm restart api worker --timeout 1m', 'pm restart api --later'],
  options: { later: { type: 'boolean' }, timeout: { type: 'string' }, parallel: { type: 'string' } },
  interruptible: true,
  optionHelp: [
    ['--later', 'only record the request; the next pm apply restarts it'],
    ['--timeout DURATION', 'how long to wait for the restarted processes to be ready (default 5m)'],
    ['--parallel N', 'most actions of a wave at once (default 32)'],
  ],
  async run(values, positionals, cli) {
    if (positionals.length === 0) throw new UsageError('pm restart needs the NAME of a process', 'e.g. pm restart api; pm get lists them');
    const timeoutMs = parseDuration(stringOption(values, 'timeout') ?? '5m', '--timeout');
    const parallel = parallelOption(values);
    const byFlag = await requestByFlag(cli, 'restart', positionals);
    if (byFlag) {
      if (byFlag.code !== ExitCode.ok || !byFlag.handled || values.later === true) return byFlag.code;
      const daemon = await daemonClient(cli);
      if (!daemon) return byFlag.code;
      const expected = new Map<string, Expectation>(positionals.map((n) => [n, { kind: 'restarted', since: byFlag.since }]));
      const failures = await awaitConvergence(daemon, expected, { timeoutMs, signal: cli.signal, out: cli.stdout });
      for (const failure of failures) cli.stderr.write(`${cli.errStyle.red('failed')}: ${failure}\n`);
      return failures.length === 0 ? ExitCode.ok : ExitCode.failed;
    }
    const client = await daemonClient(cli);
    if (client) {
      const since = Date.now();
      for (const name of positionals) {
        const result = await client.control('restart', name, { signal: cli.signal });
        cli.stdout.write(`${result.message}\n`);
      }
      if (values.later === true) return ExitCode.ok;
      const expected = new Map<string, Expectation>(positionals.map((n) => [n, { kind: 'restarted', since }]));
      const failures = await awaitConvergence(client, expected, { timeoutMs, signal: cli.signal, out: cli.stdout });
      for (const failure of failures) cli.stderr.write(`${cli.errStyle.red('failed')}: ${failure}\n`);
      return failures.length === 0 ? ExitCode.ok : ExitCode.failed;
    }
    const state = await openState(cli);
    const lock = await state.store.lock('restart');
    try {
      const records = await state.store.listRecords();
      for (const name of positionals) if (!records.has(name)) throw new NotFoundError(name);
      const requestedAt = new Date().toISOString();
      for (const name of positionals) {
        const record = records.get(name);
        if (!record) continue;
        const requested = { ...record, restartRequestedAt: requestedAt };
        await state.store.putRecord(requested);
        records.set(name, requested);
      }
      if (values.later === true) {
        cli.stdout.write(`restart requested for ${positionals.join(', ')}; the next pm apply honours it\n`);
        return ExitCode.ok;
      }
      const desired = desiredFromRecords(records);
      const observed = await observeAll(state.driver, records);
      const result = plan({ desired, observed, records, now: Date.now(), only: new Set(positionals) });
      return await runPlan(cli, state, { command: 'restart', plan: result, desired, records, observed, parallel, timeoutMs, showPlan: true });
    } finally {
      await lock.release();
    }
  },
};
