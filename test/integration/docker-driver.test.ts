// The docker driver against the real engine, with the busybox test image. Every test owns its
// containers (its own pm.owner / pm-test.owner label) and test/support/docker.ts removes them when
// the test ends, pass or fail; names are unique per test, so files may run in parallel. Waiting is
// always poll-until or the engine's own wait: no sleeps as synchronisation, no timing thresholds.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { DockerError, Label, specDigest, type ContainerSpec, type DockerEvent } from '../../src/drivers/docker/index.js';
import { formatSince, LineSplitter, parseEvent } from '../../src/drivers/docker/events.js';
import type { ConnectionState } from '../../src/drivers/docker/events.js';
import { ContainerExitWatch } from '../../src/drivers/docker/exit-watch.js';
import type { ExitStatus } from '../../src/drivers/driver.js';
import { dockerSkip, startRecordingProxy, useDocker, waitForContainerProcess, type DockerTestContext } from '../support/docker.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const skip = dockerSkip();

/** A shell that exits with `code` on `signal` (PID 1 has no default signal actions: it needs a trap). */
function exitsOn(signal: string, code: number): string[] {
  return ['sh', '-c', `trap "exit ${code}" ${signal}; sleep 1000 & wait`];
}

function specFor(ctx: DockerTestContext, overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    process: ctx.processName(),
    image: ctx.image,
    command: ['sleep', '1000'],
    env: {},
    labels: {},
    ports: [],
    volumes: [],
    network: 'none',
    stopSignal: 'SIGTERM',
    ...overrides,
  };
}

function instance(): string {
  return randomBytes(16).toString('hex');
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<DockerError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof DockerError, `expected a DockerError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.ok(error.hint && error.hint.length > 0, 'every DockerError carries a hint');
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

describe('docker driver', { skip }, () => {
  test('start: running, pm labels on the container, pid > 0', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const spec = specFor(ctx, { labels: { team: 'core' } });
    const marker = instance();
    const handle = await driver.start(spec, { instance: marker });

    assert.equal(handle.driver, 'docker');
    assert.equal(handle.name, `pm-${spec.process}`);
    assert.equal(handle.instance, marker);
    assert.ok(handle.pid > 0, `pid ${handle.pid}`);
    assert.deepEqual(await driver.inspect(handle), { state: 'running', pid: handle.pid });

    const info = await ctx.docker.getContainer(handle.id).inspect();
    assert.equal(info.Name, `/pm-${spec.process}`);
    assert.equal(info.Config.Labels[Label.owner], ctx.owner);
    assert.equal(info.Config.Labels[Label.process], spec.process);
    assert.equal(info.Config.Labels[Label.instance], marker);
    assert.equal(info.Config.Labels[Label.spec], specDigest(spec));
    assert.equal(info.Config.Labels.team, 'core');
    assert.equal(info.HostConfig.RestartPolicy?.Name, 'no');
    assert.equal((info.Config as { StopSignal?: string }).StopSignal, 'SIGTERM');
    assert.equal(info.State.Pid, handle.pid);

    const owned = await driver.listOwned();
    assert.deepEqual(
      owned.map((c) => ({ id: c.id, name: c.name, process: c.process, instance: c.instance, specDigest: c.specDigest, state: c.state })),
      [{ id: handle.id, name: handle.name, process: spec.process, instance: marker, specDigest: specDigest(spec), state: 'running' }],
    );
  });

  test('the spec digest ignores key order and follows every value', () => {
    const base: ContainerSpec = { process: 'a', image: 'i:1', env: { A: '1', B: '2' }, labels: {}, ports: [], volumes: [], stopSignal: 'SIGTERM' };
    assert.equal(specDigest(base), specDigest({ ...base, env: { B: '2', A: '1' } }));
    assert.notEqual(specDigest(base), specDigest({ ...base, env: { A: '1', B: '3' } }));
    assert.notEqual(specDigest(base), specDigest({ ...base, resources: { pids: 10 } }));
  });

  test('stop with SIGTERM: the exit code the process chose; safe twice; then remove', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx, { command: exitsOn('TERM', 7) }), { instance: instance() });
    await waitForContainerProcess(ctx.docker, handle.id, 'sleep 1000');

    const result = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 60_000 });
    assert.equal(result.forced, false);
    assert.equal(result.wasRunning, true);
    assert.deepEqual({ ...result.exit, at: 0 }, { code: 7, signal: null, known: true, at: 0 });
    const seen = await driver.inspect(handle);
    assert.equal(seen.state, 'exited');
    assert.equal(seen.state === 'exited' && seen.exit.code, 7);

    const again = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 60_000 });
    assert.equal(again.wasRunning, false);
    assert.equal(again.exit?.code, 7);

    await driver.remove(handle);
    assert.deepEqual(await driver.inspect(handle), { state: 'missing' });
    await driver.remove(handle);
    assert.deepEqual(await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 0 }), { forced: false, wasRunning: false });
  });

  test('a process that ignores SIGTERM gets SIGKILL after the grace period (forced)', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx, { command: ['sh', '-c', 'trap "" TERM; sleep 1000'] }), { instance: instance() });
    const result = await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 300 });
    assert.equal(result.forced, true);
    assert.equal(result.wasRunning, true);
    assert.equal(result.exit?.signal, 'SIGKILL');
    assert.equal(result.exit?.code, null);
    assert.equal(result.exit?.known, true);
  });

  test('remove refuses a running container', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx), { instance: instance() });
    await rejectsWith(driver.remove(handle), 'E_DOCKER_STILL_RUNNING');
    assert.equal((await driver.inspect(handle)).state, 'running');
  });

  test('waitExit: code 3, while waiting and after; cancellable', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx, { command: exitsOn('USR1', 3) }), { instance: instance() });
    await waitForContainerProcess(ctx.docker, handle.id, 'sleep 1000');

    const cancel = new AbortController();
    const cancelled = driver.waitExit(handle, cancel.signal);
    cancel.abort(new Error('no longer interested'));
    await assert.rejects(cancelled, /no longer interested/);

    const waiting = driver.waitExit(handle);
    await ctx.docker.getContainer(handle.id).kill({ signal: 'SIGUSR1' });
    assert.deepEqual({ ...(await waiting), at: 0 }, { code: 3, signal: null, known: true, at: 0 });
    // Already over: answered from the engine's state.
    assert.equal((await driver.waitExit(handle)).code, 3);

    const quick = await driver.start(specFor(ctx, { command: ['sh', '-c', 'exit 3'] }), { instance: instance() });
    assert.equal((await driver.waitExit(quick)).code, 3);
  });

  test('drift: killed, started again and removed by hand, each seen by inspect', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx), { instance: instance() });
    const container = ctx.docker.getContainer(handle.id);

    await container.kill({ signal: 'SIGKILL' });
    await container.wait({ condition: 'not-running' });
    const killed = await driver.inspect(handle);
    assert.equal(killed.state, 'exited');
    assert.equal(killed.state === 'exited' && killed.exit.signal, 'SIGKILL');
    assert.equal(killed.state === 'exited' && killed.exit.known, true);

    // Started again by someone else: another run, so the handle's run is over, how is not known.
    await container.start();
    const restarted = await driver.inspect(handle);
    assert.equal(restarted.state, 'exited');
    assert.equal(restarted.state === 'exited' && restarted.exit.known, false);
    assert.equal((await driver.waitExit(handle)).known, false);
    assert.equal(await driver.health(handle), 'none');

    await container.remove({ force: true });
    assert.deepEqual(await driver.inspect(handle), { state: 'missing' });
    assert.deepEqual(await driver.stop(handle, { signal: 'SIGTERM', gracePeriodMs: 0 }), { forced: false, wasRunning: false });
    assert.equal((await driver.waitExit(handle)).known, false);
  });

  test('a foreign container named pm-<process> is refused and left untouched', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const spec = specFor(ctx);
    const foreign = await ctx.docker.createContainer({ name: `pm-${spec.process}`, Image: ctx.image, Cmd: ['sleep', '1000'], Labels: ctx.testLabels, HostConfig: { NetworkMode: 'none' } });
    await foreign.start();
    const before = await foreign.inspect();

    const error = await rejectsWith(driver.start(spec, { instance: instance() }), 'E_DOCKER_NAME_CONFLICT');
    assert.match(error.message, new RegExp(before.Id.slice(0, 12)));
    assert.match(error.hint ?? '', /docker rm -f/);

    // Nor may a handle that names it stop or remove it.
    const forged = { driver: 'docker' as const, id: before.Id, name: `pm-${spec.process}`, instance: 'x', startedAt: before.State.StartedAt, pid: before.State.Pid };
    await rejectsWith(driver.stop(forged, { signal: 'SIGKILL', gracePeriodMs: 0 }), 'E_DOCKER_NOT_OWNED');
    await rejectsWith(driver.remove(forged), 'E_DOCKER_NOT_OWNED');

    const after = await foreign.inspect();
    assert.equal(after.Id, before.Id);
    assert.equal(after.State.Running, true);
    assert.equal(after.State.StartedAt, before.State.StartedAt);
  });

  test('its own container: a running one refused; a stopped one of the same spec started again (its log kept), of another spec replaced', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const spec = specFor(ctx, { command: exitsOn('TERM', 0) });
    const firstInstance = instance();
    const first = await driver.start(spec, { instance: firstInstance });
    await rejectsWith(driver.start(spec, { instance: instance() }), 'E_DOCKER_STILL_RUNNING');
    await waitForContainerProcess(ctx.docker, first.id, 'sleep 1000');
    await driver.stop(first, { signal: 'SIGTERM', gracePeriodMs: 60_000 });

    const again = await driver.start(spec, { instance: instance() });
    assert.equal(again.id, first.id, 'the same container');
    assert.notEqual(again.startedAt, first.startedAt, 'a new run of it');
    assert.equal(again.instance, firstInstance, 'the handle names the instance label the container carries');
    assert.deepEqual(await driver.inspect(again), { state: 'running', pid: again.pid });
    await waitForContainerProcess(ctx.docker, again.id, 'sleep 1000');
    await driver.stop(again, { signal: 'SIGTERM', gracePeriodMs: 60_000 });

    const changed = await driver.start({ ...spec, env: { ...spec.env, CHANGED: '1' } }, { instance: instance() });
    assert.notEqual(changed.id, first.id, 'another spec: a new container');
    assert.equal(changed.name, first.name);
    await assert.rejects(ctx.docker.getContainer(first.id).inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
  });

  test('a missing image: E_DOCKER_IMAGE_NOT_FOUND, and no container left', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const image = `pm-test/no-such-image:${randomBytes(4).toString('hex')}`;
    const error = await rejectsWith(driver.checkImage(image), 'E_DOCKER_IMAGE_NOT_FOUND');
    assert.match(error.hint ?? '', /never pulls/);
    await driver.checkImage(ctx.image);
    const spec = specFor(ctx, { image });
    await rejectsWith(driver.start(spec, { instance: instance() }), 'E_DOCKER_IMAGE_NOT_FOUND');
    assert.deepEqual(await driver.listOwned(), []);
  });

  test('reserved and shadowing labels are refused before anything is sent', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    await rejectsWith(driver.start(specFor(ctx, { labels: { 'pm.owner': 'me' } }), { instance: instance() }), 'E_DOCKER_SPEC_INVALID');
    await rejectsWith(driver.start(specFor(ctx, { labels: { exitCode: '0' } }), { instance: instance() }), 'E_DOCKER_SPEC_INVALID');
    await rejectsWith(driver.start(specFor(ctx, { process: 'Not_A_Label' }), { instance: instance() }), 'E_DOCKER_SPEC_INVALID');
    assert.deepEqual(await driver.listOwned(), []);
  });

  test('unreachable engine: no socket, or a socket nobody listens on', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const dir = await tempDir(t, 'pm-docker-dead-');
    const missing = ctx.driver({ socketPath: join(dir, 'none.sock') });
    const error = await rejectsWith(missing.checkImage(ctx.image), 'E_DOCKER_UNREACHABLE');
    assert.match(error.hint ?? '', /dockerd/);

    // A listener killed hard leaves its socket file behind, as a crashed dockerd does.
    const stale = join(dir, 'stale.sock');
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('ready'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => void child.kill('SIGKILL'));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await rejectsWith(ctx.driver({ socketPath: stale }).checkImage(ctx.image), 'E_DOCKER_UNREACHABLE');
  });

  test('a socket with mode 000, as a user other than root: E_DOCKER_PERMISSION', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const proxy = await startRecordingProxy(t);
    await chmod(proxy.socketPath, 0o000);
    const uid = process.getuid?.();
    if (uid !== 0) {
      // Not root: this process itself is the unprivileged user.
      await rejectsWith(ctx.driver({ socketPath: proxy.socketPath }).checkImage(ctx.image), 'E_DOCKER_PERMISSION');
      return;
    }
    // Root ignores file modes: a child loads the driver as root, then drops to nobody (65534) for the call.
    const driverUrl = pathToFileURL(resolve('src/drivers/docker/index.ts')).href;
    const script = `
      const { DockerDriver } = await import(${JSON.stringify(driverUrl)});
      const driver = new DockerDriver({ owner: 'pm-test-permission', socketPath: ${JSON.stringify(proxy.socketPath)} });
      process.setgroups([]); process.setgid(65534); process.setuid(65534);
      try { await driver.checkImage(${JSON.stringify(ctx.image)}); console.log(JSON.stringify({ uid: process.getuid() })); }
      catch (e) { console.log(JSON.stringify({ uid: process.getuid(), code: e.code, hint: e.hint })); }`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000, killSignal: 'SIGKILL' });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    const result = JSON.parse(out) as { uid: number; code?: string; hint?: string };
    assert.equal(result.uid, 65534);
    assert.equal(result.code, 'E_DOCKER_PERMISSION');
    assert.match(result.hint ?? '', /docker group/);
  });

  test('limits: memory, cpus, pids and nofile in HostConfig', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const handle = await driver.start(specFor(ctx, { resources: { memoryBytes: 64 * 1024 * 1024, cpus: 0.5, pids: 64, nofile: 1024 } }), { instance: instance() });
    const { HostConfig } = await ctx.docker.getContainer(handle.id).inspect();
    assert.equal(HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(HostConfig.NanoCpus, 500_000_000);
    assert.equal(HostConfig.PidsLimit, 64);
    assert.deepEqual(HostConfig.Ulimits, [{ Name: 'nofile', Soft: 1024, Hard: 1024 }]);
  });

  test('an I/O weight is applied, or refused when the engine would drop it — never dropped silently', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const spec = specFor(ctx, { resources: { ioWeight: 300 } });
    let applied: string | undefined;
    try {
      applied = (await driver.start(spec, { instance: instance() })).id;
    } catch (error) {
      assert.ok(error instanceof DockerError, String(error));
      assert.equal(error.code, 'E_DOCKER_LIMIT_UNSUPPORTED', error.message);
      assert.match(error.message, /discarded/i);
      t.diagnostic(`this engine drops BlkioWeight: ${error.message}`);
      // The created container was removed again.
      assert.deepEqual(await driver.listOwned(), []);
      return;
    }
    t.diagnostic('this engine applies BlkioWeight');
    assert.equal((await ctx.docker.getContainer(applied).inspect()).HostConfig.BlkioWeight, 300);
  });

  test('ports and bind mounts: httpd serves a host folder on a published port', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const site = await tempDir(t, 'pm-docker-site-');
    const page = `hello ${randomBytes(4).toString('hex')}\n`;
    await writeFile(join(site, 'index.html'), page);
    await chmod(site, 0o755);
    const port = await freePort();
    const handle = await driver.start(
      specFor(ctx, {
        command: ['httpd', '-f', '-p', '8080', '-h', '/srv'],
        network: 'bridge',
        ports: [{ container: 8080, host: port, hostIp: '127.0.0.1', protocol: 'tcp' }],
        volumes: [{ source: site, target: '/srv', readOnly: true }],
      }),
      { instance: instance() },
    );
    let body = '';
    await waitFor(
      async () => {
        body = await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => (r.ok ? r.text() : ''), () => '');
        return body === page;
      },
      { timeoutMs: 15_000, intervalMs: 50, message: `the page on port ${port}` },
    );
    const info = await ctx.docker.getContainer(handle.id).inspect();
    assert.deepEqual(info.HostConfig.PortBindings, { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] });
    assert.equal(info.Mounts[0]?.RW, false);
  });

  test('recover(instance) finds a container whose handle was never recorded', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const marker = instance();
    const lost = await driver.start(specFor(ctx), { instance: marker });
    // A later pm process (a new driver, same owner) only knows the marker it recorded before the start.
    const later = ctx.driver();
    const found = await later.recover(marker);
    assert.deepEqual(found, lost);
    assert.equal(await later.recover(instance()), undefined);
    // Another owner's driver does not see it.
    assert.equal(await ctx.driver({ owner: `${ctx.owner}-other` }).recover(marker), undefined);
  });

  test('health: the HEALTHCHECK status, and its event', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    // An image with a healthcheck, committed from a container of the test image; removed at the end.
    const repo = `pm-test/busybox-health`;
    const tag = ctx.owner;
    const base = await ctx.docker.createContainer({ Image: ctx.image, Cmd: ['true'], Labels: ctx.testLabels, HostConfig: { NetworkMode: 'none' } });
    t.after(() => ctx.docker.getImage(`${repo}:${tag}`).remove({ force: true }).catch(() => undefined));
    await new Promise<void>((resolve, reject) => {
      ctx.docker.modem.dial(
        {
          path: '/commit?',
          method: 'POST',
          options: { _query: { container: base.id, repo, tag }, _body: { Image: ctx.image, Healthcheck: { Test: ['CMD', 'true'], Interval: 100_000_000, Timeout: 1_000_000_000, Retries: 1 } } },
          statusCodes: { 201: true, 404: 'no such container', 500: 'server error' },
        },
        (error) => (error ? reject(error) : resolve()),
      );
    });

    const driver = ctx.driver();
    const events: DockerEvent[] = [];
    const connections: ConnectionState[] = [];
    const stop = new AbortController();
    const watching = driver.watchEvents((e) => events.push(e), stop.signal, { onConnection: (c) => connections.push(c) });
    t.after(() => stop.abort());
    await waitFor(() => connections.some((c) => c.state === 'connected'), { message: 'the event stream' });

    const handle = await driver.start(specFor(ctx, { image: `${repo}:${tag}` }), { instance: instance() });
    await waitFor(async () => (await driver.health(handle)) === 'healthy', { timeoutMs: 15_000, message: 'healthy' });
    await waitFor(() => events.some((e) => e.id === handle.id && e.action === 'health_status' && e.health === 'healthy'), { message: 'a health_status: healthy event' });
    stop.abort();
    await watching;
  });

  test('watchEvents: a die with its exit code; other owners’ containers are not reported', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const driver = ctx.driver();
    const events: DockerEvent[] = [];
    const connections: ConnectionState[] = [];
    const stop = new AbortController();
    const watching = driver.watchEvents((e) => events.push(e), stop.signal, { onConnection: (c) => connections.push(c) });
    t.after(() => stop.abort());
    await waitFor(() => connections.some((c) => c.state === 'connected'), { message: 'the event stream' });

    // A container of nobody's that dies first: the stream is ordered, so had it passed the filter it would come first.
    const foreign = await ctx.docker.createContainer({ Image: ctx.image, Cmd: ['sh', '-c', 'exit 9'], Labels: ctx.testLabels, HostConfig: { NetworkMode: 'none' } });
    await foreign.start();
    await foreign.wait({ condition: 'not-running' });

    const spec = specFor(ctx, { command: ['sh', '-c', 'exit 5'] });
    const marker = instance();
    const handle = await driver.start(spec, { instance: marker });
    await waitFor(() => events.some((e) => e.id === handle.id && e.action === 'die'), { message: 'the die event' });
    const die = events.find((e) => e.id === handle.id && e.action === 'die')!;
    assert.equal(die.exitCode, 5);
    assert.equal(die.process, spec.process);
    assert.equal(die.instance, marker);
    assert.ok(events.some((e) => e.id === handle.id && e.action === 'start'));
    assert.equal(events.filter((e) => e.id === foreign.id).length, 0);
    stop.abort();
    await watching;
  });

  test('watchEvents reconnects after the stream drops and replays what it missed (since)', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const proxy = await startRecordingProxy(t);
    const watcher = ctx.driver({ socketPath: proxy.socketPath });
    const driver = ctx.driver();
    const events: DockerEvent[] = [];
    const connections: ConnectionState[] = [];
    const stop = new AbortController();
    const watching = watcher.watchEvents((e) => events.push(e), stop.signal, { onConnection: (c) => connections.push(c), backoff: { initialMs: 20, maxMs: 200 } });
    t.after(() => stop.abort());
    await waitFor(() => connections.some((c) => c.state === 'connected'), { message: 'the event stream' });

    // The engine "goes away" for this client: the stream is cut and reconnects are refused.
    proxy.refuse(true);
    proxy.cut();
    await waitFor(() => connections.filter((c) => c.state === 'disconnected').length >= 2, { message: 'failed reconnects' });
    const handle = await driver.start(specFor(ctx, { command: ['sh', '-c', 'exit 6'] }), { instance: instance() });
    assert.equal((await driver.waitExit(handle)).code, 6);
    assert.equal(events.filter((e) => e.id === handle.id).length, 0);

    proxy.refuse(false);
    await waitFor(() => events.some((e) => e.id === handle.id && e.action === 'die' && e.exitCode === 6), { message: 'the replayed die event' });
    assert.equal(connections.filter((c) => c.state === 'connected').length, 2);
    const request = proxy.heads().filter((h) => h.startsWith('GET ') && h.includes('/events?'));
    assert.match(request.at(-1) ?? '', /[?&]since=\d+\.\d{9}/);
    stop.abort();
    await watching;
  });

  test('environment values go only into request bodies, never into a URL, header or error', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const proxy = await startRecordingProxy(t);
    const driver = ctx.driver({ socketPath: proxy.socketPath });
    const secret = `s3cret-${randomBytes(16).toString('hex')}`;
    const spec = specFor(ctx, { env: { API_TOKEN: secret, PLAIN: 'x' } });
    const handle = await driver.start(spec, { instance: instance() });
    assert.ok((await ctx.docker.getContainer(handle.id).inspect()).Config.Env.includes(`API_TOKEN=${secret}`));
    const missing = await rejectsWith(driver.start({ ...specFor(ctx, { env: { API_TOKEN: secret } }), image: 'pm-test/no-such-image:1' }, { instance: instance() }), 'E_DOCKER_IMAGE_NOT_FOUND');
    assert.ok(!missing.message.includes(secret) && !(missing.hint ?? '').includes(secret));

    const heads = proxy.heads();
    assert.ok(heads.some((h) => h.startsWith(`POST /containers/create?name=pm-${spec.process} `)), heads.map((h) => h.split('\r\n')[0]).join('\n'));
    for (const head of heads) assert.ok(!head.includes(secret), `the secret is in ${head.split('\r\n')[0]}`);
    // The recording saw the bodies: the secret is there, and only there.
    assert.ok(proxy.sent().includes(secret));
  });

  test('exit watch: every waited-on container through ONE event stream (no wait connection each); a kill resolves only its own wait; a dropped stream rejects the waits, which work again once it is back', async (t) => {
    const ctx = await useDocker(t);
    if (!ctx) return;
    const proxy = await startRecordingProxy(t);
    const driver = ctx.driver({ socketPath: proxy.socketPath });
    const watch = new ContainerExitWatch(driver, { backoff: { initialMs: 20, maxMs: 200 } });
    t.after(() => watch.close());
    const handles = await Promise.all([0, 1, 2].map(() => driver.start(specFor(ctx), { instance: instance() })));
    const settled = new Map<string, ExitStatus | Error>();
    const waitOn = (handle: (typeof handles)[number]): void => {
      watch.wait(handle).then(
        (exit) => settled.set(handle.id, exit),
        (error: Error) => settled.set(handle.id, error),
      );
    };
    for (const handle of handles) waitOn(handle);
    await waitFor(() => proxy.heads().some((h) => h.startsWith('GET /events?')), { message: 'the event stream opened' });

    await ctx.docker.getContainer(handles[1]!.id).kill({ signal: 'SIGKILL' });
    await waitFor(() => settled.has(handles[1]!.id), { message: 'the killed container\'s wait to end' });
    assert.deepEqual({ ...(settled.get(handles[1]!.id) as ExitStatus), at: 0 }, { code: null, signal: 'SIGKILL', at: 0, known: true });
    assert.equal(settled.size, 1, 'the others still wait');
    const heads = proxy.heads();
    assert.equal(heads.filter((h) => /^POST \/[^ ]*containers\/[^ ]+\/wait/.test(h)).length, 0, 'no wait connection per container');
    assert.equal(heads.filter((h) => h.startsWith('GET /events?')).length, 1, 'one event stream for all');

    // The stream drops and cannot come back: the waits are rejected (the caller retries), not left hanging.
    proxy.refuse(true);
    proxy.cut();
    await waitFor(() => settled.size === 3, { message: 'the remaining waits rejected' });
    for (const i of [0, 2]) assert.ok(settled.get(handles[i]!.id) instanceof Error, `wait ${i} rejected`);
    proxy.refuse(false);
    settled.clear();
    waitOn(handles[0]!);
    await waitFor(() => proxy.heads().filter((h) => h.startsWith('GET /events?')).length >= 2, { message: 'a new event stream' });
    await ctx.docker.getContainer(handles[0]!.id).kill({ signal: 'SIGKILL' });
    await waitFor(() => settled.has(handles[0]!.id), { message: 'the wait after the outage to end with the kill' });
    assert.equal((settled.get(handles[0]!.id) as ExitStatus).signal, 'SIGKILL');
    assert.equal(watch.waiting, 0);
  });
});

describe('docker events parsing', () => {
  test('NDJSON split anywhere across chunks, blank and broken lines skipped', () => {
    const die = '{"status":"die","id":"abc","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"137","pm.process":"api","pm.instance":"i1","name":"pm-api"}},"scope":"local","time":1764200000,"timeNano":1764200000123456789}';
    const health = '{"Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"abc","Attributes":{}},"time":1764200001,"timeNano":1764200001000000001}';
    const text = `${die}\n\nnot json\n${health}\n{"Type":"container","Action":"exec_start: true","Actor":{"ID":"abc"}}\n`;
    for (const size of [1, 7, 64, text.length]) {
      const lines = new LineSplitter();
      const events: DockerEvent[] = [];
      for (let i = 0; i < text.length; i += size) for (const line of lines.push(text.slice(i, i + size))) {
        const event = parseEvent(line);
        if (event) events.push(event);
      }
      assert.deepEqual(
        events.map((e) => [e.action, e.id, e.exitCode, e.process, e.instance, e.health, e.timeNano]),
        [
          ['die', 'abc', 137, 'api', 'i1', undefined, 1764200000123456789n],
          ['health_status', 'abc', undefined, undefined, undefined, 'unhealthy', 1764200001000000001n],
        ],
        `chunks of ${size}`,
      );
    }
  });

  test('an exitCode attribute that is not a number is ignored; since keeps nanoseconds', () => {
    const event = parseEvent('{"Type":"container","Action":"die","Actor":{"ID":"x","Attributes":{"exitCode":"zero"}},"time":1,"timeNano":1000000005}');
    assert.equal(event?.exitCode, undefined);
    assert.equal(formatSince(1764200000000000001n), '1764200000.000000001');
  });
});

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
