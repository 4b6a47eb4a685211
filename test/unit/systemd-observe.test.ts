// From unit state to Observation / ExitStatus, and the failure summary and output targets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failureSummary, hasFailed, parseOutputTargets, programRan } from '../../src/drivers/systemd/failure.js';
import { exitStatusOf, isStopped, observationOf } from '../../src/drivers/systemd/observe.js';
import type { UnitState } from '../../src/drivers/systemd/show.js';

const NOW = 1_800_000_000_000;

function state(change: Partial<Omit<UnitState, 'execMain'>> & { execMain?: Partial<UnitState['execMain']> }): UnitState {
  const { execMain, ...rest } = change;
  return {
    unit: 'pm-a.service',
    found: true,
    id: 'pm-a.service',
    loadState: 'loaded',
    activeState: 'active',
    subState: 'running',
    mainPid: 42,
    restarts: 0,
    result: 'success',
    invocationId: 'aaaa',
    activeEnterAt: undefined,
    inactiveEnterAt: undefined,
    fragmentPath: '/run/systemd/system/pm-a.service',
    needDaemonReload: false,
    jobQueued: false,
    ...rest,
    execMain: { code: 0, status: 0, startAt: undefined, exitAt: undefined, ...execMain },
  };
}

test('running, with MainPID', () => {
  assert.deepEqual(observationOf(state({}), { invocationId: 'aaaa' }, NOW), { state: 'running', pid: 42 });
  assert.deepEqual(observationOf(state({}), {}, NOW), { state: 'running', pid: 42 }, 'a handle without an InvocationID');
  assert.deepEqual(observationOf(state({ activeState: 'activating', mainPid: undefined }), {}, NOW), { state: 'running', pid: 0 });
  assert.deepEqual(observationOf(state({ activeState: 'deactivating' }), {}, NOW), { state: 'running', pid: 42 });
});

test('inactive with a job queued (a restart by hand, between its stop and its start) is still running; without one it has exited', () => {
  const between = state({ activeState: 'inactive', subState: 'dead', mainPid: undefined, jobQueued: true, execMain: { code: 2, status: 15 } });
  assert.equal(isStopped(between), false);
  assert.deepEqual(observationOf(between, {}, NOW), { state: 'running', pid: 0 });
  assert.equal(isStopped({ ...between, jobQueued: false }), true);
  assert.equal(observationOf({ ...between, jobQueued: false }, {}, NOW).state, 'exited');
});

test('exited: ExecMainCode 1 → exit code, 2/3 → signal name', () => {
  const exited = state({ activeState: 'failed', mainPid: undefined, result: 'exit-code', execMain: { code: 1, status: 3, exitAt: NOW - 5000 } });
  assert.deepEqual(observationOf(exited, { invocationId: 'aaaa' }, NOW), { state: 'exited', exit: { code: 3, signal: null, at: NOW - 5000, known: true } });
  const killed = state({ activeState: 'failed', mainPid: undefined, result: 'signal', execMain: { code: 2, status: 9 }, inactiveEnterAt: NOW - 1000 });
  assert.deepEqual(exitStatusOf(killed, NOW), { code: null, signal: 'SIGKILL', at: NOW - 1000, known: true });
  const dumped = state({ activeState: 'failed', mainPid: undefined, result: 'core-dump', execMain: { code: 3, status: 6 } });
  assert.deepEqual(exitStatusOf(dumped, NOW), { code: null, signal: 'SIGABRT', at: NOW, known: true }, 'SIGABRT, not its alias SIGIOT');
  const clean = state({ activeState: 'inactive', mainPid: undefined, execMain: { code: 1, status: 0 } });
  assert.deepEqual(exitStatusOf(clean, NOW), { code: 0, signal: null, at: NOW, known: true });
  const never = state({ activeState: 'inactive', mainPid: undefined, invocationId: undefined });
  assert.deepEqual(exitStatusOf(never, NOW), { code: null, signal: null, at: NOW, known: false }, 'no main process ever ended');
  const realtime = state({ activeState: 'failed', execMain: { code: 2, status: 40 } });
  assert.equal(exitStatusOf(realtime, NOW).known, false, 'a signal without a name');
});

test('another run (new InvocationID) ends the handle\'s run, unknown', () => {
  assert.deepEqual(observationOf(state({ invocationId: 'bbbb' }), { invocationId: 'aaaa' }, NOW), { state: 'exited', exit: { code: null, signal: null, at: NOW, known: false } });
});

test('missing: systemd does not know the unit', () => {
  assert.deepEqual(observationOf({ unit: 'x.service', found: false, loadState: 'not-found' }, {}, NOW), { state: 'missing' });
  assert.equal(isStopped({ unit: 'x.service', found: false, loadState: 'not-found' }), true);
});

test('failure summary and output targets', () => {
  assert.equal(failureSummary(state({ activeState: 'failed', result: 'exit-code', execMain: { code: 1, status: 3 } })), 'its main process exited with code 3 (Result=exit-code)');
  assert.equal(failureSummary(state({ activeState: 'failed', result: 'signal', execMain: { code: 2, status: 9 } })), 'its main process was killed by SIGKILL (Result=signal)');
  assert.equal(failureSummary(state({ activeState: 'failed', result: 'start-limit-hit' })), 'Result=start-limit-hit, ActiveState=failed');
  assert.equal(
    failureSummary(state({ activeState: 'failed', result: 'exit-code', execMain: { code: 1, status: 203 } })),
    'its main process exited with code 203 before the program ran: EXEC: the program could not be executed (Result=exit-code)',
  );
  assert.match(failureSummary(state({ activeState: 'failed', result: 'exit-code', execMain: { code: 1, status: 226 } })), /code 226 before the program ran: systemd could not set up/);
  assert.equal(programRan(state({ execMain: { code: 1, status: 3 } })), true);
  assert.equal(programRan(state({ execMain: { code: 1, status: 203 } })), false);
  assert.equal(programRan(state({ execMain: { code: 2, status: 9 } })), true);
  assert.equal(programRan(state({ execMain: { code: 0, status: 0 } })), false, 'never ran');
  assert.equal(hasFailed(state({ activeState: 'failed', result: 'exit-code' })), true);
  assert.equal(hasFailed(state({ activeState: 'inactive', result: 'success' })), false);
  assert.equal(hasFailed(state({ activeState: 'inactive', result: 'timeout' })), true);

  const unit = '[Service]\nStandardOutput=journal\nStandardOutput=append:/var/log/a 100%%.log\n# /run/…/override.conf\nStandardError = file:/var/log/b.err\n';
  assert.deepEqual(parseOutputTargets(unit), ['/var/log/a 100%.log', '/var/log/b.err']);
  assert.deepEqual(parseOutputTargets('[Service]\nStandardOutput=append:/x\nStandardError=append:/x\n'), ['/x']);
  assert.deepEqual(parseOutputTargets('[Service]\nStandardOutput=journal\n'), ['journal (StandardOutput=)']);
  assert.deepEqual(parseOutputTargets('[Service]\nExecStart=/bin/true\n'), []);
});
