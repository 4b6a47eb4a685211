// The reconcile loop: each outcome mapped to its queue call and counter, retries with growing
// delays, terminal errors dropped, requeueAfter, lifecycle and a stop that waits. No sleeps.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Controller, TerminalError, type Reconcile } from '../../src/daemon/controller.js';
import { ExponentialRateLimiter, FakeClock, WorkQueue } from '../../src/daemon/queue.js';

/** Lets every pending promise callback run (a macrotask comes only after the microtask queue drains). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A controller on a fake clock that records when (in fake ms) each key was reconciled. */
function setup(reconcile: Reconcile, workers = 1) {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock, rateLimiter: new ExponentialRateLimiter({ baseDelayMs: 5, maxDelayMs: 1000 }) });
  const calls: string[] = [];
  const errors: string[] = [];
  const controller = new Controller({
    queue,
    workers,
    reconcile: (key, signal) => {
      calls.push(`${key}@${clock.now()}`);
      return reconcile(key, signal);
    },
    onError: (key, error) => errors.push(`${key}: ${(error as Error).message}`),
  });
  /** Advances fake time 1 ms at a time, letting workers run after each step. */
  const run = async (ms: number): Promise<void> => {
    await settle();
    for (let i = 0; i < ms; i++) {
      clock.advance(1);
      await settle();
    }
  };
  return { clock, queue, controller, calls, errors, run };
}

const zero = { reconciles: { success: 0, error: 0, terminal: 0, requeue: 0 } };

test('counters: every label starts at 0, before start', () => {
  const { controller } = setup(async () => ({}));
  assert.deepEqual(controller.counters, zero);
  assert.equal(controller.state, 'created');
});

test('outcomes: success, error, terminal, requeueAfter each map to their queue call and label', async () => {
  const { controller, queue, calls, errors, run } = setup(async (key) => {
    if (key === 'fail') throw new Error('driver unreachable');
    if (key === 'bad') throw new TerminalError('manifest names an unknown driver');
    if (key === 'later') return { requeueAfterMs: 50 };
    return {};
  });
  controller.start();
  for (const key of ['ok', 'fail', 'bad', 'later']) queue.add(key);
  await run(0);
  assert.deepEqual(controller.counters, { reconciles: { success: 1, error: 1, terminal: 1, requeue: 1 } });
  assert.deepEqual(errors, ['fail: driver unreachable', 'bad: manifest names an unknown driver']);
  assert.equal(queue.numRequeues('fail'), 1, 'error → addRateLimited');
  assert.equal(queue.delayed(), 2, 'fail (rate limited) and later (requeueAfter) are on timers; ok and bad are not');
  await run(50);
  assert.deepEqual(calls, ['ok@0', 'fail@0', 'bad@0', 'later@0', 'fail@5', 'fail@15', 'fail@35', 'later@50']);
  await controller.stop();
});

test('a reconcile that throws is retried with growing delays; success forgets the count', async () => {
  let failures = 5;
  const { controller, queue, calls, run } = setup(async () => {
    if (failures-- > 0) throw new Error('not yet');
    return {};
  });
  controller.start();
  queue.add('api');
  await run(1000);
  // Delays between attempts: 5, 10, 20, 40, 80.
  assert.deepEqual(calls, ['api@0', 'api@5', 'api@15', 'api@35', 'api@75', 'api@155']);
  assert.deepEqual(controller.counters, { reconciles: { success: 1, error: 5, terminal: 0, requeue: 0 } });
  assert.equal(queue.numRequeues('api'), 0);
  await controller.stop();
});

test('a TerminalError is reported and counted once, never retried', async () => {
  const { controller, queue, calls, errors, run } = setup(async () => {
    throw new TerminalError('invalid spec');
  });
  controller.start();
  queue.add('api');
  await run(5000);
  assert.deepEqual(calls, ['api@0']);
  assert.deepEqual(errors, ['api: invalid spec']);
  assert.equal(queue.delayed(), 0);
  assert.deepEqual(controller.counters, { reconciles: { success: 0, error: 0, terminal: 1, requeue: 0 } });
  queue.add('api');
  await run(0);
  assert.deepEqual(calls, ['api@0', 'api@5000'], 'a new trigger reconciles it again');
  await controller.stop();
});

test('requeueAfter re-queues at that delay and ends the retry chain of earlier failures', async () => {
  const script = ['fail', 'fail', 'requeue', 'fail', 'ok'];
  const { controller, queue, calls, run } = setup(async () => {
    const step = script.shift();
    if (step === 'fail') throw new Error('flaky');
    return step === 'requeue' ? { requeueAfterMs: 100 } : {};
  });
  controller.start();
  queue.add('db');
  await run(15);
  assert.equal(queue.numRequeues('db'), 0, 'forgotten by the requeue at 15');
  await run(1000);
  // Retries 5 and 10 ms apart, the requeue 100 ms later, then a fresh chain: 5 ms again, not 20.
  assert.deepEqual(calls, ['db@0', 'db@5', 'db@15', 'db@115', 'db@120']);
  assert.deepEqual(controller.counters, { reconciles: { success: 1, error: 3, terminal: 0, requeue: 1 } });
  await controller.stop();
});

test('a requeueAfterMs that is not a finite number ≥ 0 is a terminal error naming the value', async () => {
  const { controller, queue, errors } = setup(async () => ({ requeueAfterMs: -1 }));
  controller.start();
  queue.add('api');
  await settle();
  assert.deepEqual(errors, ['api: reconcile("api") returned requeueAfterMs -1; expected a finite number of ms ≥ 0']);
  assert.equal(controller.counters.reconciles.terminal, 1);
  await controller.stop();
});

test('with several workers a key is never reconciled twice at once', async () => {
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;
  let parallel = 0;
  let maxParallel = 0;
  const gates: (() => void)[] = [];
  const { controller, queue, calls } = setup(async (key) => {
    inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    maxInFlight = Math.max(maxInFlight, inFlight.get(key) ?? 0);
    maxParallel = Math.max(maxParallel, ++parallel);
    await new Promise<void>((resolve) => gates.push(resolve));
    parallel--;
    inFlight.set(key, (inFlight.get(key) ?? 0) - 1);
    return {};
  }, 3);
  controller.start();
  for (const key of ['a', 'b', 'a', 'c', 'a', 'd']) queue.add(key);
  await settle();
  for (const key of ['a', 'a', 'b']) queue.add(key); // during their passes
  for (let i = 0; i < 4; i++) {
    for (const open of gates.splice(0)) open();
    await settle();
  }
  assert.equal(maxInFlight, 1);
  assert.equal(maxParallel, 3);
  assert.deepEqual(calls.map((c) => c.split('@')[0]).sort(), ['a', 'a', 'b', 'b', 'c', 'd']);
  await controller.stop();
});

test('stop: aborts the signal, waits for the in-flight reconcile, starts nothing new; idempotent', async () => {
  let release = (): void => {};
  let seen: AbortSignal | undefined;
  const { controller, queue, calls } = setup(async (_key, signal) => {
    seen = signal;
    await new Promise<void>((resolve) => (release = resolve));
    return {};
  });
  controller.start();
  assert.equal(controller.state, 'running');
  queue.add('a');
  await settle();
  queue.add('b');
  queue.add('a');

  const stopping = controller.stop();
  assert.equal(controller.stop(), stopping);
  assert.equal(controller.state, 'stopping');
  assert.equal(seen?.aborted, true);
  let stopped = false;
  void stopping.then(() => (stopped = true));
  await settle();
  assert.equal(stopped, false, 'stop waits for the reconcile in flight');

  release();
  await stopping;
  assert.equal(controller.state, 'stopped');
  assert.deepEqual(calls, ['a@0'], 'queued keys are dropped, not reconciled during stop');
  assert.deepEqual(controller.counters, { reconciles: { success: 1, error: 0, terminal: 0, requeue: 0 } });
  assert.throws(() => controller.start(), /start\(\) in state 'stopped'; a controller starts once/);
});

test('stop: a key handed to a worker in the same tick as stop() is not reconciled', async () => {
  const { controller, queue, calls } = setup(async () => ({}));
  controller.start();
  await settle(); // the worker now waits in get()
  queue.add('a'); // handed to the waiting worker; it resumes only after this tick
  await controller.stop();
  assert.deepEqual(calls, []);
  assert.equal(queue.inProgress(), 0, 'the key was still marked done');
});

test('lifecycle: stop before start ends stopped; start twice and bad worker counts are refused', async () => {
  const idle = setup(async () => ({})).controller;
  await idle.stop();
  assert.equal(idle.state, 'stopped');
  assert.equal(idle.queue.shuttingDown, true);

  const { controller } = setup(async () => ({}));
  controller.start();
  assert.throws(() => controller.start(), /start\(\) in state 'running'/);
  await controller.stop();

  const reconcile: Reconcile = async () => ({});
  assert.throws(() => new Controller({ reconcile, onError: () => {}, workers: 0 }), /workers must be an integer of at least 1, got 0/);
  assert.throws(() => new Controller({ reconcile, onError: () => {}, workers: 1.5 }), /got 1\.5/);
});

test('a throwing onError does not stop the worker', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  const seen: string[] = [];
  const controller = new Controller({
    queue,
    reconcile: async (key) => {
      seen.push(key);
      throw new TerminalError('nope');
    },
    onError: () => {
      throw new Error('logger broke');
    },
  });
  controller.start();
  queue.add('a');
  await settle();
  queue.add('b');
  await settle();
  assert.deepEqual(seen, ['a', 'b']);
  await controller.stop();
});
