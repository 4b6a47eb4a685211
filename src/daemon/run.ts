// `pm daemon`: wires the supervisor to its triggers (manifest watch, resync timer, SIGHUP, the API)
// and its outputs (HTTP server, metrics, logs), and takes it down in order on SIGTERM / SIGINT.
// Start-up order matters: the state lock first (one writer), adoption before the first reconcile
// (never a second copy of what runs), the server before daemon.json (a CLI that finds the file can
// talk to it).
import path from 'node:path';
import type { Logger } from 'pino';
import { loadConfig, reloadConfig, type LoadConfigOptions, type LoadedConfig } from '../config/index.js';
import { describeSpawner } from '../drivers/exec/native.js';
import { createDrivers } from '../drivers/index.js';
import { formatManifestIssue, ManifestError, PmError } from '../errors.js';
import { createLogger, SecretRedactor } from '../log/logger.js';
import { loadDesiredSet, ManifestCache } from '../manifest/index.js';
import { loadOrCreateToken } from '../server/auth.js';
import { removeDaemonFile, writeDaemonFile, type DaemonEndpoint } from '../server/client.js';
import { startServer, type RunningServer } from '../server/http.js';
import { DaemonMetrics } from '../server/metrics.js';
import { FileStore } from '../store/file-store.js';
import { HISTORY_SPOOL_FILE } from '../store/history.js';
import { EVENTS_SPOOL_FILE, Journal } from '../store/journal.js';
import { DaemonApiAdapter, type ApiContext } from './api-adapter.js';
import { DesiredSources } from './desired.js';
import { Supervisor } from './supervisor.js';
import { ManifestReadAhead } from './read-ahead.js';
import { watchManifests, type ManifestWatcher } from './watch.js';

export interface DaemonOptions {
  /** How the config was asked for, so SIGHUP can build it again the same way. */
  configOptions: LoadConfigOptions;
  loaded: LoadedConfig;
  version: string;
  /** Aborted on SIGTERM / SIGINT: graceful shutdown. */
  signal: AbortSignal;
  stdout: NodeJS.WritableStream;
}

export async function runDaemon(options: DaemonOptions): Promise<void> {
  let loaded = options.loaded;
  const config = loaded.config;
  const redactor = new SecretRedactor();
  const log = await createLogger({ level: config.logLevel, format: config.logFormat, destination: options.stdout, redactor });
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        log.error({ err: error }, `shutdown step failed: ${(error as Error).message}`);
      }
    }
  };

  // SIGHUP's default action ends the process: take it over before anything can announce the
  // daemon, and hold a reload that arrives during start-up until the daemon can do it.
  let onHangup: (() => void) | undefined;
  let hangupPending = false;
  const hangupSignal = (): void => {
    if (onHangup) onHangup();
    else hangupPending = true;
  };
  process.on('SIGHUP', hangupSignal);
  cleanups.push(() => void process.off('SIGHUP', hangupSignal));

  try {
    const store = await FileStore.open(config.stateDir);
    const lock = await store.lock('daemon');
    cleanups.push(() => lock.release());

    const token = await loadOrCreateToken(store.dir, { ...(config.apiToken !== undefined && { token: config.apiToken }), ...(config.apiTokenFile !== undefined && { tokenFile: config.apiTokenFile }) });
    redactor.add(token.token);

    const root = path.resolve(options.configOptions.cwd, config.manifests);
    const records = await store.listRecords();
    const sources = await DesiredSources.open(store.dir, [root], records);
    const manifests: ManifestState = { source: root, accepted: false };

    // Created once the API exists; the supervisor's hooks reach it through this holder.
    const meter: { metrics?: DaemonMetrics } = {};
    const drivers = createDrivers({ stateDir: store.dir, env: process.env, spawn: config.spawn });
    const spawner = describeSpawner(config.spawn);
    cleanups.push(() => drivers.close());
    const supervisor = new Supervisor({
      store,
      driver: drivers,
      sources,
      records,
      logger: log,
      env: process.env,
      workers: config.parallel,
      redactor,
      metrics: {
        onReconcile: (seconds, result) => meter.metrics?.observeReconcile(seconds, result),
        onAction: (kind, result) => meter.metrics?.countAction(kind, result),
      },
    });
    const manifestCache = new ManifestCache();
    const readAhead = new ManifestReadAhead(manifestCache);
    cleanups.push(() => readAhead.close());
    const reloadManifests = serialized(async () => {
      try {
        const set = await loadDesiredSet([root], { cwd: options.configOptions.cwd, cache: manifestCache });
        const { changed, conflicts } = supervisor.acceptWatched(set);
        Object.assign(manifests, { accepted: true, at: new Date().toISOString(), errors: undefined });
        meter.metrics?.countManifestLoad(true);
        const note = conflicts.length > 0 ? `; ignored (applied through the API, not from this directory): ${conflicts.join(', ')}` : '';
        supervisor.daemonEvent('ManifestsAccepted', 'normal', `${set.processes.size} processes from ${root}; changed: ${changed.length > 0 ? changed.join(', ') : 'none'}${note}`);
      } catch (error) {
        if (!(error instanceof PmError)) throw error;
        const errors = error instanceof ManifestError ? error.issues.map(formatManifestIssue) : [error.hint ? `${error.message} (${error.hint})` : error.message];
        Object.assign(manifests, { accepted: false, at: new Date().toISOString(), errors });
        meter.metrics?.countManifestLoad(false);
        supervisor.daemonEvent('ManifestsRejected', 'warning', `${errors.length} problem(s) in ${root}; the last good set stays in force:\n${errors.join('\n')}`);
      }
    });

    // Every event and history entry also goes to STATE/events.jsonl and STATE/history.jsonl: pm
    // events and pm history read them, and with a database the shipper forwards them (the files are
    // the spool that survives an outage).
    for (const [file, feed] of [
      [EVENTS_SPOOL_FILE, supervisor.events],
      [HISTORY_SPOOL_FILE, supervisor.history],
    ] as const) {
      const spool = await Journal.open(path.join(store.dir, file));
      const unsubscribe = feed.subscribe((entry: object) => {
        spool.append([entry]).catch((error: unknown) => log.warn({ err: error }, `not written to ${spool.path}: ${(error as Error).message}`));
      });
      cleanups.push(async () => {
        unsubscribe();
        await spool.flush();
      });
    }

    const context: ApiContext = { version: options.version, manifests, log, reloadManifests, drivers: () => drivers.backends() };
    const api = new DaemonApiAdapter(supervisor, context);
    const metrics = new DaemonMetrics(api);
    metrics.watchDrivers(() => drivers.backends());
    cleanups.push(
      drivers.watchBackends((health, before) => {
        if (!health.up && before?.up !== false) supervisor.daemonEvent('DriverDegraded', 'warning', `driver ${health.driver}: ${health.lastError ?? 'unreachable'}; its processes wait and are retried with backoff, the others are supervised`);
        else if (health.up && before?.up === false) supervisor.daemonEvent('DriverRecovered', 'normal', `driver ${health.driver} answers again (degraded since ${before.since})`);
      }),
    );
    meter.metrics = metrics;

    // The watcher runs before the first read, so nothing written meanwhile falls between the read
    // and its initial scan (which reports nothing); a change during the read only
    // queues one more read.
    let watcher: ManifestWatcher | undefined;
    const watch = async (debounceMs: number): Promise<void> => {
      const previous = watcher;
      watcher = await watchManifests(root, {
        debounceMs,
        onChange: () => void reloadManifests(),
        onEvent: (file) => readAhead.add(file),
        onError: (error) => log.warn({ err: error }, `watching ${root}: ${error.message}`),
      });
      // A replaced watcher (SIGHUP) runs until the new one has done its initial scan: no gap.
      await previous?.close();
    };
    await watch(config.watchDebounceMs);
    cleanups.push(() => watcher?.close());
    await reloadManifests();
    // Loaded only when a database is configured: without one pm works as before and loads no pg.
    const database = config.databaseUrl === undefined ? undefined : await (await import('./database.js')).connectDatabase(config, { supervisor, log, env: process.env, redactor, version: options.version });
    if (database) {
      cleanups.push(() => database.close());
      context.database = () => ({ ...database.health(), display: database.display });
      metrics.watchDatabase(() => database.health().up);
    }
    // Registered before start(): a start that fails part-way leaves instances whose timers must end.
    cleanups.push(async () => {
      await supervisor.stop();
      if (loaded.config.shutdown === 'stop') await supervisor.stopAll();
    });
    await supervisor.start();

    let server: RunningServer = await startServer({ api, metrics, token: token.token, listen: config.listen, ...(config.socket !== undefined && { socket: config.socket }), logger: log });
    cleanups.push(() => server.close());
    const daemonFile = (s: RunningServer): DaemonEndpoint => ({
      pid: process.pid,
      ...(s.url !== undefined && { url: s.url }),
      ...(s.socket !== undefined && { socket: s.socket }),
      ...(token.file !== undefined && { tokenFile: token.file }),
      startedAt: api.info().startedAt,
      hostName: config.hostName,
    });
    await writeDaemonFile(store.dir, daemonFile(server));
    cleanups.push(() => removeDaemonFile(store.dir, process.pid));

    let resync = setInterval(() => supervisor.resync(), config.resyncSeconds * 1000);
    cleanups.push(() => clearInterval(resync));

    onHangup = (): void => {
      void (async () => {
        const result = await reloadConfig(loaded, options.configOptions, (message, error) => log.warn({ issues: error.issues }, `${message}: ${error.message}`));
        if (!result.applied) {
          supervisor.daemonEvent('ConfigRejected', 'warning', `new configuration refused, the previous one stays in force: ${result.error.message}`);
        } else {
          const before = loaded.config;
          loaded = result.loaded;
          const after = loaded.config;
          const changed = (Object.keys(after) as (keyof typeof after)[]).filter((k) => JSON.stringify(after[k]) !== JSON.stringify(before[k]));
          const needRestart = changed.filter((k) => RESTART_KEYS.has(k));
          log.level = after.logLevel;
          if (after.resyncSeconds !== before.resyncSeconds) {
            clearInterval(resync);
            resync = setInterval(() => supervisor.resync(), after.resyncSeconds * 1000);
          }
          if (after.watchDebounceMs !== before.watchDebounceMs) await watch(after.watchDebounceMs);
          if (after.listen !== before.listen || after.socket !== before.socket) {
            // The old server goes first (the new one may reuse its socket path); if the new address
            // cannot be taken, the old one comes back, so the API is never left unreachable.
            await server.close();
            const serve = (c: typeof after): Promise<RunningServer> => startServer({ api, metrics, token: token.token, listen: c.listen, ...(c.socket !== undefined && { socket: c.socket }), logger: log });
            try {
              server = await serve(after);
            } catch (error) {
              log.error({ err: error }, `could not move the API server, staying where it was: ${(error as Error).message}`);
              server = await serve(before);
            }
            await writeDaemonFile(store.dir, daemonFile(server));
          }
          const message = changed.length === 0 ? 'configuration reloaded: no changes' : `configuration reloaded: ${changed.join(', ')} changed${needRestart.length > 0 ? `; ${needRestart.join(', ')} take effect at the next start of pm daemon` : ''}`;
          supervisor.daemonEvent('ConfigReloaded', 'normal', message);
        }
        await reloadManifests();
        supervisor.resync();
      })().catch((error: unknown) => log.error({ err: error }, `reload failed: ${(error as Error).message}`));
    };
    if (hangupPending) onHangup();

    log.info({ url: server.url, socket: server.socket, manifests: root, stateDir: store.dir, memoryMode: config.memoryMode, ...spawner }, 'pm daemon running');
    if (spawner.spawn === 'node' && config.spawn === 'auto' && process.platform === 'linux') log.warn({ reason: spawner.reason }, "processes are started with Node's spawn, which blocks the daemon longer per start the larger it is: build the native spawner (npm run build:native)");
    await abortion(options.signal);
    log.info({ shutdown: loaded.config.shutdown }, `shutting down (${String(options.signal.reason instanceof Error ? options.signal.reason.message : 'signal')})`);
  } finally {
    await cleanup();
    log.info('pm daemon stopped');
    log.flush();
  }
}

interface ManifestState {
  source: string;
  accepted: boolean;
  at?: string;
  errors?: string[];
}

/** Settings read once at start. */
const RESTART_KEYS = new Set<string>(['stateDir', 'manifests', 'parallel', 'apiToken', 'apiTokenFile', 'databaseUrl', 'databasePasswordFile', 'databaseSslMode', 'databaseSslRootCert', 'databasePoolSize', 'databaseConnectTimeoutMs', 'databaseStatementTimeoutMs', 'flagPollSeconds', 'hostName', 'memoryMode', 'spawn']);

/** One run at a time; calls during a run coalesce into one more run after it. */
function serialized(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const run = async (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await task();
      } while (again);
    })().finally(() => (running = undefined));
    return running;
  };
  return run;
}

function abortion(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export { loadConfig };
export type { Logger };
