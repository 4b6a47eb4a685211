// Parsing `systemctl show` for many units: blocks by Id/Names (not position), D-Bus key order,
// not-found units, unix timestamps, empty values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { parseShowOutput, parseTimestamp, SHOW_PROPERTIES, splitBlocks } from '../../src/drivers/systemd/show.js';

/** A block as systemd 252 prints it: keys in D-Bus order, not in -p order. */
function block(values: Record<string, string>): string {
  const dbusOrder = ['Id', 'Names', 'ExecMainStartTimestamp', 'ExecMainExitTimestamp', 'ExecMainCode', 'ExecMainStatus', 'MainPID', 'NRestarts', 'Result', 'InvocationID', 'LoadState', 'ActiveState', 'FragmentPath', 'SubState', 'ActiveEnterTimestamp', 'InactiveEnterTimestamp', 'Job', 'NeedDaemonReload'];
  assert.deepEqual([...dbusOrder].sort(), [...SHOW_PROPERTIES].sort(), 'the fixture covers every property asked for');
  const defaults: Record<string, string> = {
    Names: values.Id ?? '',
    ExecMainStartTimestamp: '',
    ExecMainExitTimestamp: '',
    ExecMainCode: '0',
    ExecMainStatus: '0',
    MainPID: '0',
    NRestarts: '0',
    Result: 'success',
    InvocationID: '',
    LoadState: 'loaded',
    ActiveState: 'inactive',
    FragmentPath: '',
    SubState: 'dead',
    ActiveEnterTimestamp: '',
    InactiveEnterTimestamp: '',
    Job: '',
    NeedDaemonReload: 'no',
  };
  return dbusOrder.map((key) => `${key}=${values[key] ?? defaults[key]}`).join('\n');
}

const running = block({
  Id: 'pm-a.service',
  MainPID: '4242',
  ActiveState: 'active',
  SubState: 'running',
  InvocationID: '0123456789abcdef0123456789abcdef',
  ExecMainStartTimestamp: '@1795760989',
  ActiveEnterTimestamp: '@1795760989',
  FragmentPath: '/run/systemd/system/pm-a.service',
});
const killed = block({
  Id: 'pm-b.service',
  ActiveState: 'failed',
  SubState: 'failed',
  Result: 'signal',
  ExecMainCode: '2',
  ExecMainStatus: '9',
  ExecMainExitTimestamp: '@1795760990',
  InactiveEnterTimestamp: '@1795760990',
  NRestarts: '3',
  NeedDaemonReload: 'yes',
});
const missing = 'Id=nope.service\nNames=nope.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead';
const alias = block({ Id: 'real.service', Names: 'real.service alias.service', ActiveState: 'active', MainPID: '7' });

test('blocks are matched by Id and Names, whatever their order', () => {
  const output = `${killed}\n\n${missing}\n\n${running}\n\n${alias}\n`;
  const states = parseShowOutput(output, ['pm-a.service', 'alias.service', 'pm-b.service', 'nope.service']);
  assert.deepEqual([...states.keys()], ['pm-a.service', 'alias.service', 'pm-b.service', 'nope.service']);

  assert.deepEqual(states.get('pm-a.service'), {
    unit: 'pm-a.service',
    found: true,
    id: 'pm-a.service',
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 4242,
    restarts: 0,
    execMain: { code: 0, status: 0, startAt: 1795760989000, exitAt: undefined },
    result: 'success',
    invocationId: '0123456789abcdef0123456789abcdef',
    activeEnterAt: 1795760989000,
    inactiveEnterAt: undefined,
    fragmentPath: '/run/systemd/system/pm-a.service',
    needDaemonReload: false,
    jobQueued: false,
  });
  const b = states.get('pm-b.service');
  assert.ok(b?.found);
  assert.equal(b.mainPid, undefined, 'MainPID=0 means none');
  assert.deepEqual(b.execMain, { code: 2, status: 9, startAt: undefined, exitAt: 1795760990000 });
  assert.equal(b.restarts, 3);
  assert.equal(b.needDaemonReload, true);
  assert.equal(b.invocationId, undefined);
  assert.equal(b.fragmentPath, undefined);
  assert.deepEqual(states.get('nope.service'), { unit: 'nope.service', found: false, loadState: 'not-found' });
  const aliased = states.get('alias.service');
  assert.ok(aliased?.found);
  assert.equal(aliased.id, 'real.service');
  assert.equal(aliased.unit, 'alias.service');
});

test('a value may hold "=", and lines without one are skipped', () => {
  const [first] = splitBlocks('Id=a.service\nFragmentPath=/x=y/a.service\nnoise\n');
  assert.equal(first?.get('FragmentPath'), '/x=y/a.service');
  assert.equal(first?.size, 2);
  assert.equal(splitBlocks('\n\n\n').length, 0);
});

test('a requested unit without a block, or a block without a property, is an error', () => {
  assert.throws(() => parseShowOutput(running, ['pm-a.service', 'pm-z.service']), (e: unknown) => e instanceof SystemdError && /no block for pm-z\.service/.test(e.message));
  assert.throws(() => parseShowOutput('Id=x.service\nLoadState=loaded\n', ['x.service']), /no MainPID= for x\.service/);
  assert.throws(() => parseShowOutput('LoadState=loaded\n', ['x.service']), /no Id= line/);
});

test('unix timestamps', () => {
  assert.equal(parseTimestamp('@1795760989'), 1795760989000);
  assert.equal(parseTimestamp('@1795760989.25'), 1795760989250);
  assert.equal(parseTimestamp(''), undefined);
  assert.equal(parseTimestamp('n/a'), undefined);
  assert.equal(parseTimestamp('Fri 2026-11-27 06:28:52 UTC'), Date.parse('2026-11-27T06:28:52Z'));
  assert.equal(parseTimestamp('Fri 2026-11-27 09:18:53.915922 UTC'), Date.parse('2026-11-27T09:18:53Z') + 915.922);
  assert.equal(parseTimestamp('Fri 2026-11-27 06:28:52 CET'), undefined, 'only UTC, as --timestamp=us+utc prints');
  assert.equal(parseTimestamp(undefined), undefined);
});

test('Job= names a queued job: an empty value, 0 or no line at all is none', () => {
  const restarting = block({ Id: 'pm-r.service', ActiveState: 'inactive', SubState: 'dead', Job: '1234' });
  assert.equal((parseShowOutput(restarting, ['pm-r.service']).get('pm-r.service') as { jobQueued: boolean }).jobQueued, true);
  for (const idle of [block({ Id: 'pm-r.service', Job: '' }), block({ Id: 'pm-r.service', Job: '0' }), block({ Id: 'pm-r.service' }).replace(/^Job=.*\n/m, '')]) {
    assert.equal((parseShowOutput(idle, ['pm-r.service']).get('pm-r.service') as { jobQueued: boolean }).jobQueued, false);
  }
});
