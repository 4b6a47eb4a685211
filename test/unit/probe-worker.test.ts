// ProbeWorker thresholds as flat sequences of scripted results, and the probe loop's scheduling.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProbeResult } from '../../src/probes/runners.js';
import { ProbeWorker, runProbeLoop, type ProbeKind, type ProbeStatus, type ProbeUpdate } from '../../src/probes/worker.js';

/** A run function that answers from a script: 'S' success, 'F' failure, 'T' throws. */
function scripted(sequence: string): { run: () => Promise<ProbeResult>; calls: () => number } {
  let i = 0;
  return {
    calls: () => i,
    run: async () => {
      const step = sequence[i++ % sequence.length];
      if (step === 'T') throw new Error('runner broke');
      return { ok: step === 'S', message: step === 'S' ? 'HTTP 200' : 'HTTP 503 Service Unavailable', durationMs: 1 };
    },
  };
}

function worker(kind: ProbeKind, thresholds: { successThreshold?: number; failureThreshold?: number }, sequence: string) {
  const { run, calls } = scripted(sequence);
  return { worker: new ProbeWorker(kind, { successThreshold: 1, failureThreshold: 3, ...thresholds }, run), calls };
}

/** Ticks once per step and returns the statuses and `changed` flags as flat lists. */
async function ticks(w: ProbeWorker, n: number): Promise<{ statuses: ProbeStatus[]; changed: boolean[] }> {
  const statuses: ProbeStatus[] = [];
  const changed: boolean[] = [];
  for (let i = 0; i < n; i++) {
    statuses.push(await w.tick());
    changed.push(w.changed);
  }
  return { statuses, changed };
}

test('initial status: readiness failed, liveness healthy, startup unknown', () => {
  const run = scripted('S').run;
  assert.equal(new ProbeWorker('readiness', { successThreshold: 1, failureThreshold: 3 }, run).status, 'failure');
  assert.equal(new ProbeWorker('liveness', { successThreshold: 1, failureThreshold: 3 }, run).status, 'success');
  assert.equal(new ProbeWorker('startup', { successThreshold: 1, failureThreshold: 3 }, run).status, 'unknown');
});

test('liveness, failureThreshold 3: F,F hold success; the third F flips to failure; one S recovers', async () => {
  const { worker: w } = worker('liveness', { failureThreshold: 3 }, 'FFFS');
  assert.deepEqual(await ticks(w, 4), {
    statuses: ['success', 'success', 'failure', 'success'],
    changed: [false, false, true, true],
  });
});

test('liveness: a success in between resets the failure count', async () => {
  const { worker: w } = worker('liveness', { failureThreshold: 3 }, 'FFSFFF');
  const { statuses } = await ticks(w, 6);
  assert.deepEqual(statuses, ['success', 'success', 'success', 'success', 'success', 'failure']);
});

test('readiness, successThreshold 2 and failureThreshold 2', async () => {
  const { worker: w } = worker('readiness', { successThreshold: 2, failureThreshold: 2 }, 'SSFSFFSS');
  assert.deepEqual(await ticks(w, 8), {
    statuses: ['failure', 'success', 'success', 'success', 'success', 'failure', 'failure', 'success'],
    changed: [false, true, false, false, false, true, false, true],
  });
});

test('startup: unknown until a threshold is reached', async () => {
  const failing = worker('startup', { failureThreshold: 3 }, 'F').worker;
  assert.deepEqual((await ticks(failing, 3)).statuses, ['unknown', 'unknown', 'failure']);
  const passing = worker('startup', { failureThreshold: 3 }, 'FFS').worker;
  assert.deepEqual((await ticks(passing, 3)).statuses, ['unknown', 'unknown', 'success']);
});

test('counters and lastResult follow each tick; reset starts over', async () => {
  const { worker: w } = worker('readiness', { successThreshold: 3, failureThreshold: 1 }, 'SSF');
  assert.equal(w.snapshot().result.message, 'not probed yet');
  await w.tick();
  await w.tick();
  assert.deepEqual([w.consecutiveSuccesses, w.consecutiveFailures], [2, 0]);
  await w.tick();
  assert.deepEqual([w.consecutiveSuccesses, w.consecutiveFailures], [0, 1]);
  assert.equal(w.lastResult?.message, 'HTTP 503 Service Unavailable');

  w.reset();
  assert.deepEqual([w.status, w.changed, w.lastResult, w.consecutiveSuccesses, w.consecutiveFailures], ['failure', false, undefined, 0, 0]);
});

test('a runner that throws counts as a failure with its message', async () => {
  const { worker: w } = worker('liveness', { failureThreshold: 1 }, 'T');
  assert.equal(await w.tick(), 'failure');
  assert.deepEqual(w.lastResult, { ok: false, message: 'runner broke', durationMs: 0 });
});

test('thresholds below 1 are rejected with the bad value', () => {
  const run = scripted('S').run;
  assert.throws(() => new ProbeWorker('liveness', { successThreshold: 0, failureThreshold: 3 }, run), /successThreshold .* got 0/);
  assert.throws(() => new ProbeWorker('liveness', { successThreshold: 1, failureThreshold: 1.5 }, run), /failureThreshold .* got 1.5/);
});

test('runProbeLoop ticks until aborted, then stops without another tick', async () => {
  const { worker: w, calls } = worker('readiness', { successThreshold: 1, failureThreshold: 1 }, 'SF');
  const controller = new AbortController();
  const updates: ProbeUpdate[] = [];
  const loop = runProbeLoop(w, { initialDelaySeconds: 0, periodSeconds: 0.001 }, {
    signal: controller.signal,
    onResult: (update) => {
      updates.push(update);
      if (updates.length === 3) controller.abort();
    },
  });
  await loop;
  assert.equal(calls(), 3);
  assert.deepEqual(
    updates.map((u) => [u.status, u.changed, u.result.ok]),
    [
      ['success', true, true],
      ['failure', true, false],
      ['success', true, true],
    ],
  );
});

test('runProbeLoop: a startup probe stops once it succeeded', async () => {
  const { worker: w, calls } = worker('startup', { failureThreshold: 5 }, 'FS');
  const updates: ProbeStatus[] = [];
  await runProbeLoop(w, { initialDelaySeconds: 0, periodSeconds: 0.001 }, {
    signal: new AbortController().signal,
    onResult: (update) => updates.push(update.status),
  });
  assert.deepEqual(updates, ['unknown', 'success']);
  assert.equal(calls(), 2);
});

test('runProbeLoop: an abort during the initial delay ends the loop before any tick', async () => {
  const { worker: w, calls } = worker('liveness', {}, 'S');
  const controller = new AbortController();
  const loop = runProbeLoop(w, { initialDelaySeconds: 3600, periodSeconds: 10 }, { signal: controller.signal, onResult: () => undefined });
  controller.abort();
  await loop; // resolves: the hour-long delay timer was cleared, or this test would hang
  assert.equal(calls(), 0);
});
