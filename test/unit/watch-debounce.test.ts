// The manifest watcher's Debouncer on a fake clock: trailing wait, the max-wait cap, the settle
// flush that follows an early one, close(). No sleeps: time moves only through FakeClock.advance().
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakeClock } from '../../src/daemon/queue.js';
import { Debouncer, type DebouncerOptions } from '../../src/daemon/watch.js';

/** A Debouncer whose flushes are recorded as `time: keys`. */
function setup(options: Omit<DebouncerOptions, 'onFlush' | 'clock'>): { clock: FakeClock; debouncer: Debouncer; flushes: string[] } {
  const clock = new FakeClock();
  const flushes: string[] = [];
  const debouncer = new Debouncer({ ...options, clock, onFlush: (keys) => flushes.push(`${clock.now()}: ${keys.join(' ')}`) });
  return { clock, debouncer, flushes };
}

test('trailing: one flush, waitMs after the last add, with the keys deduplicated and sorted', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 1_000 });
  debouncer.add('b');
  clock.advance(30);
  debouncer.add('a');
  clock.advance(30);
  debouncer.add('b');
  assert.equal(debouncer.pending, 2);
  clock.advance(99);
  assert.deepEqual(flushes, [], 'still within waitMs of the last add (at 60)');
  clock.advance(1);
  assert.deepEqual(flushes, ['160: a b']);
  clock.advance(10_000);
  assert.deepEqual(flushes, ['160: a b'], 'one flush per burst');
  assert.equal(debouncer.pending, 0);
  assert.equal(clock.pendingTimers, 0);

  debouncer.add('c');
  clock.advance(100);
  assert.deepEqual(flushes, ['160: a b', '10260: c'], 'the next add starts a new burst');
});

test('one timer at a time, however many adds', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 1_000 });
  for (let i = 0; i < 500; i++) {
    debouncer.add(`k${i % 7}`);
    assert.ok(clock.pendingTimers <= 1, `${clock.pendingTimers} timers after add ${i}`);
    clock.advance(1);
  }
  clock.advance(100);
  assert.deepEqual(flushes, ['599: k0 k1 k2 k3 k4 k5 k6']);
});

test('max wait: adds every 50 ms flush every maxWaitMs, then once more when they stop', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 300 });
  for (let t = 0; t < 1_000; t += 50) {
    debouncer.add('a');
    clock.advance(50);
  }
  // The last add was at 950: quiet by 1050.
  clock.advance(1_000);
  assert.deepEqual(flushes, ['300: a', '600: a', '900: a', '1050: a']);
  assert.equal(clock.pendingTimers, 0);
});

test('a flush forced by maxWaitMs is followed by a settle flush of the same keys once quiet', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 200 });
  debouncer.add('a');
  clock.advance(90);
  debouncer.add('b');
  clock.advance(90);
  debouncer.add('a'); // last add at 180
  clock.advance(20);
  assert.deepEqual(flushes, ['200: a b'], 'forced at 200, although the last add is only 20 ms old');
  assert.equal(debouncer.pending, 2, 'the keys wait for the settle flush');
  clock.advance(79);
  assert.deepEqual(flushes, ['200: a b']);
  clock.advance(1);
  assert.deepEqual(flushes, ['200: a b', '280: a b'], 'flushed again once quiet for waitMs');
  clock.advance(1_000);
  assert.equal(flushes.length, 2, 'and that one is final');
});

test('settleMs longer than waitMs: a quick first flush, then a final one settleMs after the last add', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 0, maxWaitMs: 1_000, settleMs: 50 });
  debouncer.add('a');
  clock.advance(0);
  assert.deepEqual(flushes, ['0: a']);
  clock.advance(10);
  debouncer.add('b'); // during the settle wait: a new quick flush, both keys, and the settle wait restarts
  clock.advance(0);
  assert.deepEqual(flushes, ['0: a', '10: a b']);
  clock.advance(49);
  assert.equal(flushes.length, 2);
  clock.advance(1);
  assert.deepEqual(flushes, ['0: a', '10: a b', '60: a b']);
  clock.advance(1_000);
  assert.equal(flushes.length, 3);
  assert.equal(clock.pendingTimers, 0);
});

test('close(): the pending burst is dropped, its timer cancelled, later adds ignored; idempotent', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 1_000 });
  debouncer.add('a');
  clock.advance(50);
  debouncer.close();
  assert.equal(clock.pendingTimers, 0);
  assert.equal(debouncer.pending, 0);
  debouncer.add('b');
  debouncer.close();
  clock.advance(10_000);
  assert.deepEqual(flushes, []);
  assert.equal(clock.pendingTimers, 0);
});

test('close() during the settle wait drops the settle flush', () => {
  const { clock, debouncer, flushes } = setup({ waitMs: 100, maxWaitMs: 100 });
  debouncer.add('a');
  clock.advance(50);
  debouncer.add('a');
  clock.advance(50);
  assert.deepEqual(flushes, ['100: a']);
  debouncer.close();
  clock.advance(1_000);
  assert.deepEqual(flushes, ['100: a']);
});

test('onFlush may add (a new burst) and may throw without wedging the debouncer', () => {
  const clock = new FakeClock();
  const flushes: string[][] = [];
  const debouncer = new Debouncer({
    waitMs: 10,
    maxWaitMs: 100,
    clock,
    onFlush: (keys) => {
      flushes.push(keys);
      if (keys.includes('again')) debouncer.add('follow-up');
      if (keys.includes('boom')) throw new Error('boom');
    },
  });
  debouncer.add('again');
  clock.advance(10);
  clock.advance(10);
  assert.deepEqual(flushes, [['again'], ['follow-up']]);
  debouncer.add('boom');
  assert.throws(() => clock.advance(10), /boom/);
  debouncer.add('after');
  clock.advance(10);
  assert.deepEqual(flushes, [['again'], ['follow-up'], ['boom'], ['after']]);
});

test('options are checked, naming the bad value', () => {
  const onFlush = (): void => {};
  assert.throws(() => new Debouncer({ waitMs: -1, maxWaitMs: 10, onFlush }), /waitMs must be a finite number of milliseconds ≥ 0, got -1/);
  assert.throws(() => new Debouncer({ waitMs: Number.NaN, maxWaitMs: 10, onFlush }), /waitMs .* got NaN/);
  assert.throws(() => new Debouncer({ waitMs: 100, maxWaitMs: 50, onFlush }), /maxWaitMs \(50\) must be at least waitMs \(100\)/);
  assert.throws(() => new Debouncer({ waitMs: 100, maxWaitMs: 500, settleMs: 50, onFlush }), /settleMs \(50\) must be at least waitMs \(100\)/);
  const debouncer = new Debouncer({ waitMs: 100, maxWaitMs: 1_000, onFlush });
  assert.equal(debouncer.settleMs, 100, 'settleMs defaults to waitMs');
  debouncer.close();
});
