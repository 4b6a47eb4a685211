import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessTracker, ConditionUnmet } from '../../src/apply/tracker.js';

test('conditions are latched: ready stays met after completion; completed implies ready and started', async () => {
  const tracker = new ProcessTracker('job');
  const signal = new AbortController().signal;
  const ready = tracker.until('ready', signal);
  const completed = tracker.until('completed', signal);
  tracker.set('running');
  assert.equal(tracker.holds('started'), true);
  assert.equal(tracker.holds('ready'), false);
  tracker.set('completed', 'exited with code 0');
  await ready;
  await completed;
  assert.equal(tracker.holds('ready'), true);
  assert.equal(tracker.converged, true);
});

test('a failure rejects waiters with the reason; abort rejects too', async () => {
  const tracker = new ProcessTracker('api');
  const controller = new AbortController();
  const waiting = tracker.until('ready', controller.signal);
  tracker.set('failed', 'exited with code 3');
  await assert.rejects(waiting, (error) => error instanceof ConditionUnmet && error.why === 'exited with code 3' && error.process === 'api');

  const other = new ProcessTracker('worker');
  const pending = other.until('ready', controller.signal);
  controller.abort(new Error('timed out'));
  await assert.rejects(pending, /timed out/);
});

test('listeners hear state and detail changes, once each', () => {
  const seen: string[] = [];
  const tracker = new ProcessTracker('api', (t) => seen.push(`${t.state}:${t.detail}`));
  tracker.set('running', 'pid 1');
  tracker.set('running', 'pid 1');
  tracker.note('readiness: HTTP 503');
  tracker.note('readiness: HTTP 503');
  tracker.set('ready');
  assert.deepEqual(seen, ['running:pid 1', 'running:readiness: HTTP 503', 'ready:']);
});
