// One writer: while a daemon runs on a state directory it holds the lock, and commands that change
// or read live state ask it through its API instead of acting themselves.
import type { ProcessStatus } from '../daemon/api.js';
import { ExitCode, PmError } from '../errors.js';
import { DaemonClient, findDaemon } from '../server/client.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cli } from './command.js';

/** A client for the daemon running on cli.stateDir, or undefined when none runs. */
export async function daemonClient(cli: Cli): Promise<DaemonClient | undefined> {
  const endpoint = await findDaemon(cli.stateDir);
  // A daemon given its token as a value (apiToken) has no token file: the CLI takes it from PM_API_TOKEN.
  return endpoint ? DaemonClient.connect(endpoint, cli.env.PM_API_TOKEN || undefined) : undefined;
}

export async function requireDaemon(cli: Cli, command: string): Promise<DaemonClient> {
  const client = await daemonClient(cli);
  if (!client) {
    throw new PmError('E_NO_DAEMON', `pm ${command} needs a running pm daemon on ${cli.stateDir}`, {
      hint: 'start one with `pm daemon -f DIR` (or pass the --state-dir it uses)',
    });
  }
  return client;
}

/** What a command waits for, per process. */
export type Expectation =
  /** A new instance started after `since` (epoch ms) and is ready or completed. */
  | { kind: 'started'; since: number }
  /** Restarted after `since`, by stop and start or by the restart script. */
  | { kind: 'restarted'; since: number }
  | { kind: 'gone' };

const POLL_MS = 100;

/**
 * Polls the daemon until every process meets its expectation, one fails for good (Failed, or the
 * circuit breaker open), or the deadline passes. Prints each process once when it settles.
 * Returns the failures, one line each.
 */
export async function awaitConvergence(client: DaemonClient, expected: ReadonlyMap<string, Expectation>, options: { timeoutMs: number; signal: AbortSignal; out: NodeJS.WritableStream }): Promise<string[]> {
  try {
    return await poll(client, expected, options);
  } catch (error) {
    if (!options.signal.aborted) throw error;
    // Ctrl-C: stop waiting; what the daemon does goes on without us.
    throw new PmError('E_INTERRUPTED', 'interrupted: stopped waiting; the daemon carries on with what was asked', {
      hint: 'pm get shows where things stand',
      exitCode: ExitCode.interrupted,
    });
  }
}

async function poll(client: DaemonClient, expected: ReadonlyMap<string, Expectation>, options: { timeoutMs: number; signal: AbortSignal; out: NodeJS.WritableStream }): Promise<string[]> {
  const deadline = Date.now() + options.timeoutMs;
  const pending = new Map(expected);
  const failures: string[] = [];
  while (pending.size > 0) {
    const { items } = await client.list({ signal: options.signal });
    const last = new Map(items.map((s) => [s.name, s]));
    for (const [name, expectation] of pending) {
      const verdict = judge(last.get(name), expectation);
      if (verdict === 'wait') continue;
      pending.delete(name);
      if (verdict === 'ok') options.out.write(`${name}: ${describe(last.get(name))}\n`);
      else failures.push(`${name}: ${verdict.failed}`);
    }
    if (pending.size === 0) break;
    if (Date.now() >= deadline) {
      for (const name of pending.keys()) failures.push(`${name}: not converged within ${options.timeoutMs / 1000} s: ${describe(last.get(name))}`);
      break;
    }
    await sleep(POLL_MS, undefined, { signal: options.signal });
  }
  return failures;
}

function judge(status: ProcessStatus | undefined, expectation: Expectation): 'ok' | 'wait' | { failed: string } {
  if (expectation.kind === 'gone') return status ? 'wait' : 'ok';
  if (!status) return 'wait';
  const since = expectation.since;
  const fresh = expectation.kind === 'started' ? newer(status.startedAt, since) : newer(status.startedAt, since) || newer(status.restartedAt, since);
  if (fresh && (status.phase === 'Ready' || status.phase === 'Completed')) return 'ok';
  // Only outcomes newer than the request count: an old failure is what the request may fix.
  if (expectation.kind === 'restarted' && newer(status.restartHandledAt, since) && !newer(status.restartedAt, since)) {
    return { failed: `restart script failed: ${status.restartError ?? status.detail}` };
  }
  if (status.lastError !== undefined && newer(status.lastErrorAt, since)) return { failed: `start failed: ${status.lastError}` };
  if (status.phase === 'CircuitOpen') return { failed: `circuit breaker open: ${status.detail}` };
  if (status.phase === 'Failed' && fresh && status.lastExit !== undefined && status.lastExit.at >= since) return { failed: status.detail };
  return 'wait';
}

function newer(iso: string | undefined, since: number): boolean {
  return iso !== undefined && Date.parse(iso) >= since;
}

function describe(status: ProcessStatus | undefined): string {
  if (!status) return 'gone';
  return `${status.phase}${status.detail ? ` — ${status.detail}` : ''}`;
}
