// The systemctl runner without systemd: fake programs behind the prefix record their argv and
// answer with real messages (collected from systemd 252, polkit and sudo). Classification, the
// exact argv, the timeout and cancellation (the whole process group is killed) are checked here.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { classifyFailure, SystemdError } from '../../src/drivers/systemd/errors.js';
import { Systemctl, verbArgv } from '../../src/drivers/systemd/systemctl.js';
import { isAlive } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor, waitForValue } from '../support/wait.js';

/** A prefix running a shell script that appends its argv (one line per call) to `log`, then runs `body`. */
async function fakeProgram(dir: string, body: string): Promise<{ prefix: string[]; log: string; calls: () => Promise<string[]> }> {
  const script = join(dir, 'fake.sh');
  const log = join(dir, 'calls.log');
  await writeFile(script, `printf '%s\\n' "$*" >> ${JSON.stringify(log)}\n${body}\n`);
  return {
    prefix: ['/bin/sh', script],
    log,
    calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((line) => line !== ''),
  };
}

function hasCode(code: string, message?: RegExp) {
  return (error: unknown): boolean => error instanceof SystemdError && error.code === code && (message === undefined || message.test(error.message)) && (error.hint ?? '') !== '';
}

const run = { argv: ['systemctl', '--system', 'start', 'pm-a.service'], units: ['pm-a.service'], exitCode: 1, scope: 'system' as const };

test('classification of real messages', () => {
  const cases: Array<[string, string, RegExp?]> = [
    ['System has not been booted with systemd as init system (PID 1). Can\'t operate.\nFailed to connect to bus: Host is down', 'E_SYSTEMD_NOT_RUNNING', /not running here/],
    ['Failed to connect to bus: No such file or directory', 'E_SYSTEMD_NOT_RUNNING', /cannot reach systemd/],
    ['Failed to start pm-a.service: Interactive authentication required.\nSee system logs and \'systemctl status pm-a.service\' for details.', 'E_SYSTEMD_ACCESS_DENIED', /refused/],
    ['Failed to start pm-a.service: Access denied\nSee system logs and \'systemctl status pm-a.service\' for details.', 'E_SYSTEMD_ACCESS_DENIED'],
    ['sudo: a password is required', 'E_SYSTEMD_ACCESS_DENIED', /sudo refused/],
    ['Sorry, user pm is not allowed to execute \'/usr/bin/systemctl start x.service\' as root on host.', 'E_SYSTEMD_ACCESS_DENIED', /sudo refused/],
    ['Failed to start nope.service: Unit nope.service not found.', 'E_SYSTEMD_UNIT_NOT_FOUND', /unit nope\.service not found/],
    ['Failed to stop nope.service: Unit nope.service not loaded.', 'E_SYSTEMD_UNIT_NOT_FOUND', /nope\.service/],
    ['Failed to kill unit nope.service: Unit nope.service not loaded.', 'E_SYSTEMD_UNIT_NOT_FOUND'],
    ['Failed to start pm-a.service: Unit pm-a.service is masked.', 'E_SYSTEMD_UNIT_INVALID', /masked/],
    ['Job for pm-a.service failed because the control process exited with error code.\nSee "systemctl status pm-a.service" and "journalctl -xeu pm-a.service" for details.', 'E_SYSTEMD_FAILED', /pm-a\.service failed to start/],
    ['Unknown command verb frobnicate.', 'E_SYSTEMD', /systemctl failed: Unknown command verb/],
    ['', 'E_SYSTEMD', /exit status 1, nothing on stderr/],
  ];
  for (const [stderr, code, message] of cases) {
    const error = classifyFailure({ ...run, stderr });
    assert.ok(hasCode(code, message)(error), `${JSON.stringify(stderr)} → ${error.code}: ${error.message}`);
    assert.deepEqual(error.argv, run.argv);
  }
  assert.match(classifyFailure({ ...run, scope: 'user', stderr: 'Failed to connect to bus: No medium found' }).hint ?? '', /enable-linger/);
});

test('verbs: the exact argv, built in one place', async (t) => {
  const fake = await fakeProgram(await tempDir(t), 'exit 0');
  const systemctl = new Systemctl({ prefix: fake.prefix, timeoutMs: 10_000 });
  await systemctl.verb('start', 'pm-a.service');
  await systemctl.verb('stop', 'pm-a.service');
  await systemctl.verb('kill', 'pm-a.service');
  await systemctl.daemonReload();
  assert.deepEqual(await fake.calls(), [
    'systemctl --system --no-pager --no-ask-password start pm-a.service',
    'systemctl --system --no-pager --no-ask-password --no-block stop pm-a.service',
    'systemctl --system --no-pager --no-ask-password --signal=SIGKILL kill pm-a.service',
    'systemctl --system --no-pager --no-ask-password daemon-reload',
  ]);
  assert.deepEqual(verbArgv('user', 'restart', 'x.service'), ['--user', '--no-pager', '--no-ask-password', 'restart', 'x.service']);
});

test('an invalid name is refused before anything runs', async (t) => {
  const fake = await fakeProgram(await tempDir(t), 'exit 0');
  const systemctl = new Systemctl({ prefix: fake.prefix });
  for (const bad of ['a b.service', '-x.service', 'x', '*.service', '1']) {
    await assert.rejects(systemctl.verb('start', bad), hasCode('E_SYSTEMD_UNIT_NAME'));
    await assert.rejects(systemctl.showUnits(['ok.service', bad]), hasCode('E_SYSTEMD_UNIT_NAME'));
  }
  assert.deepEqual(await fake.calls(), []);
});

test('a failed call is classified from its stderr', async (t) => {
  const fake = await fakeProgram(await tempDir(t), 'echo "Failed to start x.service: Unit x.service not found." >&2; exit 5');
  const systemctl = new Systemctl({ prefix: fake.prefix });
  await assert.rejects(systemctl.verb('start', 'x.service'), (error: unknown) => hasCode('E_SYSTEMD_UNIT_NOT_FOUND')(error) && (error as SystemdError).unit === 'x.service');
});

test('a program that cannot be run', async () => {
  const systemctl = new Systemctl({ prefix: ['/nonexistent/pm-test-prefix'] });
  await assert.rejects(systemctl.verb('start', 'x.service'), hasCode('E_SYSTEMD_NOT_RUNNING', /cannot run \/nonexistent\/pm-test-prefix: ENOENT/));
});

test('timeout: the whole process group is killed, E_SYSTEMD_TIMEOUT', async (t) => {
  const dir = await tempDir(t);
  // The fake forks a child (as nsenter does) and waits: both must die.
  const fake = await fakeProgram(dir, `/bin/sleep 1000 & echo $! > ${JSON.stringify(join(dir, 'child'))}; wait`);
  const systemctl = new Systemctl({ prefix: fake.prefix, timeoutMs: 300 });
  await assert.rejects(systemctl.verb('start', 'x.service'), hasCode('E_SYSTEMD_TIMEOUT', /within 300 ms/));
  const child = await waitForValue(async () => Number(await readFile(join(dir, 'child'), 'utf8').catch(() => '')) || undefined);
  await waitFor(() => !isAlive(child), { message: 'the forked child to be killed' });
});

test('abort: rejects with the signal\'s reason, and kills the group', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'child');
  const fake = await fakeProgram(dir, `/bin/sleep 1000 & echo $! > ${JSON.stringify(pidFile)}; wait`);
  const systemctl = new Systemctl({ prefix: fake.prefix, timeoutMs: 60_000 });
  const controller = new AbortController();
  const call = systemctl.showUnits(['x.service'], { signal: controller.signal });
  const child = await waitForValue(async () => Number(await readFile(pidFile, 'utf8').catch(() => '')) || undefined);
  const reason = new Error('shutting down');
  controller.abort(reason);
  await assert.rejects(call, (error: unknown) => error === reason);
  await waitFor(() => !isAlive(child), { message: 'the forked child to be killed' });
  await assert.rejects(systemctl.showUnits(['x.service'], { signal: controller.signal }), (error: unknown) => error === reason, 'an aborted signal runs nothing');
  assert.equal((await fake.calls()).length, 1);
});

test('show: one call for all units, names deduplicated', async (t) => {
  const fake = await fakeProgram(
    await tempDir(t),
    'for u in a.service b.service; do printf "Id=%s\\nNames=%s\\nLoadState=not-found\\nActiveState=inactive\\n\\n" "$u" "$u"; done',
  );
  const systemctl = new Systemctl({ prefix: fake.prefix });
  const states = await systemctl.showUnits(['a.service', 'b.service', 'a.service']);
  assert.deepEqual([...states.values()].map((s) => [s.unit, s.found]), [['a.service', false], ['b.service', false]]);
  const calls = await fake.calls();
  assert.equal(calls.length, 1);
  assert.match(calls[0] ?? '', /^systemctl --system --no-pager --no-ask-password show -p Id,Names,LoadState,.*,NeedDaemonReload,Job --timestamp=us\+utc a\.service b\.service$/);
  assert.equal((await systemctl.showUnits([])).size, 0);
  assert.equal((await fake.calls()).length, 1, 'no call for no units');
});

test('options are validated', () => {
  assert.throws(() => new Systemctl({ prefix: [''] }), /prefix word/);
  assert.throws(() => new Systemctl({ scope: 'global' as 'system' }), /scope/);
  assert.throws(() => new Systemctl({ timeoutMs: 0 }), /timeoutMs/);
  assert.deepEqual(new Systemctl({ prefix: ['sudo', '-n'] }).readPrefix, ['sudo', '-n'], 'reads go through the prefix unless told otherwise');
  assert.deepEqual(new Systemctl({ prefix: ['sudo', '-n'], readPrefix: [] }).readPrefix, []);
});
