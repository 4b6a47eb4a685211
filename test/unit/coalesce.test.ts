// coalesced(): concurrent callers share runs; a caller never gets a run that began before its call.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { coalesced } from '../../src/util/coalesce.js';

/** A run the test finishes by hand, numbered in start order. */
function manualRuns(): { run: () => Promise<number>; finish: (value?: Error) => void; started: () => number } {
  let count = 0;
  const pending: ((value?: Error) => void)[] = [];
  return {
    run: () => {
      const n = ++count;
      return new Promise<number>((resolve, reject) => pending.push((error) => (error ? reject(error) : resolve(n))));
    },
    finish: (error) => pending.shift()?.(error),
    started: () => count,
  };
}

test('a call during a run waits for the next run, which every call made meanwhile shares', async () => {
  const runs = manualRuns();
  const read = coalesced(runs.run);
  const first = read();
  const during = [read(), read(), read()];
  assert.equal(runs.started(), 1, 'one run at a time');
  runs.finish();
  assert.equal(await first, 1);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(runs.started(), 2, 'the callers made during run 1 share run 2');
  runs.finish();
  assert.deepEqual(await Promise.all(during), [2, 2, 2]);
  const later = read();
  assert.equal(runs.started(), 3, 'nothing in flight: a new run at once');
  runs.finish();
  assert.equal(await later, 3);
});

test('a failed run fails its callers only; the queued run still happens', async () => {
  const runs = manualRuns();
  const read = coalesced(runs.run);
  const first = read();
  const queued = read();
  runs.finish(new Error('EMFILE'));
  await assert.rejects(first, /EMFILE/);
  await new Promise((resolve) => setImmediate(resolve));
  runs.finish();
  assert.equal(await queued, 2);
});
