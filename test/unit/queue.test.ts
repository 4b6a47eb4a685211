// The daemon's work queue: dedup, one pass per key at a time, delayed adds on a fake clock, rate
// limiter sequences and shutdown. No sleeps: time moves only through FakeClock.advance().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExponentialRateLimiter, FakeClock, WorkQueue } from '../../src/daemon/queue.js';

/** Lets every pending promise callback run (a macrotask comes only after the microtask queue drains). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('fake clock: timers fire in due order (ties in set order) at their own time; cancel works', () => {
  const clock = new FakeClock();
  const fired: string[] = [];
  clock.setTimer(() => fired.push(`b@${clock.now()}`), 20);
  clock.setTimer(() => fired.push(`a@${clock.now()}`), 10);
  clock.setTimer(() => fired.push(`c@${clock.now()}`), 20);
  const cancel = clock.setTimer(() => fired.push('cancelled'), 5);
  clock.setTimer(() => clock.setTimer(() => fired.push(`nested@${clock.now()}`), 5), 12);
  cancel();
  clock.advance(19);
  assert.deepEqual(fired, ['a@10', 'nested@17'], 'a timer set by a firing timer fires within the same advance');
  clock.advance(1);
  assert.deepEqual(fired, ['a@10', 'nested@17', 'b@20', 'c@20']);
  assert.equal(clock.now(), 20);
  assert.equal(clock.pendingTimers, 0);
  assert.throws(() => clock.advance(-1), /advance: ms must be a finite number ≥ 0, got -1/);
});

test('add: a repeated key waits once; keys come out in arrival order', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  for (const key of ['a', 'b', 'a', 'a', 'c', 'b']) queue.add(key);
  assert.equal(queue.len(), 3);
  assert.deepEqual(queue.counters, { adds: 3, deduplicated: 3, retries: 0 });
  assert.deepEqual([await queue.get(), await queue.get(), await queue.get()], ['a', 'b', 'c']);
  assert.equal(queue.len(), 0);
  assert.equal(queue.inProgress(), 3);
});

test('add during processing: not handed out again until done, then exactly once more', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  queue.add('a');
  assert.equal(await queue.get(), 'a');
  queue.add('a');
  queue.add('a');
  assert.equal(queue.len(), 0, 'a key in progress is not queued a second time');
  let second: string | undefined;
  void queue.get().then((key) => (second = key));
  await settle();
  assert.equal(second, undefined, 'a second worker does not get the key in progress');
  queue.done('a');
  await settle();
  assert.equal(second, 'a');
  queue.done('a');
  assert.equal(queue.len(), 0);
  assert.equal(queue.inProgress(), 0);
  assert.deepEqual(queue.counters, { adds: 2, deduplicated: 1, retries: 0 });
});

test('many workers, bursts of adds: a key is never in two passes at once, and no add is lost', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  const inFlight = new Map<string, number>();
  const passes = new Map<string, number>();
  let maxInFlight = 0;
  const gates: (() => void)[] = [];
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const now = (inFlight.get(key) ?? 0) + 1;
      inFlight.set(key, now);
      maxInFlight = Math.max(maxInFlight, now);
      passes.set(key, (passes.get(key) ?? 0) + 1);
      await new Promise<void>((resolve) => gates.push(resolve)); // held until the test lets it go
      inFlight.set(key, now - 1);
      queue.done(key);
    }
  };
  const workers = Array.from({ length: 4 }, worker);
  for (let round = 0; round < 5; round++) {
    for (const key of ['a', 'b', 'a', 'c', 'a', 'b']) queue.add(key);
    await settle();
    // Re-add while in progress: each must cause exactly one more pass after the current one.
    for (const key of ['a', 'b', 'c']) queue.add(key);
    for (let i = 0; i < 3; i++) {
      for (const open of gates.splice(0)) open();
      await settle();
    }
  }
  await queue.shutdown();
  await Promise.all(workers);
  assert.equal(maxInFlight, 1);
  // Per round: one pass for the burst, one for the re-add during processing.
  assert.deepEqual(Object.fromEntries(passes), { a: 10, b: 10, c: 10 });
});

test('addAfter: fires at the due time, not before', () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  queue.addAfter('a', 100);
  assert.equal(queue.delayed(), 1);
  clock.advance(99);
  assert.equal(queue.len(), 0);
  clock.advance(1);
  assert.equal(queue.len(), 1);
  assert.equal(queue.delayed(), 0);
});

test('addAfter: the earliest due time wins, whichever call came first', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  const handedOutAt: number[] = [];
  const take = async (): Promise<void> => {
    while (queue.len() > 0) {
      const key = await queue.get();
      handedOutAt.push(clock.now());
      queue.done(key as string);
    }
  };

  queue.addAfter('a', 100);
  queue.addAfter('a', 30); // earlier: replaces
  queue.addAfter('a', 60); // later: ignored
  assert.equal(clock.pendingTimers, 1);
  for (let t = 0; t < 200; t += 10) {
    clock.advance(10);
    await take();
  }
  assert.deepEqual(handedOutAt, [30]);
  assert.equal(queue.counters.deduplicated, 1);
});

test('add cancels a pending addAfter; addAfter of a waiting key is ignored', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  queue.addAfter('a', 100);
  queue.add('a');
  assert.equal(queue.len(), 1);
  assert.equal(clock.pendingTimers, 0, 'the add runs the key now; the timer is gone');
  queue.addAfter('a', 50);
  assert.equal(clock.pendingTimers, 0, 'already waiting: it runs sooner than any delay');
  queue.done((await queue.get()) as string);
  clock.advance(1000);
  assert.equal(queue.len(), 0, 'nothing fires later');
});

test('addAfter during processing: a timer that fires mid-pass queues the key after done', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  queue.add('a');
  await queue.get();
  queue.addAfter('a', 10);
  clock.advance(10);
  assert.equal(queue.len(), 0);
  queue.done('a');
  assert.equal(queue.len(), 1);
});

test('addAfter: ≤ 0 adds at once; a non-finite delay is refused with the value', () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  queue.addAfter('a', 0);
  queue.addAfter('b', -5);
  assert.equal(queue.len(), 2);
  assert.throws(() => queue.addAfter('c', Number.NaN), /addAfter\("c"\): delayMs must be a finite number, got NaN/);
});

test('rate limiter: 5, 10, 20 … doubling to the cap, per key; forget starts over', () => {
  const limiter = new ExponentialRateLimiter({ baseDelayMs: 5, maxDelayMs: 30_000 });
  assert.deepEqual(
    Array.from({ length: 16 }, () => limiter.when('a')),
    [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 30000, 30000, 30000],
  );
  assert.equal(limiter.numRequeues('a'), 16);
  assert.deepEqual([limiter.when('b'), limiter.when('b')], [5, 10], 'keys back off independently');
  limiter.forget('a');
  assert.equal(limiter.numRequeues('a'), 0);
  assert.deepEqual([limiter.when('a'), limiter.when('a')], [5, 10]);
  assert.equal(limiter.numRequeues('b'), 2);
});

test('rate limiter: defaults 5 ms → 30 s; the cap holds for any count; bad options name the value', () => {
  const limiter = new ExponentialRateLimiter();
  assert.deepEqual([limiter.baseDelayMs, limiter.maxDelayMs], [5, 30_000]);
  for (let i = 0; i < 2000; i++) limiter.when('a');
  assert.equal(limiter.when('a'), 30_000);
  assert.throws(() => new ExponentialRateLimiter({ baseDelayMs: 0 }), /baseDelayMs must be a finite number of milliseconds > 0, got 0/);
  assert.throws(() => new ExponentialRateLimiter({ baseDelayMs: 100, maxDelayMs: 50 }), /maxDelayMs \(50\) must be at least baseDelayMs \(100\)/);
});

test('addRateLimited: each retry waits longer until forget', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock, rateLimiter: new ExponentialRateLimiter({ baseDelayMs: 5, maxDelayMs: 1000 }) });
  const dueAfter: number[] = [];
  for (let i = 0; i < 4; i++) {
    const start = clock.now();
    queue.addRateLimited('a');
    while (queue.len() === 0) clock.advance(1);
    dueAfter.push(clock.now() - start);
    queue.done((await queue.get()) as string);
  }
  assert.deepEqual(dueAfter, [5, 10, 20, 40]);
  assert.equal(queue.numRequeues('a'), 4);
  assert.equal(queue.counters.retries, 4);
  queue.forget('a');
  assert.equal(queue.numRequeues('a'), 0);
});

test('shutdown: wakes a waiting get, drops waiting keys and timers, same promise every time', async () => {
  const clock = new FakeClock();
  const queue = new WorkQueue({ clock });
  const waiting = queue.get();
  const first = queue.shutdown();
  assert.equal(await waiting, undefined);
  assert.equal(queue.shutdown(), first);
  await first;

  const other = new WorkQueue({ clock });
  other.add('a');
  other.add('b');
  other.addAfter('c', 10);
  void other.shutdown();
  assert.equal(await other.get(), undefined, 'no new work after shutdown, even with keys waiting');
  assert.equal(other.len(), 0);
  assert.equal(clock.pendingTimers, 0);
  other.add('d');
  other.addAfter('e', 5);
  other.addRateLimited('f');
  assert.equal(other.len() + other.delayed() + clock.pendingTimers, 0, 'adds after shutdown are ignored');
  assert.equal(other.numRequeues('f'), 0);
});

test('shutdown resolves once the keys in progress are done; done does not requeue', async () => {
  const queue = new WorkQueue({ clock: new FakeClock() });
  queue.add('a');
  queue.add('b');
  await queue.get();
  await queue.get();
  queue.add('a'); // dirty while in progress
  let closed = false;
  void queue.shutdown().then(() => (closed = true));
  await settle();
  assert.equal(closed, false);
  queue.done('a');
  await settle();
  assert.equal(closed, false, 'b is still in progress');
  assert.equal(queue.len(), 0, 'the dirty key is not queued again after shutdown');
  queue.done('b');
  await settle();
  assert.equal(closed, true);
  assert.equal(queue.shuttingDown, true);
});
