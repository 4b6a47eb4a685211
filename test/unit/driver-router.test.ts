// The driver router: requests go to the driver their manifest names, handles to the driver that
// made them; a driver is loaded on first use only, and a failed load is tried again next time.
// The drivers here are fakes that record calls: routing is what is under test, not the drivers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ExitStatus, Observation, ProcessHandle, StartRequest } from '../../src/drivers/driver.js';
import { DriverRouter, type ProcessDriver } from '../../src/drivers/router.js';
import { manifest } from '../support/manifests.js';

function recorder(name: string, calls: string[]): ProcessDriver {
  const exit: ExitStatus = { code: 0, signal: null, at: 0, known: true };
  return {
    check: async () => void calls.push(`${name}.check`),
    start: async (request: StartRequest): Promise<ProcessHandle> => {
      calls.push(`${name}.start ${request.name}`);
      return name === 'exec'
        ? { driver: 'exec', pid: 1, pgid: 1, startTime: '1', bootId: 'b' }
        : { driver: 'docker', id: 'c1', name: `pm-${request.name}`, instance: 'i', startedAt: 't', pid: 2 };
    },
    inspect: async (): Promise<Observation> => {
      calls.push(`${name}.inspect`);
      return { state: 'missing' };
    },
    stop: async () => {
      calls.push(`${name}.stop`);
      return { forced: false, wasRunning: false };
    },
    waitExit: async () => exit,
    remove: async () => void calls.push(`${name}.remove`),
  };
}

const request = (driver: 'exec' | 'docker'): StartRequest => {
  const m = manifest({ name: 'p', command: ['x'] });
  return { name: 'p', manifest: { ...m, spec: { ...m.spec, driver } }, env: {}, logs: { stdout: '/dev/null', stderr: '/dev/null' } };
};

test('requests by spec.driver, handles by handle.driver; a driver is loaded on its first use only', async () => {
  const calls: string[] = [];
  const loaded: string[] = [];
  const router = new DriverRouter({
    exec: async () => (loaded.push('exec'), recorder('exec', calls)),
    docker: async () => (loaded.push('docker'), recorder('docker', calls)),
  });
  const execHandle = await router.start(request('exec'));
  assert.deepEqual(loaded, ['exec'], 'docker not loaded for an exec process');
  const dockerHandle = await router.start(request('docker'));
  await router.inspect(execHandle);
  await router.stop(dockerHandle, { signal: 'SIGTERM', gracePeriodMs: 0 });
  await router.remove(dockerHandle);
  await router.start(request('docker'));
  assert.deepEqual(loaded, ['exec', 'docker'], 'each loaded once');
  assert.deepEqual(calls, ['exec.start p', 'docker.start p', 'exec.inspect', 'docker.stop', 'docker.remove', 'docker.start p']);
});

test('a driver that fails to load is an error for its processes only, and is tried again at the next call', async () => {
  let attempts = 0;
  const router = new DriverRouter({
    exec: async () => recorder('exec', []),
    docker: async () => {
      attempts++;
      if (attempts === 1) throw new Error('cannot load dockerode');
      return recorder('docker', []);
    },
  });
  await assert.rejects(router.start(request('docker')), /cannot load dockerode/);
  assert.equal((await router.start(request('exec'))).driver, 'exec');
  assert.equal((await router.start(request('docker'))).driver, 'docker');
  assert.equal(attempts, 2);
});

test('a driver this pm does not have is a clear error', async () => {
  const router = new DriverRouter({ exec: async () => recorder('exec', []) });
  await assert.rejects(router.start(request('docker')), /driver docker is not available in this pm/);
});

test('back-end health: an unreachable engine degrades its driver alone, told once; the first call that succeeds clears it; a bad process does not count', async () => {
  // A fake for a fault the suite cannot cause for real without stopping the engine every test shares.
  let engineDown = true;
  const docker: ProcessDriver = {
    ...recorder('docker', []),
    inspect: async (handle: ProcessHandle): Promise<Observation> => {
      if (engineDown) throw Object.assign(new Error('the Docker Engine does not answer at /var/run/docker.sock'), { code: 'E_DOCKER_UNREACHABLE' });
      if (handle.driver === 'docker' && handle.id === 'bad') throw Object.assign(new Error('no such image'), { code: 'E_DOCKER_IMAGE_NOT_FOUND' });
      return { state: 'missing' };
    },
  };
  const router = new DriverRouter({ exec: () => Promise.resolve(recorder('exec', [])), docker: () => Promise.resolve(docker) });
  const changes: string[] = [];
  router.watchBackends((health, before) => changes.push(`${health.driver} ${before?.up ?? '-'} → ${health.up}`));
  const container: ProcessHandle = { driver: 'docker', id: 'c1', name: 'pm-p', instance: 'i', startedAt: 't', pid: 2 };

  await router.inspect({ driver: 'exec', pid: 1, pgid: 1, startTime: '1', bootId: 'b' });
  await assert.rejects(router.inspect(container), /does not answer/);
  await assert.rejects(router.inspect(container), /does not answer/);
  const degraded = router.backends();
  assert.deepEqual(
    degraded.map((b) => [b.driver, b.up, b.lastError]),
    [
      ['exec', true, undefined],
      ['docker', false, 'E_DOCKER_UNREACHABLE: the Docker Engine does not answer at /var/run/docker.sock'],
    ],
  );

  engineDown = false;
  await assert.rejects(router.inspect({ ...container, id: 'bad' }), /no such image/);
  assert.equal(router.backends()[1]?.up, false, 'a failure of one process says nothing about the engine');
  await router.inspect(container);
  assert.equal(router.backends()[1]?.up, true);
  assert.deepEqual(changes, ['docker - → false', 'docker false → true']);
});

test('back-end health: a refused or slow start concerns its unit alone; the same refusal of a state read degrades the driver', async () => {
  const denied = (): Error => Object.assign(new Error('Interactive authentication required'), { code: 'E_SYSTEMD_ACCESS_DENIED' });
  const systemd: ProcessDriver = {
    ...recorder('systemd', []),
    start: async () => {
      throw denied();
    },
    inspect: async () => {
      throw denied();
    },
  };
  const router = new DriverRouter({ systemd: () => Promise.resolve(systemd) });
  const m = manifest({ name: 'p', command: ['x'] });
  await assert.rejects(router.start({ name: 'p', manifest: { ...m, spec: { ...m.spec, driver: 'systemd' } }, env: {}, logs: { stdout: '/dev/null', stderr: '/dev/null' } }), /authentication/);
  assert.deepEqual(router.backends().map((b) => b.up), [true]);
  await assert.rejects(router.inspect({ driver: 'systemd', unit: 'pm-p.service', owned: true }), /authentication/);
  assert.deepEqual(router.backends().map((b) => b.up), [false]);
});
