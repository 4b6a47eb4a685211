// With a database configured, pm restart / pause / resume / reset are flags like any other
// system's: a row in pm.flags (so the request is on record there, by whom and when), handled by the
// daemon through NOTIFY. The command waits for the row to be handled and says what came of it. The
// rows are addressed to the daemon on this state directory (its hostName): it is the one asked.
import { userInfo } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { loadConfig } from '../config/index.js';
import type { ControlVerb } from '../daemon/api.js';
import { classifyDatabaseError } from '../db/errors.js';
import { poolOptions, databaseSettingsFromConfig } from '../db/settings.js';
import { ExitCode } from '../errors.js';
import { findDaemon } from '../server/client.js';
import type { Cli } from './command.js';

/** How long a command waits for the daemon to handle its flag rows. */
const HANDLE_WAIT_MS = 30_000;
const POLL_MS = 50;

export interface FlagRequestOutcome {
  code: number;
  /** Epoch ms just before the rows were written: what a convergence wait compares against. */
  since: number;
  handled: boolean;
}

/** Undefined when no database is configured: the caller goes through the daemon's API instead. */
export async function requestByFlag(cli: Cli, verb: ControlVerb, names: readonly string[]): Promise<FlagRequestOutcome | undefined> {
  const { config } = await loadConfig({ env: cli.env, flags: {}, cwd: cli.cwd });
  if (config.databaseUrl === undefined) return undefined;
  const settings = await databaseSettingsFromConfig(config, cli.env);
  const client = new pg.Client({
    ...poolOptions(settings),
    connectionTimeoutMillis: config.databaseConnectTimeoutMs,
    statement_timeout: config.databaseStatementTimeoutMs,
    application_name: `pm ${verb}`,
  });
  client.on('error', () => undefined);
  const since = Date.now();
  // Addressed to the daemon on this state directory, under the name it registered with (its
  // --host-name or environment may differ from this shell's); with none running, to this host's.
  const daemon = await findDaemon(cli.stateDir);
  const host = daemon?.hostName ?? config.hostName;
  try {
    await client.connect();
    const ids: string[] = [];
    for (const name of names) {
      const { rows } = await client.query<{ id: string }>('INSERT INTO pm.flags (process, action, requested_by, host) VALUES ($1, $2, $3, $4) RETURNING id::text AS id', [name, verb, actor(), host]);
      ids.push((rows[0] as { id: string }).id);
    }
    cli.stdout.write(`${verb} requested in ${settings.display} (pm.flags ${ids.join(', ')})\n`);
    if (!daemon) {
      cli.stdout.write(`no pm daemon runs on this state directory: the flags wait for one (host ${host})\n`);
      return { code: ExitCode.ok, since, handled: false };
    }
    const deadline = Date.now() + HANDLE_WAIT_MS;
    let failed = false;
    for (const id of ids) {
      for (;;) {
        const { rows } = await client.query<{ process: string; result: string | null; message: string | null }>('SELECT process, result, message FROM pm.flags WHERE id = $1', [id]);
        const row = rows[0];
        if (row?.result) {
          cli.stdout.write(`${row.process}: ${row.result}: ${row.message ?? ''}\n`);
          if (row.result !== 'ok') failed = true;
          break;
        }
        if (Date.now() >= deadline) {
          cli.stderr.write(`flag ${id} not handled within ${HANDLE_WAIT_MS / 1000} s: is the daemon connected to ${settings.display}? (pm get, its /readyz)\n`);
          return { code: ExitCode.failed, since, handled: false };
        }
        await sleep(POLL_MS, undefined, { signal: cli.signal });
      }
    }
    return { code: failed ? ExitCode.failed : ExitCode.ok, since, handled: true };
  } catch (error) {
    if (cli.signal.aborted) throw error;
    throw classifyDatabaseError(error, settings.display);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function actor(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
