// limitConcurrency: the bound holds and waiters start in call order, even when a new call arrives
// in the moment between one task finishing and the waiter it wakes starting.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { limitConcurrency } from '../../src/util/limit.js';

interface Probe {
  /** Task indexes in the order they started. */
  started: number[];
  /** Most tasks seen running at once. */
  maxRunning: number;
  /** Resolves once task `i` has started. */
  whenStarted(i: number): Promise<void>;
  /** Ends task `i` (it must have started). */
  finish(i: number): void;
}

/** Tasks whose end the test decides; each task's promise is the one the test resolves. */
function harness(): Probe & { task(i: number): () => Promise<void> } {
  const running = new Set<number>();
  const finishers = new Map<number, () => void>();
  const startWaiters = new Map<number, () => void>();
  const probe = {
    started: [] as number[],
    maxRunning: 0,
    whenStarted(i: number): Promise<void> {
      if (finishers.has(i)) return Promise.resolve();
      return new Promise<void>((resolve) => startWaiters.set(i, resolve));
    },
    finish(i: number): void {
      const end = finishers.get(i);
      assert.ok(end, `task ${i} has not started`);
      finishers.delete(i);
      running.delete(i);
      end();
    },
    task(i: number): () => Promise<void> {
      return () => {
        running.add(i);
        probe.maxRunning = Math.max(probe.maxRunning, running.size);
        probe.started.push(i);
        const done = new Promise<void>((resolve) => finishers.set(i, resolve));
        startWaiters.get(i)?.();
        return done;
      };
    },
  };
  return probe;
}

for (const limit of [1, 2]) {
  test(`limit ${limit}: a burst never runs more than ${limit} at once, and tasks start in call order`, async () => {
    const run = limitConcurrency(limit);
    const probe = harness();
    const calls: Promise<void>[] = [];
    let next = 0;
    const call = (): void => {
      calls.push(run(probe.task(next++)));
    };

    for (let i = 0; i < 3 * limit; i++) call();
    // End tasks in start order. Right after each end, a new call arrives in a microtask: it runs
    // after the finished task gave its slot back and before the woken waiter resumes.
    for (let i = 0; i < 10; i++) {
      await probe.whenStarted(i);
      probe.finish(i);
      queueMicrotask(call);
    }
    for (let i = 10; i < next; i++) {
      await probe.whenStarted(i);
      probe.finish(i);
    }
    await Promise.all(calls);

    assert.equal(next, 3 * limit + 10);
    assert.equal(probe.maxRunning, limit);
    assert.deepEqual(
      probe.started,
      Array.from({ length: next }, (_, i) => i),
    );
  });
}

test('a task that throws or rejects gives its slot to the next waiter', async () => {
  const run = limitConcurrency(1);
  const order: string[] = [];
  const results = await Promise.allSettled([
    run(() => {
      order.push('throws');
      throw new Error('sync');
    }),
    run(async () => {
      order.push('rejects');
      throw new Error('async');
    }),
    run(async () => {
      order.push('runs');
      return 'ok';
    }),
  ]);
  assert.deepEqual(order, ['throws', 'rejects', 'runs']);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'fulfilled'],
  );
});

test('a bound below 1 is refused, naming the value', () => {
  assert.throws(() => limitConcurrency(0), /at least 1, got 0/);
  assert.throws(() => limitConcurrency(Number.NaN), /got NaN/);
});
