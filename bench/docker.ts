// Containers: crash → replacement running, pm daemon's docker driver against the engine's own
// `--restart=always`, on the same machine and engine, alternated trial by trial. Every container
// runs bench/docker/reporter.c, which connects to a unix socket the bench listens on (its folder
// bind-mounted into the container) as soon as it runs; the bench stamps that connection.
//
// Usage: npm run build && npm run bench:docker -- [--trials 200] [--quick] [--warmup 3]
//          [--containers 6] [--rest-seconds 11] [--settle-ms 100] [--timeout-ms 10000] [--loop 6]
//          [--kill-wait-seconds 5] [--ops 20] [--network MODE] [--write] [--raw FILE] [--pm-cli PATH]
// Needs the Docker Engine (dockerd) and busybox-static (test/support/docker.ts builds the image
// pm-test/busybox:1 from it when the engine lacks it) and a C compiler. Every container, the pm
// daemon and the temp folder are removed at the end, on failure and on Ctrl-C. --write puts the
// results into docs/benchmarks.md between the <!-- bench:docker:run --> markers.
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DOCKER_SOCKET, engineClient, ensureTestImage } from '../test/support/docker.js';
import { awaitFirstRuns, ReportSocket } from './daemon/child.js';
import { DEFAULT_CLI } from './daemon/managers/pm.js';
import { loadAverage, writeBlock } from './daemon/report.js';
import { containerReporter, describeEngine, engineOperations, EventLog, newRunId, removeLabelled, RUN_LABEL, sweepLeftovers, type OperationTimes } from './docker/engine.js';
import { EngineManager, labels, PmDockerManager, type ContainerSpec, type DockerManager } from './docker/managers.js';
import { renderReport, RUN_MARKERS } from './docker/report.js';
import { crashLoop, crashToRunning, engineKill, type Slot, type Trial, type TrialOptions } from './docker/trials.js';
import { benchArgs } from './args.js';
import { startBenchRun } from './run.js';

const { positiveInt, nonNegativeInt, usage } = benchArgs('bench:docker');

const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
/** The first run of every container: the engine creates them one by one, pm all at once. */
const FIRST_START_TIMEOUT_MS = 60_000;
/** The engine resets its restart delay after a run of 10 s; the rest before a crash must exceed it. */
const ENGINE_RESET_SECONDS = 10;

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    quick: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '3' },
    containers: { type: 'string', default: '6' },
    'rest-seconds': { type: 'string', default: '11' },
    'settle-ms': { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '10000' },
    loop: { type: 'string', default: '6' },
    'kill-wait-seconds': { type: 'string', default: '5' },
    ops: { type: 'string' },
    network: { type: 'string' },
    write: { type: 'boolean', default: false },
    raw: { type: 'string' },
    'pm-cli': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(
    'usage: npm run bench:docker -- [--trials N (200)] [--quick (20 trials)] [--warmup N (3)] [--containers N per manager (6)] [--rest-seconds S (11)] [--settle-ms MS (100)] [--timeout-ms MS (10000)] [--loop N (6; 0: no crash loop)] [--kill-wait-seconds S (5)] [--ops N (20; quick 5; 0: none)] [--network MODE (default: the engine default, bridge)] [--write] [--raw FILE] [--pm-cli PATH (dist/cli/main.js)]',
  );
  process.exit(0);
}
const trials = positiveInt(values.trials ?? (values.quick ? '20' : '200'), '--trials');
const warmup = nonNegativeInt(values.warmup, '--warmup');
const containers = positiveInt(values.containers, '--containers');
const restSeconds = Number(values['rest-seconds']);
if (!(restSeconds >= 0)) usage(`--rest-seconds must be a number ≥ 0, got "${values['rest-seconds']}"`);
const settleMs = nonNegativeInt(values['settle-ms'], '--settle-ms');
const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
const loopCrashes = nonNegativeInt(values.loop, '--loop');
const killWaitMs = positiveInt(values['kill-wait-seconds'], '--kill-wait-seconds') * 1000;
const opsRounds = nonNegativeInt(values.ops ?? (values.quick ? '5' : '20'), '--ops');
const network = values.network;
if (network !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(network)) usage(`--network: not a network mode or name: "${network}"`);
const pmCli = values['pm-cli'] === undefined ? DEFAULT_CLI : resolve(values['pm-cli']);
const repo = fileURLToPath(new URL('..', import.meta.url));

const { progress, args, command, startedAt, loadAtStart, machine, cleanup, root, fail, exit } = await startBenchRun('docker');
if (restSeconds <= ENGINE_RESET_SECONDS) progress(`note: --rest-seconds ${restSeconds} does not exceed ${ENGINE_RESET_SECONDS}: the engine's restart delay will grow between trials`);

const docker = engineClient();
const run = { id: newRunId(), image: '', reporter: '', network };
// Registered before anything is created: whatever carries this run's label goes, on every path.
cleanup.add("remove this run's containers", async () => {
  const left = await removeLabelled(docker, [`${RUN_LABEL}=${run.id}`]);
  if (left > 0) progress(`removed ${left} container(s) the managers left behind`);
});

let exitCode = 0;
try {
  await docker.ping().catch((error: Error) => {
    throw new Error(`the Docker engine does not answer on /var/run/docker.sock (${error.message}): start it (setsid nohup dockerd >/var/log/dockerd.log 2>&1 &)`);
  });
  await sweepLeftovers(docker, progress);
  run.image = await ensureTestImage();
  run.reporter = await containerReporter();
  const engine = await describeEngine(docker);
  progress(`${engine.versions}; run ${run.id}`);

  const events = await EventLog.open(docker, run.id);
  cleanup.add("close the engine's event stream", () => events.close());

  const cliShown = pmCli.startsWith(repo) ? relative(repo, pmCli) : pmCli;
  await mkdir(join(root, 'pm'));
  const pm = await PmDockerManager.create(join(root, 'pm'), docker, run, progress, pmCli, cliShown);
  const managers: DockerManager[] = [new EngineManager(docker, run, engine.engineVersion), pm];
  const slots = new Map<DockerManager, Slot[]>();
  for (const manager of managers) {
    const pool: Slot[] = [];
    for (let i = 0; i < containers; i++) {
      const reportDir = join(root, 'reports', `${manager.key}-${i}`);
      await mkdir(reportDir, { recursive: true });
      const reports = await ReportSocket.listen(join(reportDir, 'r.sock'));
      cleanup.add(`close the socket of ${manager.key}-${i}`, () => reports.close());
      const name = manager.key === 'pm' ? `bench-${process.pid}-${i}` : `bench-docker-${process.pid}-engine-${i}`;
      pool.push({ manager, index: i, spec: { name, reportDir }, reports, upAt: 0n });
    }
    slots.set(manager, pool);
    cleanup.add(`shut ${manager.name} down`, () => manager.shutdown());
    progress(`starting ${manager.name} with ${containers} containers`);
    await manager.start(pool.map((s) => s.spec));
  }
  await awaitFirstRuns(slots, FIRST_START_TIMEOUT_MS, (manager, slot) => manager.containerName(slot.spec));

  const all: Trial[] = [];
  const options: TrialOptions = { docker, socketPath: DOCKER_SOCKET, events, cleanup, progress, timeoutMs, settleMs };
  const restMs = restSeconds * 1000;
  progress(`(a) crash → running: ${trials} trials per manager after ${warmup} warm-up, each container up ≥ ${restSeconds} s before its crash`);
  await crashToRunning(slots, trials, warmup, restMs, options, (t) => all.push(t));
  if (loopCrashes > 0) await crashLoop(slots, loopCrashes, restMs, options, (t) => all.push(t));
  const kills = await engineKill(slots, killWaitMs, restMs, options);
  let ops: OperationTimes | undefined;
  if (opsRounds > 0) {
    progress(`(d) engine calls alone: ${opsRounds} rounds`);
    const reportDir = join(root, 'reports', 'ops');
    await mkdir(reportDir, { recursive: true });
    const reports = await ReportSocket.listen(join(reportDir, 'r.sock'));
    cleanup.add('close the socket of the engine calls', () => reports.close());
    const setup = { name: `bench-docker-${process.pid}-ops`, image: run.image, reporter: run.reporter, reportDir, labels: labels('ops', run.id), network, isInterrupted: () => cleanup.started };
    ops = await engineOperations(docker, setup, opsRounds);
  }
  const loadAtEnd = loadAverage();
  if (values.raw !== undefined) {
    const line = (t: Trial): string =>
      `${JSON.stringify(t, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value))}\n`;
    await writeFile(values.raw, all.map(line).join(''));
    progress(`raw trials: ${values.raw}`);
  }

  const placeholder: ContainerSpec = { name: 'NAME', reportDir: 'DIR' };
  const report = renderReport({
    startedAt,
    command,
    args,
    machine,
    engine,
    loadAtStart,
    loadAtEnd,
    image: run.image,
    managers,
    pmManifest: pm.manifest(placeholder, 'REPORTER', 'RUN'),
    containers,
    trials,
    warmup,
    restSeconds,
    settleMs,
    loopCrashes,
    network,
    all,
    kills,
    ops,
  });
  console.log(`\n${report}\n`);
  if (values.write) progress(`docs/benchmarks.md: results ${await writeBlock(DOC, report, RUN_MARKERS)}`);
} catch (error) {
  exitCode = fail(error);
}
await exit(exitCode);
