// Process identity from /proc: start time parsing (comm may hold spaces and parentheses) and boot id.
import assert from 'node:assert/strict';
import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ExecDriver, parseProcStat, readBootId, readProcessIdentity } from '../../src/drivers/exec/index.js';
import { isEnding } from '../../src/drivers/exec/proc.js';
import { nodeScript, processManifest } from '../support/exec-fixtures.js';
import { killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';

/** A /proc/PID/stat line with the given comm and field values (fields 3..52). */
function statLine(pid: number, comm: string, fields: Record<number, string>): string {
  const rest = Array.from({ length: 50 }, (_, i) => fields[i + 3] ?? '0');
  return `${pid} (${comm}) ${rest.join(' ')}\n`;
}

test('parseProcStat reads the fields after the last parenthesis', () => {
  const comm = 'a b) S 1 (c) d';
  const parsed = parseProcStat(statLine(4242, comm, { 3: 'S', 4: '1', 5: '4242', 6: '4242', 9: '4194560', 22: '987654' }));
  assert.deepEqual(parsed, { pid: 4242, comm, state: 'S', ppid: 1, pgrp: 4242, session: 4242, flags: 4194560, startTime: '987654' });
  assert.equal(parseProcStat(''), undefined);
  assert.equal(parseProcStat('12 (truncated'), undefined);
  assert.equal(parseProcStat('12 (short) S 1 2'), undefined);
});

test('isEnding: a zombie, or a task with PF_EXITING set whatever its state letter, and not a live one', () => {
  const stat = (state: string, flags: number) => parseProcStat(statLine(7, 'x', { 3: state, 9: String(flags), 22: '1' }))!;
  assert.equal(isEnding(stat('S', 0x400100)), false);
  assert.equal(isEnding(stat('R', 0x400104)), true, 'PF_EXITING (0x4) while still running');
  assert.equal(isEnding(stat('Z', 0x400100)), true);
  assert.equal(isEnding(stat('X', 0)), true);
});

test('readProcessIdentity: a real process whose name holds spaces and parentheses', async (t) => {
  const dir = await tempDir(t);
  const odd = join(dir, 'we) ird (nm');
  await symlink(process.execPath, odd);
  const request = nodeScript(dir, '');
  request.manifest = processManifest('odd', [odd, '-e', 'setInterval(() => {}, 1000)'], dir);
  const driver = new ExecDriver();
  const handle = await driver.start(request);
  killGroupAfter(t, handle.pgid);

  const stat = parseProcStat(await readFile(`/proc/${handle.pid}/stat`, 'utf8'));
  assert.equal(stat?.comm, 'we) ird (nm');
  const identity = await readProcessIdentity(handle.pid);
  assert.equal(identity?.startTime, handle.startTime);
  assert.notEqual(identity?.state, 'Z');
  assert.deepEqual(await driver.inspect(handle), { state: 'running', pid: handle.pid });
  assert.equal((await new ExecDriver().inspect(handle)).state, 'running', 'found again by a later pm command');
});

test('readProcessIdentity: no process, or a PID that means "everyone" to kill(2)', async () => {
  assert.equal(await readProcessIdentity(2 ** 22 + 1), undefined, 'above the largest pid_max');
  for (const pid of [0, 1, -1, 1.5, Number.NaN]) assert.equal(await readProcessIdentity(pid), undefined, String(pid));
});

test('readBootId is the kernel boot id', async () => {
  const bootId = await readBootId();
  assert.match(bootId, /^[0-9a-f-]{36}$/);
  assert.equal(bootId, (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
});
