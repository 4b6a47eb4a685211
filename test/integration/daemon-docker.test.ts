// Containers under pm daemon, against the real Docker Engine: a manifest with driver docker becomes
// a labelled container, ready through a published port; a container killed or removed by hand is
// replaced; a spec change recreates it, a label-only change does not; an exec process waits for a
// container's readiness (one graph across drivers); a missing image and a foreign container holding
// the name are clear errors, and the foreign container is never touched.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import type Docker from 'dockerode';
import { ownerIdOf } from '../../src/drivers/index.js';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import { dockerSkip, engineClient, ensureTestImage, removeOwned, TEST_IMAGE, TEST_OWNER_LABEL } from '../support/docker.js';
import type { Sandbox } from '../support/cli.js';
import { waitFor } from '../support/wait.js';

const skip = dockerSkip();

/**
 * A daemon sandbox whose pm's containers are all force-removed when the test ends, passed or
 * failed, and the engine to look at them with.
 */
async function dockerSandbox(t: TestContext): Promise<{ sandbox: Sandbox; docker: Docker }> {
  await ensureTestImage();
  const docker = engineClient();
  const sandbox = await createDaemonSandbox(t);
  // Made now (pm would make it at its first container): the cleanup must not depend on the state directory still being there.
  const owner = await ownerIdOf(sandbox.stateDir);
  t.after(() => removeOwned(docker, owner));
  return { sandbox, docker };
}

/** A docker process: `docker` is spec.docker, `spec` the rest of the spec over quick defaults. */
function containerManifest(name: string, docker: Record<string, unknown>, spec: Record<string, unknown> = {}): string {
  return stringify({ apiVersion: 'pm.dev/v1alpha1', kind: 'Process', metadata: { name }, spec: { driver: 'docker', docker, minReadySeconds: 0, stop: { gracePeriodSeconds: 1 }, ...spec } });
}

/** Runs `cmd` in pm-NAME (the engine's exec) to its end; fails the test unless it exits 0. */
async function runIn(docker: Docker, name: string, cmd: string[]): Promise<void> {
  const run = await docker.getContainer(`pm-${name}`).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await run.start({ Detach: false, Tty: false });
  stream.resume();
  await new Promise((resolve) => stream.on('end', resolve));
  assert.equal((await run.inspect()).ExitCode, 0, `${cmd.join(' ')} in the container`);
}

/** An exec manifest that keeps the directory non-empty when a test removes its container's manifest. */
const KEEP = (sandbox: Sandbox): string => fixtureManifest(sandbox, { name: 'keep', program: 'idle' }, quickRestarts());

/**
 * A busybox httpd serving an index page on containerPort 8080, published on 127.0.0.1:hostPort,
 * ready when the page answers. An http probe, not tcp: the engine's proxy accepts connections on a
 * published port before the container listens.
 */
function webManifest(name: string, hostPort: number, extra: { args?: string[] } = {}): string {
  return containerManifest(
    name,
    {
      image: TEST_IMAGE,
      command: ['sh', '-c', `mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www ${(extra.args ?? []).join(' ')}`],
      env: { GREETING: 'hello' },
      publish: [{ containerPort: 8080, hostPort }],
    },
    {
      ports: [{ name: 'http', port: hostPort }],
      probes: { readiness: { http: { port: 'http', path: '/' }, periodSeconds: 0.2 } },
      stop: { gracePeriodSeconds: 2 },
      restartPolicy: { backoff: { initialSeconds: 0.05, jitter: 0 } },
    },
  );
}

async function containerOf(docker: Docker, name: string): Promise<Docker.ContainerInspectInfo> {
  return docker.getContainer(`pm-${name}`).inspect();
}

const unique = (base: string): string => `${base}-${process.pid}-${Math.floor(Math.random() * 1e6)}`;

test('a container under the daemon: labelled, ready, replaced after a kill by hand, recreated on a spec change, left alone on a label change', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('web');
  const port = await sandbox.freePort();
  await sandbox.write(`manifests/${name}.yaml`, webManifest(name, port));
  // The directory keeps one manifest when the container's goes: an empty one is refused as a mistake.
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  const daemon = await startDaemon(sandbox);

  const ready = await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the container Ready through its published port', 30_000);
  assert.equal(ready.driver, 'docker');
  const first = await containerOf(docker, name);
  assert.equal(first.State.Running, true);
  assert.equal(first.Config.Labels['pm.owner'], await ownerIdOf(sandbox.stateDir));
  assert.equal(first.Config.Labels['pm.process'], name);
  assert.match(first.Config.Labels['pm.spec'] ?? '', /^[0-9a-f]{16,}$/);
  assert.equal(first.HostConfig.RestartPolicy?.Name, 'no', 'pm restarts it, not the engine');
  assert.ok(first.Config.Env.includes('GREETING=hello'));
  assert.ok(!first.Config.Env.some((e) => e.startsWith('HOME=/') && e !== 'HOME=/root') && !first.Config.Env.some((e) => e.startsWith(`PATH=${process.env.PATH}`)), 'nothing of the host environment');

  // Killed by hand: the daemon sees the exit through the engine and starts it again.
  await docker.getContainer(first.Id).kill({ signal: 'SIGKILL' });
  const again = await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 1, 'replaced after the kill', 30_000);
  assert.equal(again.lastExit?.signal ?? again.lastExit?.code, again.lastExit?.signal === null ? 137 : 'SIGKILL');
  const second = await containerOf(docker, name);
  assert.notEqual(second.State.StartedAt, first.State.StartedAt);

  // Removed by hand: the same.
  await docker.getContainer(second.Id).remove({ force: true });
  await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 2, 'replaced after the removal', 30_000);

  // A label change is an update in place: the container stays.
  const before = await containerOf(docker, name);
  await sandbox.write(`manifests/${name}.yaml`, webManifest(name, port).replace(`name: ${name}\n`, `name: ${name}\n  labels:\n    team: web\n`));
  await daemon.waitForEvent(name, (e) => e.type === 'Updated', 'the label change applied');
  assert.equal((await containerOf(docker, name)).Id, before.Id, 'not recreated for a label');

  // A spec change recreates it, with a new spec digest.
  await sandbox.write(`manifests/${name}.yaml`, webManifest(name, port, { args: ['-v'] }));
  await waitFor(async () => (await containerOf(docker, name).catch(() => undefined))?.Id !== before.Id, { message: 'a new container for the new spec', timeoutMs: 30_000 });
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready with the new spec', 30_000);
  const recreated = await containerOf(docker, name);
  assert.match(recreated.Config.Cmd?.[2] ?? '', /exec httpd -f -p 8080 -h \/www -v$/);
  assert.notEqual(recreated.Config.Labels['pm.spec'], before.Config.Labels['pm.spec']);

  // Deleted from the directory: stopped and removed.
  await sandbox.remove(`manifests/${name}.yaml`);
  await waitFor(async () => (await containerOf(docker, name).catch(() => undefined)) === undefined, { message: 'the container removed with its manifest', timeoutMs: 30_000 });
});

test('one graph across drivers: an exec process waits for a container to be ready', { skip }, async (t) => {
  const { sandbox } = await dockerSandbox(t);
  const db = unique('db');
  const port = await sandbox.freePort();
  await sandbox.write(`manifests/${db}.yaml`, webManifest(db, port));
  await sandbox.write('manifests/app.yaml', fixtureManifest(sandbox, { name: 'app', program: 'idle', dependsOn: [{ name: db, condition: 'ready' }] }, quickRestarts()));
  const daemon = await startDaemon(sandbox);
  const app = await daemon.waitFor('app', (s) => s.phase === 'Ready', 'app Ready after the container', 30_000);
  const events = await daemon.events();
  const dbReady = events.findIndex((e) => e.process === db && e.type === 'Ready');
  const appStarted = events.findIndex((e) => e.process === 'app' && e.type === 'Started');
  assert.ok(dbReady >= 0 && appStarted > dbReady, 'app started only after the container was ready');
  assert.equal(app.driver, 'exec');
});

test('a missing image is refused before anything changes; a foreign container holding the name is never touched', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const ghost = unique('ghost');
  await sandbox.write('ghost.yaml', containerManifest(ghost, { image: 'pm-test/no-such-image:0' }));
  const missing = await sandbox.pm(['apply', '-f', 'ghost.yaml']);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /pm-test\/no-such-image:0/);
  assert.match(missing.stderr, /never pulls|pull|build/);

  const taken = unique('taken');
  const foreign = await docker.createContainer({ name: `pm-${taken}`, Image: TEST_IMAGE, Cmd: ['sleep', '1000'], Labels: { [TEST_OWNER_LABEL]: 'daemon-docker-test' } });
  t.after(() => foreign.remove({ force: true }).catch(() => undefined));
  await foreign.start();
  const before = await foreign.inspect();
  await sandbox.write('taken.yaml', containerManifest(taken, { image: TEST_IMAGE, command: ['sleep', '1000'] }));
  const conflict = await sandbox.pm(['apply', '-f', 'taken.yaml', '--timeout', '20s']);
  assert.notEqual(conflict.code, 0);
  assert.match(`${conflict.stdout}${conflict.stderr}`, /the container name pm-\S+ is taken by container [0-9a-f]{12} \(running\), not created by pm/);
  const after = await foreign.inspect();
  assert.equal(after.State.Running, true, 'the foreign container still runs');
  assert.equal(after.State.StartedAt, before.State.StartedAt, 'and was not restarted');
});

test('useHealthcheck: the image HEALTHCHECK is the readiness, both ways', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  // An image whose HEALTHCHECK passes while /healthy is not empty (built from the test image, offline;
  // the image has sh but no test, touch or rm binaries).
  const image = 'pm-test/busybox-health:2';
  const dockerfile = `FROM ${TEST_IMAGE}\nHEALTHCHECK --interval=1s --timeout=1s --retries=1 CMD ["sh", "-c", "test -s /healthy"]\n`;
  const build = await promisify(execFile)('sh', ['-c', `printf '%s' "$0" | docker build -q -t ${image} -`, dockerfile], { timeout: 120_000 });
  assert.match(build.stdout, /sha256:/);
  const name = unique('health');
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  await sandbox.write(
    `manifests/${name}.yaml`,
    containerManifest(name, { image, command: ['sleep', '1000'], useHealthcheck: true }),
  );
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor(name, (s) => s.up && s.phase !== 'Ready' && /HEALTHCHECK (starting|unhealthy)/.test(s.detail), 'running, not ready while the check fails', 30_000);

  await runIn(docker, name, ['sh', '-c', 'echo ok > /healthy']);
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready once the HEALTHCHECK passes', 30_000);
  await runIn(docker, name, ['sh', '-c', ': > /healthy']);
  await daemon.waitFor(name, (s) => s.phase !== 'Ready' && /HEALTHCHECK unhealthy/.test(s.detail), 'not ready again once it fails', 30_000);
});

test('the engine unreachable: the daemon starts and supervises its exec processes, /readyz names the container; with the engine back it adopts the same container', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('outage');
  const port = await sandbox.freePort();
  await sandbox.write(`manifests/${name}.yaml`, webManifest(name, port));
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  const first = await startDaemon(sandbox);
  await first.waitFor(name, (s) => s.phase === 'Ready', 'the container Ready', 30_000);
  const container = await containerOf(docker, name);
  first.kill('SIGTERM');
  await first.stopped;

  // A socket where no engine answers stands for an engine that is down (the real one is shared by
  // every test running now).
  const away = await startDaemon(sandbox, { env: { DOCKER_HOST: `unix://${sandbox.stateDir}/no-engine.sock` } });
  const keep = await away.waitFor('keep', (s) => s.phase === 'Ready', 'the exec process adopted and Ready');
  process.kill(keep.pid as number, 'SIGKILL');
  await away.waitFor('keep', (s) => s.phase === 'Ready' && s.pid !== keep.pid, 'the exec process restarted while the engine is away');
  await waitFor(async () => (await away.readyz()).body.failing.some((f) => f.process === name && /E_DOCKER_UNREACHABLE|does not answer|no-engine\.sock/.test(f.error)), {
    message: '/readyz names the container and why',
  });
  const report = await away.readyz();
  assert.equal(report.status, 503);
  // The docker driver alone is degraded: in /readyz, in pm_driver_up, and told once as an event.
  const docker0 = report.body.drivers?.find((d) => d.driver === 'docker');
  assert.equal(docker0?.up, false);
  assert.match(docker0?.lastError ?? '', /^E_DOCKER_UNREACHABLE/);
  assert.ok(report.body.reasons.some((r) => r.startsWith('driver docker degraded since')), report.body.reasons.join('\n'));
  assert.equal(report.body.drivers?.find((d) => d.driver === 'exec')?.up, true);
  const metrics = await away.metrics();
  assert.match(metrics, /^pm_driver_up\{driver="docker"\} 0$/m);
  assert.match(metrics, /^pm_driver_up\{driver="exec"\} 1$/m);
  assert.equal((await away.events()).filter((e) => e.type === 'DriverDegraded').length, 1, 'told once, however many calls fail');
  assert.equal((await containerOf(docker, name)).State.StartedAt, container.State.StartedAt, 'the container was left running');
  away.kill('SIGTERM');
  await away.stopped;

  const back = await startDaemon(sandbox);
  await back.waitFor(name, (s) => s.phase === 'Ready', 'the container adopted', 30_000);
  const adopted = await containerOf(docker, name);
  assert.equal(adopted.Id, container.Id, 'the same container, not a second one');
  assert.equal(adopted.State.StartedAt, container.State.StartedAt);
});

test('resources: a container gets memory, CPU, tasks and open files in its HostConfig; an exec process its open files from its first instruction', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('limited');
  await sandbox.write(
    `manifests/${name}.yaml`,
    containerManifest(name, { image: TEST_IMAGE, command: ['sleep', '1000'] }, { resources: { memory: '64Mi', cpus: 0.5, pids: 50, openFiles: 1000 } }),
  );
  await sandbox.write('manifests/keep.yaml', fixtureManifest(sandbox, { name: 'keep', program: 'idle' }, { ...quickRestarts(), resources: { openFiles: 777 } }));
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the limited container Ready', 30_000);
  const { HostConfig } = await containerOf(docker, name);
  assert.equal(HostConfig.Memory, 64 * 1024 * 1024);
  assert.equal(HostConfig.NanoCpus, 500_000_000);
  assert.equal(HostConfig.PidsLimit, 50);
  assert.deepEqual(HostConfig.Ulimits, [{ Name: 'nofile', Soft: 1000, Hard: 1000 }]);

  const keep = await daemon.waitFor('keep', (s) => s.phase === 'Ready', 'keep Ready');
  const limits = await readFile(`/proc/${keep.pid}/limits`, 'utf8');
  assert.match(limits, /^Max open files\s+777\s+777\s+files\s*$/m);
  assert.match(await readFile(`/proc/${keep.pid}/cmdline`, 'utf8'), /idle/, 'the program itself, prlimit having exec-ed it');
});

test('an exec probe of a container runs inside it (through the engine), with its exit code as the verdict', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('probed');
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  await sandbox.write(
    `manifests/${name}.yaml`,
    containerManifest(
      name,
      { image: TEST_IMAGE, command: ['sleep', '1000'] },
      // /ready exists only inside the container: a probe run on the host could never pass.
      { probes: { readiness: { exec: { command: ['sh', '-c', 'test -s /ready'] }, periodSeconds: 0.3, failureThreshold: 1 } } },
    ),
  );
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor(name, (s) => s.up && s.phase !== 'Ready' && /exit 1/.test(s.detail), 'running, the probe failing inside', 30_000);
  await runIn(docker, name, ['sh', '-c', 'echo ok > /ready']);
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready once the file exists in the container', 30_000);
});

test('pm logs of a container reads its output from the engine: both streams, --stderr, --tail, -f until interrupted', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('talker');
  const script = 'echo out-1; echo err-1 >&2; echo out-2; exec sleep 1000';
  await sandbox.write(
    'talker.yaml',
    containerManifest(name, { image: TEST_IMAGE, command: ['sh', '-c', script] }),
  );
  const applied = await sandbox.pm(['apply', '-f', 'talker.yaml']);
  assert.equal(applied.code, 0, applied.stderr);
  await waitFor(async () => (await sandbox.pm(['logs', name])).stdout.includes('out-2'), { message: 'the output reached the engine' });

  const all = await sandbox.pm(['logs', name]);
  assert.equal(all.code, 0, all.stderr);
  // Each stream keeps its order; the engine reads them from two pipes, so not their interleaving.
  assert.deepEqual(all.stdout.trim().split('\n').sort(), ['err-1', 'out-1', 'out-2']);
  assert.ok(all.stdout.indexOf('out-1') < all.stdout.indexOf('out-2'));
  assert.deepEqual((await sandbox.pm(['logs', name, '--stderr'])).stdout.trim().split('\n'), ['err-1']);
  assert.deepEqual((await sandbox.pm(['logs', name, '--tail', '1'])).stdout.trim().split('\n'), all.stdout.trim().split('\n').slice(-1), 'the last line of the whole output');

  // -f: what the container prints later arrives too, until the command is interrupted.
  const follow = sandbox.pmBackground(['logs', name, '-f']);
  await waitFor(() => follow.stdout().includes('out-2'), { message: 'pm logs -f to print the existing output' });
  await runIn(docker, name, ['sh', '-c', 'echo later > /proc/1/fd/1']);
  await waitFor(() => follow.stdout().includes('later'), { message: 'pm logs -f to print a line written later' });
  follow.child.kill('SIGINT');
  const ended = await follow.result;
  assert.equal(ended.code, 0, `pm logs -f ends cleanly on SIGINT (signal ${ended.signal}):\n${ended.stderr}`);
});

test('a crashed container of the same spec is started again, not replaced: the crashed run\'s output stays in pm logs', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('again');
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  await sandbox.write(
    `manifests/${name}.yaml`,
    containerManifest(name, { image: TEST_IMAGE, command: ['sh', '-c', 'echo hello; exec sleep 1000'] }, { restartPolicy: { backoff: { initialSeconds: 0.05, jitter: 0 } } }),
  );
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready', 30_000);
  const first = await containerOf(docker, name);
  process.kill(first.State.Pid, 'SIGKILL');
  await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 1, 'restarted after the crash', 30_000);
  const second = await containerOf(docker, name);
  assert.equal(second.Id, first.Id, 'the same container');
  await waitFor(async () => (await sandbox.pm(['logs', name])).stdout === 'hello\nhello\n', { message: 'both runs in pm logs' });
});

test('hooks and a restart script work for a container: preStart before it, postStart with its host PID, the script on pm restart (same container run), preStop before its stop', { skip }, async (t) => {
  const { sandbox, docker } = await dockerSandbox(t);
  const name = unique('hooked');
  await sandbox.write('manifests/keep.yaml', KEEP(sandbox));
  const log = sandbox.path('hooks.log');
  const record = (what: string): string[] => ['/bin/sh', '-c', `printf '%s %s\\n' "${what}" "$PM_PID" >> '${log}'`];
  await sandbox.write(
    `manifests/${name}.yaml`,
    containerManifest(
      name,
      { image: TEST_IMAGE, command: ['sleep', '1000'] },
      {
        hooks: { preStart: { command: record('preStart') }, postStart: { command: record('postStart') }, preStop: { command: record('preStop') } },
        restartPolicy: { strategy: 'script', script: { command: record('script') }, backoff: { initialSeconds: 0.05, jitter: 0 } },
      },
    ),
  );
  const daemon = await startDaemon(sandbox);
  await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the container Ready', 30_000);
  const before = await containerOf(docker, name);
  await waitFor(async () => (await readFile(log, 'utf8').catch(() => '')).includes('postStart'), { message: 'postStart to run' });

  assert.equal((await daemon.control('restart', name)).changed, true);
  await daemon.waitForEvent(name, (e) => e.type === 'ScriptRan', 'the restart script to run');
  assert.equal((await containerOf(docker, name)).State.StartedAt, before.State.StartedAt, 'the script restarts nothing itself');

  await sandbox.remove(`manifests/${name}.yaml`);
  await waitFor(async () => (await containerOf(docker, name).catch(() => undefined)) === undefined, { message: 'the container removed with its manifest', timeoutMs: 30_000 });
  // PM_PID is the container's main process on the host (State.Pid).
  const pid = before.State.Pid;
  assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), ['preStart ', `postStart ${pid}`, `script ${pid}`, `preStop ${pid}`]);
});
