// The daemon's PostgreSQL side, when databaseUrl is set: the connection (pool + LISTEN, reconnecting
// on its own), the schema check, and the flags source feeding the supervisor. Without a database
// none of this is loaded. While the database is down the daemon supervises from the manifests
// (degraded: /readyz and pm_database_up say so) and flags wait; they are drained when it returns.
import type { Logger } from 'pino';
import type { PmConfig } from '../config/index.js';
import { Database, isConnectionLoss } from '../db/connection.js';
import { checkSchema } from '../db/migrate.js';
import { databaseSettingsFromConfig } from '../db/settings.js';
import { clip, PostgresFlags } from '../flags/postgres.js';
import { Shipper, spoolSources } from '../store/shipper.js';
import { randomUUID } from 'node:crypto';
import type { Supervisor } from './supervisor.js';

export interface DaemonDatabase {
  display: string;
  health(): { up: boolean; since: string; lastError?: string };
  close(): Promise<void>;
}

export async function connectDatabase(
  config: PmConfig,
  deps: { supervisor: Supervisor; log: Logger; env: NodeJS.ProcessEnv; redactor: { add(value: string): void }; version: string },
): Promise<DaemonDatabase | undefined> {
  if (config.databaseUrl === undefined) return undefined;
  const settings = await databaseSettingsFromConfig(config, deps.env);
  if (settings.password) deps.redactor.add(settings.password);
  const log = deps.log.child({ database: settings.display });
  const db = new Database(settings, {
    poolSize: config.databasePoolSize,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    applicationName: 'pm daemon',
    // Database names the database in each line itself.
    logger: deps.log,
  });

  // A schema this pm does not match is refused at start, when it can be seen; an unreachable
  // database is not: the daemon starts degraded and the flags wait for it.
  try {
    const verdict = await db.transaction((client) => checkSchema(client, { where: settings.display }));
    if (!verdict.ok) {
      await db.close();
      throw verdict.error;
    }
  } catch (error) {
    if (db.state !== 'down') {
      await db.close();
      throw error;
    }
    log.warn({}, `database unreachable at start (degraded: supervising from the manifests; flags wait): ${(error as Error).message}`);
  }

  db.onChange((up, error) => {
    if (up) deps.supervisor.daemonEvent('DatabaseUp', 'normal', `database ${settings.display} reachable again: flags resume, the audit, events and history spooled meanwhile are shipped`);
    else deps.supervisor.daemonEvent('DatabaseDown', 'warning', `database ${settings.display} unreachable (degraded: supervising from the manifests; flags wait): ${error?.message ?? 'connection lost'}`);
  });

  const flags = new PostgresFlags(db, {
    where: settings.display,
    registration: { host: config.hostName, instance: randomUUID(), pid: process.pid, version: deps.version, startedAt: new Date() },
    declared: () => deps.supervisor.declaredNames(),
    onHostConflict: (other) =>
      deps.supervisor.daemonEvent(
        'HostNameConflict',
        'warning',
        `another pm daemon (pid ${other.pid} on its machine, seen ${other.seenAt.toISOString()}) is registered in pm.daemons as "${config.hostName}": flags addressed to that host go to either; give each daemon its own hostName`,
      ),
    pollSeconds: config.flagPollSeconds,
    handle: (verb, process, actor) => deps.supervisor.control(verb, process, actor),
    report: (row, outcome) => {
      const what = `flag ${row.id} (${row.action} by ${row.requested_by}): ${outcome.result}: ${outcome.message}`;
      if (outcome.result === 'ignored') {
        deps.supervisor.daemonEvent('FlagIgnored', 'warning', what);
        return;
      }
      deps.supervisor.processEvent(row.process, outcome.result === 'ok' ? 'FlagHandled' : 'FlagIgnored', outcome.result === 'ok' ? 'normal' : 'warning', what);
      deps.supervisor.recordHistory(row.process, 'flag', { flag: Number(row.id), action: clip(row.action), requestedBy: clip(row.requested_by), result: outcome.result, message: outcome.message });
    },
    onError: (error) => {
      // An outage has its own event (DatabaseDown); anything else, such as a schema migrated past
      // this pm while it runs, is an event of its own.
      const message = (error as Error).message;
      if (isConnectionLoss(error) || db.state === 'down') log.warn({}, `flags not read: ${message}`);
      else deps.supervisor.daemonEvent('FlagsNotRead', 'warning', `flags not read from ${settings.display}: ${message}`);
    },
  });
  flags.start();
  // New names are registered at once (other daemons must see them before they judge a flag
  // unknown), and flags waiting for a process newly declared here are taken.
  const unsubscribe = deps.supervisor.onDeclaredChange(() => void flags.kick());
  // Audit and events are written locally first (the spool); the shipper forwards them, exactly once.
  const shipper = new Shipper(db, { host: config.hostName, stateDir: config.stateDir, sources: spoolSources(config.stateDir), log: log.child({ component: 'shipper' }) });
  shipper.start();

  return {
    display: settings.display,
    health: () => db.health(),
    close: async () => {
      unsubscribe();
      await flags.stop();
      await shipper.close();
      await db.close();
    },
  };
}
