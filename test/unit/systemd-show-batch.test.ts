// Batching of unit state reads. The reads here are a fake showUnits that records its calls: what is
// under test is which requests share a call, not systemd (the daemon tests read real units).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ShowBatcher } from '../../src/drivers/systemd/show-batch.js';
import type { ShownUnit } from '../../src/drivers/systemd/show.js';

function fakeSystemctl(fail?: (units: readonly string[]) => boolean): { calls: string[][]; release: () => void; showUnits: (units: readonly string[]) => Promise<Map<string, ShownUnit>> } {
  const calls: string[][] = [];
  let gate: (() => void) | undefined;
  let held = false;
  return {
    calls,
    release: () => gate?.(),
    showUnits: async (units) => {
      calls.push([...units]);
      if (calls.length === 1 && !held) {
        held = true;
        // The first read stays open until the test releases it, so requests can arrive meanwhile.
        await new Promise<void>((resolve) => (gate = resolve));
      }
      if (fail?.(units)) throw new Error('systemd does not answer');
      return new Map(units.map((unit) => [unit, { unit, found: false, loadState: 'not-found' } as ShownUnit]));
    },
  };
}

test('requests of one turn share one read; those made while it runs share the next', async () => {
  const systemctl = fakeSystemctl();
  const batcher = new ShowBatcher(systemctl);
  const first = ['a.service', 'b.service', 'c.service'].map((u) => batcher.show(u));
  await new Promise((resolve) => setImmediate(resolve));
  const second = ['d.service', 'e.service'].map((u) => batcher.show(u));
  systemctl.release();
  const states = await Promise.all([...first, ...second]);
  assert.deepEqual(states.map((s) => s.unit), ['a.service', 'b.service', 'c.service', 'd.service', 'e.service']);
  assert.deepEqual(systemctl.calls, [['a.service', 'b.service', 'c.service'], ['d.service', 'e.service']]);
  assert.equal(batcher.calls, 2);
});

test('a failed read rejects its own batch only; a bad name fails alone, before any read', async () => {
  const systemctl = fakeSystemctl((units) => units.includes('x.service'));
  const batcher = new ShowBatcher(systemctl);
  assert.throws(() => batcher.show('-bad'), /invalid unit name/);
  const failing = [batcher.show('x.service'), batcher.show('y.service')];
  await new Promise((resolve) => setImmediate(resolve));
  const later = batcher.show('z.service');
  systemctl.release();
  for (const p of failing) await assert.rejects(p, /does not answer/);
  assert.equal((await later).unit, 'z.service');
  assert.deepEqual(systemctl.calls, [['x.service', 'y.service'], ['z.service']]);
});
