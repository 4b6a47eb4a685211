// EventLog: the bounded rings (50 per process, 100 for the daemon), what list() returns for a
// process and for everything, limits, forget() after a delete, and subscribers. Times are made up:
// the log never reads the clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DaemonEvent, EventType } from '../../src/daemon/api.js';
import { EventLog } from '../../src/daemon/events.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** An event `ms` after T0; the message names it so assertions can compare short strings. */
function ev(ms: number, message: string, process?: string, type: EventType = 'Started'): DaemonEvent {
  return { time: new Date(T0 + ms).toISOString(), type, severity: 'normal', message, ...(process !== undefined && { process }) };
}

const messages = (events: DaemonEvent[]): string[] => events.map((e) => e.message);

test('a process ring keeps its newest 50 events; other processes keep theirs', () => {
  const log = new EventLog();
  log.add(ev(0, 'b0', 'b'));
  for (let i = 0; i < 60; i++) log.add(ev(i + 1, `a${i}`, 'a'));

  const a = log.list('a');
  assert.equal(a.length, 50);
  assert.deepEqual(messages(a), Array.from({ length: 50 }, (_, i) => `a${i + 10}`), 'the 10 oldest were dropped');
  assert.deepEqual(messages(log.list('b')), ['b0'], 'a crash-looping process does not push out another one');
});

test('the daemon ring keeps its newest 100 events, daemon-wide process events included', () => {
  const log = new EventLog();
  log.add(ev(0, 'deleted-x', 'x', 'Deleted'), { daemonWide: true });
  for (let i = 0; i < 119; i++) log.add(ev(i + 1, `d${i}`));

  const all = log.list(undefined, 1000);
  assert.equal(all.length, 100);
  assert.deepEqual(messages(all), Array.from({ length: 100 }, (_, i) => `d${i + 19}`), 'the 20 oldest (the Deleted first) were dropped');
  assert.deepEqual(log.list('x'), [], 'the daemon-wide event was in the daemon ring, and went with it');
});

test('process events do not count against the daemon ring', () => {
  const log = new EventLog();
  log.add(ev(0, 'config'));
  for (let i = 0; i < 300; i++) log.add(ev(i + 1, `a${i}`, 'a'));

  const all = log.list(undefined, 1000);
  assert.deepEqual(messages(all).slice(0, 1), ['config']);
  assert.equal(all.length, 51, 'one daemon event and the process ring of 50');
});

test('list(process): its own events and the daemon-wide ones naming it, by time, newest last', () => {
  const log = new EventLog();
  log.add(ev(10, 'a-started', 'a'));
  log.add(ev(20, 'manifests read'));
  log.add(ev(30, 'b-started', 'b'));
  log.add(ev(40, 'a-deleted', 'a', 'Deleted'), { daemonWide: true });
  log.add(ev(50, 'b-deleted', 'b', 'Deleted'), { daemonWide: true });
  // Added out of time order: list() orders by time, not by arrival.
  log.add(ev(35, 'a-exited', 'a', 'Exited'));

  assert.deepEqual(messages(log.list('a')), ['a-started', 'a-exited', 'a-deleted']);
  assert.deepEqual(messages(log.list('b')), ['b-started', 'b-deleted']);
  assert.deepEqual(log.list('nobody'), []);
  assert.deepEqual(
    log.list('a').map((e) => e.process),
    ['a', 'a', 'a'],
    'no daemon event without a process, and none about another process',
  );
});

test('list(process): limit keeps the newest events', () => {
  const log = new EventLog();
  for (let i = 0; i < 5; i++) log.add(ev(i, `a${i}`, 'a'));
  log.add(ev(5, 'a-deleted', 'a', 'Deleted'), { daemonWide: true });

  assert.deepEqual(messages(log.list('a', 2)), ['a4', 'a-deleted']);
  assert.deepEqual(messages(log.list('a', 1)), ['a-deleted']);
  assert.equal(log.list('a', 6).length, 6, 'exactly the size');
  assert.equal(log.list('a', 1000).length, 6, 'larger than the size: everything');
});

test('list(): limit keeps the newest events; the default is 100', () => {
  const log = new EventLog();
  for (let i = 0; i < 100; i++) log.add(ev(2 * i, `d${i}`));
  for (let i = 0; i < 50; i++) log.add(ev(2 * i + 101, `a${i}`, 'a'));

  assert.equal(log.list().length, 100);
  assert.deepEqual(messages(log.list()).slice(0, 2), ['d50', 'a0'], 'the newest 100 of 150');
  assert.deepEqual(messages(log.list(undefined, 3)), ['a48', 'd99', 'a49']);
  assert.equal(log.list(undefined, 1000).length, 150);
});

test(
  'list: a limit of 0 or below returns no events',
  () => {
    const log = new EventLog();
    log.add(ev(0, 'a0', 'a'));
    log.add(ev(1, 'd0'));

    assert.deepEqual(log.list('a', 0), []);
    assert.deepEqual(log.list(undefined, 0), []);
    assert.deepEqual(log.list('a', -1), []);
    assert.deepEqual(log.list(undefined, -5), []);
  },
);

test('list(): every ring merged by time, newest last', () => {
  const log = new EventLog();
  log.add(ev(30, 'a30', 'a'));
  log.add(ev(10, 'd10'));
  log.add(ev(20, 'b20', 'b'));
  log.add(ev(40, 'b-deleted', 'b', 'Deleted'), { daemonWide: true });
  log.add(ev(5, 'a5', 'a'));

  assert.deepEqual(messages(log.list()), ['a5', 'd10', 'b20', 'a30', 'b-deleted']);
});

test('list: events of the same millisecond in one ring keep the order they were added in', () => {
  const log = new EventLog();
  for (const message of ['exited', 'restarting', 'started', 'ready']) log.add(ev(7, message, 'a'));
  for (const message of ['m1', 'm2', 'm3']) log.add(ev(7, message));

  assert.deepEqual(messages(log.list('a')), ['exited', 'restarting', 'started', 'ready']);
  const all = messages(log.list());
  assert.deepEqual(
    all.filter((m) => m.startsWith('m')),
    ['m1', 'm2', 'm3'],
  );
  assert.deepEqual(
    all.filter((m) => !m.startsWith('m')),
    ['exited', 'restarting', 'started', 'ready'],
  );
});

test(
  'list: events of the same millisecond in different rings keep the order they were added in',
  () => {
    const log = new EventLog();
    // The supervisor's delete: forget the ring, then the last word goes to the daemon ring.
    log.add(ev(7, 'started', 'a'));
    log.forget('a');
    log.add(ev(7, 'deleted', 'a', 'Deleted'), { daemonWide: true });
    // Re-created within the same millisecond.
    log.add(ev(7, 'started again', 'a'));
    log.add(ev(7, 'manifests read'));

    assert.deepEqual(messages(log.list('a')), ['deleted', 'started again']);
    assert.deepEqual(messages(log.list()), ['deleted', 'started again', 'manifests read']);
  },
);

test('forget: drops the process ring; a daemon-wide event about it stays listable, also added after', () => {
  const log = new EventLog();
  log.add(ev(0, 'a-started', 'a'));
  log.add(ev(1, 'a-exited', 'a', 'Exited'));
  log.add(ev(2, 'b-started', 'b'));
  log.forget('a');
  log.add(ev(3, 'a-deleted', 'a', 'Deleted'), { daemonWide: true });

  assert.deepEqual(messages(log.list('a')), ['a-deleted']);
  assert.deepEqual(messages(log.list()), ['b-started', 'a-deleted']);
  assert.deepEqual(messages(log.list('b')), ['b-started'], 'other processes keep their events');

  log.forget('a');
  assert.deepEqual(messages(log.list('a')), ['a-deleted'], 'forget does not touch the daemon ring');
  log.forget('never-seen');

  log.add(ev(4, 'a-again', 'a'));
  assert.deepEqual(messages(log.list('a')), ['a-deleted', 'a-again'], 'a re-created process starts a fresh ring');
});

test('subscribe: every added event, in order, whichever ring it goes to; unsubscribe stops it', () => {
  const log = new EventLog();
  const first: string[] = [];
  const second: string[] = [];
  const unsubscribeFirst = log.subscribe((e) => first.push(e.message));
  const unsubscribeSecond = log.subscribe((e) => second.push(e.message));

  log.add(ev(0, 'a0', 'a'));
  log.add(ev(1, 'd0'));
  log.add(ev(2, 'a-deleted', 'a', 'Deleted'), { daemonWide: true });
  unsubscribeFirst();
  log.add(ev(3, 'after-first'));
  unsubscribeSecond();
  log.add(ev(4, 'after-both', 'b'));

  assert.deepEqual(first, ['a0', 'd0', 'a-deleted']);
  assert.deepEqual(second, ['a0', 'd0', 'a-deleted', 'after-first']);
  unsubscribeFirst();
  assert.equal(log.list().length, 5, 'unsubscribing has no effect on what is kept');
});

test('subscribe: a listener sees events that the ring then drops, and the event as added', () => {
  const log = new EventLog();
  const seen: DaemonEvent[] = [];
  log.subscribe((e) => seen.push(e));
  for (let i = 0; i < 55; i++) log.add(ev(i, `a${i}`, 'a'));

  assert.equal(seen.length, 55);
  assert.deepEqual(seen[0], ev(0, 'a0', 'a'));
  assert.equal(log.list('a').length, 50);
});
