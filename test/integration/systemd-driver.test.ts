// The systemd driver against a real systemd 252, booted as PID 1 of its own PID + mount namespace
// for this file (test/support/systemd.ts). Each test uses units of its own and removes them; the
// namespace is killed when the file ends. Waits are poll-until with a deadline; nothing asserts on
// durations.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { privileges } from '../../src/drivers/systemd/privileges.js';
import { Systemctl, type SystemctlOptions } from '../../src/drivers/systemd/systemctl.js';
import { SystemdDriver } from '../../src/drivers/systemd/driver.js';
import type { UnitSpec } from '../../src/drivers/systemd/unit-file.js';
import { bootSystemd, systemdSkip, type SystemdNamespace } from '../support/systemd.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

function hasCode(code: string, message?: RegExp) {
  return (error: unknown): boolean => {
    if (!(error instanceof SystemdError)) throw error;
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    assert.ok(error.hint, 'every error carries a hint');
    return true;
  };
}

describe('systemd driver against a real systemd', { skip: systemdSkip() }, () => {
  let sd: SystemdNamespace | undefined;
  before(async () => {
    sd = await bootSystemd();
  });
  after(() => sd?.destroy());

  function ns(): SystemdNamespace {
    assert.ok(sd, 'systemd booted');
    return sd;
  }

  function driverFor(options: SystemctlOptions = {}): { systemctl: Systemctl; driver: SystemdDriver } {
    const systemctl = new Systemctl({ prefix: ns().prefix, timeoutMs: 30_000, ...options });
    return { systemctl, driver: new SystemdDriver({ systemctl, unitDir: ns().unitDir, systemdUnitDir: ns().systemdUnitDir, waitPollMs: 50 }) };
  }

  /** A prefix that records each call (one line) in `log`, then runs the rest. */
  async function recordingPrefix(t: TestContext): Promise<{ prefix: string[]; calls: () => Promise<string[]> }> {
    const dir = await tempDir(t);
    const script = join(dir, 'record.sh');
    const log = join(dir, 'calls.log');
    await writeFile(script, 'log=$1; shift; printf "%s\\n" "$*" >> "$log"; exec "$@"\n');
    return {
      prefix: ['/bin/sh', script, log, ...ns().prefix],
      calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter((line) => line !== ''),
    };
  }

  /** Installs an owned unit for this test, removed (stopped first) when the test ends. */
  async function owned(t: TestContext, label: string, change: Partial<UnitSpec> = {}): Promise<{ name: string; unit: string; spec: UnitSpec; logs: string }> {
    const { driver } = driverFor();
    const logs = await tempDir(t);
    const name = ns().processName(label);
    const spec: UnitSpec = {
      description: `pm test ${label}`,
      command: ['/bin/sleep', '1000'],
      env: {},
      stdoutPath: join(logs, 'out.log'),
      stderrPath: join(logs, 'err.log'),
      stopSignal: 'SIGTERM',
      gracePeriodSeconds: 30,
      ...change,
    };
    t.after(async () => {
      await driver.uninstall(name, { gracePeriodMs: 5_000 });
      assert.equal(existsSync(join(ns().unitDir, `pm-${name}.service`)), false);
    });
    const installed = await driver.install(name, spec);
    return { name, unit: installed.unit, spec, logs };
  }

  test('an owned unit runs with its limits; kill -9 is seen as SIGKILL and Restart=no leaves it down', async (t) => {
    const { driver, systemctl } = driverFor();
    const limits = { memoryBytes: 256 * 1024 * 1024, cpuQuotaPercent: 50, ioWeight: 200, nofile: 1024, tasks: 32 };
    const { name, unit, spec } = await owned(t, 'sleep', { limits });
    assert.deepEqual(await driver.install(name, spec), { unit, path: join(ns().unitDir, unit), changed: false, dropIns: [] }, 'same spec: nothing to write');

    const handle = await driver.start(unit);
    assert.equal(handle.driver, 'systemd');
    assert.ok((handle.pid ?? 0) > 0, 'MainPID > 0');
    assert.match(handle.invocationId ?? '', /^[0-9a-f]{32}$/);
    assert.deepEqual(await driver.inspect(handle), { state: 'running', pid: handle.pid });
    const state = (await driver.observeMany([unit])).get(unit);
    assert.ok(state?.found);
    assert.equal(state.activeState, 'active');
    assert.equal(state.subState, 'running');
    assert.equal(state.mainPid, handle.pid);
    assert.equal(state.fragmentPath, `/run/systemd/system/${unit}`);
    assert.equal(state.needDaemonReload, false);

    const expected = { MemoryMax: '268435456', TasksMax: '32', LimitNOFILE: '1024', LimitNOFILESoft: '1024', IOWeight: '200', CPUQuotaPerSecUSec: '500ms', Restart: 'no', Type: 'exec' };
    const shown = await systemctl.showProperties(unit, Object.keys(expected));
    assert.deepEqual(Object.fromEntries(shown), expected);
    const raw = await ns().execOk(['systemctl', 'show', '-p', Object.keys(expected).join(','), unit]);
    for (const [key, value] of Object.entries(expected)) assert.match(raw, new RegExp(`^${key}=${value}$`, 'm'), 'plain systemctl show agrees');

    // From outside: the PID is systemd's namespace's, so the kill goes through the prefix.
    await ns().execOk(['kill', '-9', String(handle.pid)]);
    const exit = await driver.waitExit(handle);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.code, null);
    assert.equal(exit.known, true);
    assert.deepEqual(await driver.inspect(handle), { state: 'exited', exit });
    const after = (await driver.observeMany([unit])).get(unit);
    assert.ok(after?.found);
    assert.equal(after.activeState, 'failed', 'Restart=no: systemd did not bring it back');
    assert.equal(after.result, 'signal');
    assert.equal(after.restarts, 0);
    assert.equal(after.invocationId, handle.invocationId, 'no new run');
    assert.equal(after.mainPid, undefined);
  });

  test('hostile arguments and environment reach the program exactly', async (t) => {
    const { driver } = driverFor();
    const args = ['two words', 'say "hi"', "it's", '100%', '%n %i', '$HOME', '${PATH}', 'back\\slash\\', 'tab\there', 'héllo ✓ 🚀', '', ';', '-', '--x=1'];
    const env = { QUOTED: 'say "hi" $HOME 50% %n \\n', EMPTY: '', UNI: 'ü 🚀', SEMI: 'a;b', TICKS: "`id` $(id) ${PATH} it's", PADDED: '  both ends  ', HASH: '#not a comment', BACK: 'back\\slash\\', TAB: 'tab\there' };
    const script = `process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), env: Object.fromEntries(${JSON.stringify(Object.keys(env))}.map((k) => [k, process.env[k]])) }))`;
    const { unit, spec } = await owned(t, 'argv', { command: [process.execPath, '-e', script, '--', ...args], env });
    const handle = await driver.start(unit);
    const exit = await driver.waitExit(handle);
    assert.deepEqual(exit, { ...exit, code: 0, signal: null, known: true }, await readFile(spec.stderrPath, 'utf8').catch(() => 'no stderr'));
    assert.deepEqual(JSON.parse(await readFile(spec.stdoutPath, 'utf8')), { argv: args, env });
    // The values are in a file only root reads, not in Environment= (which any user can read with systemctl show).
    assert.equal((await ns().execOk(['systemctl', 'show', '-p', 'Environment', '--value', unit])).trim(), '');
    const envFile = join(ns().unitDir, 'pm-env', `${unit}.env`);
    assert.equal((await stat(envFile)).mode & 0o777, 0o600);
  });

  test('stop: SIGTERM first; a unit that ignores it gets SIGKILL after the grace period', async (t) => {
    const { driver } = driverFor();
    const polite = await owned(t, 'polite');
    const handle = await driver.start(polite.unit);
    const stopped = await driver.stop(polite.unit, { gracePeriodMs: 30_000 });
    assert.deepEqual(stopped, { forced: false, wasRunning: true, exit: { ...stopped.exit, code: null, signal: 'SIGTERM', known: true } });
    assert.deepEqual((await driver.stop(polite.unit, { gracePeriodMs: 1000 })).wasRunning, false, 'stopping again is safe');
    assert.equal((await driver.inspect(handle)).state, 'exited');

    // The ignored disposition survives exec: sleep itself ignores SIGTERM.
    const stubborn = await owned(t, 'stubborn', { command: ['/bin/sh', '-c', 'trap "" TERM; exec /bin/sleep 1000'] });
    const stubbornHandle = await driver.start(stubborn.unit);
    await waitFor(async () => (await readFile(ns().hostPath(`/proc/${stubbornHandle.pid}/comm`), 'utf8').catch(() => '')).trim() === 'sleep', { message: 'the trap to be set (sleep executed)' });
    const forced = await driver.stop(stubborn.unit, { gracePeriodMs: 200 });
    assert.equal(forced.forced, true);
    assert.equal(forced.wasRunning, true);
    assert.equal(forced.exit?.signal, 'SIGKILL');

    // systemd's own TimeoutStopSec shorter than pm's grace period: systemd sends SIGKILL (Result=timeout).
    const short = await owned(t, 'short', { command: ['/bin/sh', '-c', 'trap "" TERM; exec /bin/sleep 1000'], gracePeriodSeconds: 0.2 });
    const shortHandle = await driver.start(short.unit);
    await waitFor(async () => (await readFile(ns().hostPath(`/proc/${shortHandle.pid}/comm`), 'utf8').catch(() => '')).trim() === 'sleep', { message: 'the trap to be set' });
    const bySystemd = await driver.stop(short.unit, { gracePeriodMs: 60_000 });
    assert.equal(bySystemd.forced, true, 'Result=timeout counts as forced');
    assert.equal(bySystemd.exit?.signal, 'SIGKILL');
  });

  test('a unit that exits 3: code 3, failed, and E_SYSTEMD_FAILED says where its output went', async (t) => {
    const { driver } = driverFor();
    const { unit, spec } = await owned(t, 'exit3', { command: ['/bin/sh', '-c', 'echo boom >&2; exit 3'] });
    // start resolves even when the program ends before systemd saw its exec succeed (a failed job).
    const handle = await driver.start(unit);
    const exit = await driver.waitExit(handle);
    assert.deepEqual(exit, { ...exit, code: 3, signal: null, known: true });
    const state = (await driver.observeMany([unit])).get(unit);
    assert.ok(state?.found);
    assert.equal(state.activeState, 'failed');
    assert.equal(state.result, 'exit-code');
    assert.equal(await readFile(spec.stderrPath, 'utf8'), 'boom\n');

    const failure = await driver.failure(unit);
    assert.ok(failure);
    hasCode('E_SYSTEMD_FAILED', /exited with code 3 \(Result=exit-code\)/)(failure);
    // journald does not run in the test namespace: the message says so instead of quoting lines,
    // and the hint names the files the output went to.
    assert.match(failure.message, /last \d+ journal lines?:|no journal lines \(/);
    assert.ok(failure.hint?.includes(spec.stderrPath), failure.hint);

    // A program that cannot be executed fails the start job itself (Type=exec).
    const missing = await owned(t, 'noexec', { command: ['/nonexistent/pm-test-program'] });
    await assert.rejects(driver.start(missing.unit), hasCode('E_SYSTEMD_FAILED', /exited with code 203 before the program ran: EXEC/));
    assert.equal(await driver.failure(`pm-${ns().processName('never')}.service`), undefined, 'an unknown unit has no failure');
  });

  test('a unit systemd does not know', async () => {
    const { driver, systemctl } = driverFor();
    const unit = `pm-${ns().processName('nope')}.service`;
    await assert.rejects(driver.start(unit), hasCode('E_SYSTEMD_UNIT_NOT_FOUND', new RegExp(unit.replace(/\./g, '\\.'))));
    await assert.rejects(driver.restart(unit), hasCode('E_SYSTEMD_UNIT_NOT_FOUND'));
    await assert.rejects(systemctl.verb('kill', unit), hasCode('E_SYSTEMD_UNIT_NOT_FOUND'));
    assert.deepEqual(await driver.stop(unit, { gracePeriodMs: 1000 }), { forced: false, wasRunning: false });
    assert.deepEqual(await driver.inspect({ driver: 'systemd', unit, owned: false }), { state: 'missing' });
    assert.deepEqual((await driver.observeMany([unit])).get(unit), { unit, found: false, loadState: 'not-found' });
    assert.equal((await driver.waitExit({ driver: 'systemd', unit, owned: false })).known, false);
  });

  test('invalid names are refused without any systemctl call', async (t) => {
    const recorder = await recordingPrefix(t);
    const { driver, systemctl } = driverFor({ prefix: recorder.prefix });
    const spec: UnitSpec = { description: 'x', command: ['/bin/true'], env: {}, stdoutPath: '/dev/null', stderrPath: '/dev/null', stopSignal: 'SIGTERM', gracePeriodSeconds: 1 };
    const refusals: Array<Promise<unknown>> = [
      driver.start('bad name.service'),
      driver.restart('pm-*.service'),
      driver.stop('-x.service', { gracePeriodMs: 1 }),
      driver.inspect({ driver: 'systemd', unit: 'no-suffix', owned: false }),
      driver.waitExit({ driver: 'systemd', unit: '1', owned: false }),
      driver.observeMany([`pm-${ns().processName('ok')}.service`, 'x/y.service']),
      driver.failure('getty@.service'),
      driver.install('bad/name', spec),
      driver.uninstall('a b', { gracePeriodMs: 1 }),
      systemctl.verb('start', 'a\nb.service'),
      systemctl.journal('..', 10),
      systemctl.cat('x.exe'),
    ];
    for (const refusal of refusals) await assert.rejects(refusal, hasCode('E_SYSTEMD_UNIT_NAME'));
    assert.deepEqual(await recorder.calls(), [], 'nothing ran');
    await driver.observeMany([`pm-${ns().processName('ok')}.service`]);
    assert.equal((await recorder.calls()).length, 1, 'the recorder does record calls');
  });

  test('showUnits: 50 units in one call, matched by name', async (t) => {
    const { driver } = driverFor();
    const units = Array.from({ length: 50 }, (_, i) => `pm-${ns().processName(`many${i}`)}.service`);
    t.after(async () => {
      for (const unit of units.slice(0, 5)) await driver.stop(unit, { gracePeriodMs: 5_000 });
      await Promise.all(units.map((unit) => rm(join(ns().unitDir, unit), { force: true })));
      await ns().execOk(['systemctl', 'daemon-reload']);
    });
    // Units pm manages but does not own: written here, only started and observed by the driver.
    await Promise.all(units.map((unit) => writeFile(join(ns().unitDir, unit), '[Unit]\nDescription=pm test many\n[Service]\nExecStart=/bin/sleep 1000\n')));
    await ns().execOk(['systemctl', 'daemon-reload']);
    const started = new Map<string, number | undefined>();
    for (const unit of units.slice(0, 5)) started.set(unit, (await driver.start(unit)).pid);

    const recorder = await recordingPrefix(t);
    const { systemctl } = driverFor({ prefix: recorder.prefix });
    const unknown = [`pm-${ns().processName('gone1')}.service`, `pm-${ns().processName('gone2')}.service`];
    const states = await systemctl.showUnits([...unknown.slice(0, 1), ...[...units].reverse(), ...unknown.slice(1)]);
    assert.equal((await recorder.calls()).length, 1, 'one systemctl call');
    assert.equal(states.size, 52);
    for (const unit of units) {
      const state = states.get(unit);
      assert.ok(state?.found, unit);
      assert.equal(state.id, unit);
      if (started.has(unit)) {
        assert.equal(state.activeState, 'active', unit);
        assert.equal(state.mainPid, started.get(unit), unit);
      } else {
        assert.equal(state.activeState, 'inactive', unit);
        assert.equal(state.mainPid, undefined, unit);
      }
    }
    for (const unit of unknown) assert.deepEqual(states.get(unit), { unit, found: false, loadState: 'not-found' });
  });

  test('install again with nothing changed skips the reload only while pm.target holds the unit: stopped by hand, it is started again, and a clean exit keeps its code', async (t) => {
    const { driver } = driverFor();
    const { name, unit, spec } = await owned(t, 'anchor', { command: ['/bin/sh', '-c', 'exit 0'] });
    await ns().execOk(['systemctl', 'stop', 'pm.target']);
    const again = await driver.install(name, spec);
    assert.equal(again.changed, false);
    assert.equal((await ns().execOk(['systemctl', 'show', '-p', 'ActiveState', '--value', 'pm.target'])).trim(), 'active', 'the anchor is started again');
    const exit = await driver.waitExit(await driver.start(unit));
    assert.deepEqual({ ...exit, at: 0 }, { code: 0, signal: null, at: 0, known: true }, 'a clean exit is still known (the unit was not garbage-collected)');
  });

  test('install refuses a unit it does not own, and one that is overridden elsewhere', async (t) => {
    const { driver } = driverFor();
    const base: UnitSpec = { description: 'x', command: ['/bin/sleep', '1000'], env: {}, stdoutPath: '/dev/null', stderrPath: '/dev/null', stopSignal: 'SIGTERM', gracePeriodSeconds: 5 };

    const shadowed = ns().processName('shadowed');
    const override = join(ns().overrideDir, `pm-${shadowed}.service`);
    t.after(async () => {
      await rm(override, { force: true });
      await driver.uninstall(shadowed, { gracePeriodMs: 5_000 });
    });
    await writeFile(override, '[Service]\nExecStart=/bin/sleep 1\n');
    await assert.rejects(driver.install(shadowed, base), hasCode('E_SYSTEMD_UNIT_SHADOWED', new RegExp(`loaded from /run/pm-test/override/pm-${shadowed}\\.service, not from the file pm wrote`)));

    const foreign = ns().processName('foreign');
    const foreignPath = join(ns().unitDir, `pm-${foreign}.service`);
    t.after(() => rm(foreignPath, { force: true }));
    await writeFile(foreignPath, '[Service]\nExecStart=/bin/sleep 1\n');
    await assert.rejects(driver.install(foreign, base), hasCode('E_SYSTEMD_UNIT_SHADOWED', /was not written by pm/));
    await assert.rejects(driver.uninstall(foreign, { gracePeriodMs: 1 }), hasCode('E_SYSTEMD_UNIT_SHADOWED', /was not written by pm/));
    assert.equal(await readFile(foreignPath, 'utf8'), '[Service]\nExecStart=/bin/sleep 1\n', 'left as it was');
  });

  test('restart makes a new run: waitExit on the old handle ends (unknown); waitExit is cancellable', async (t) => {
    const { driver } = driverFor();
    const { unit } = await owned(t, 'restart');
    const first = await driver.start(unit);
    assert.deepEqual(await driver.start(unit), first, 'start on a running unit leaves it alone');
    const second = await driver.restart(unit);
    assert.notEqual(second.invocationId, first.invocationId);
    assert.equal((await driver.waitExit(first)).known, false);
    assert.equal((await driver.inspect(first)).state, 'exited');
    assert.deepEqual(await driver.inspect(second), { state: 'running', pid: second.pid });

    const controller = new AbortController();
    const waiting = driver.waitExit(second, controller.signal);
    const reason = new Error('daemon stopping');
    controller.abort(reason);
    await assert.rejects(waiting, (error: unknown) => error === reason);
    assert.deepEqual(await driver.inspect(second), { state: 'running', pid: second.pid }, 'cancelling the wait leaves the unit alone');
  });

  test('privileges: the polkit rule lets a user run exactly the verbs given on exactly the units given', async (t) => {
    const allowed = await owned(t, 'pk-allowed');
    const other = await owned(t, 'pk-other');
    const { polkitRule } = privileges([allowed.unit], ['start', 'stop'], { user: 'nobody' });
    assert.ok(polkitRule.includes(allowed.unit));
    assert.ok(!polkitRule.includes(other.unit));
    await ns().enablePolkit(polkitRule);

    const { driver } = driverFor({ prefix: [...ns().prefix, ...NOBODY] });
    const handle = await driver.start(allowed.unit);
    assert.equal((await driver.inspect(handle)).state, 'running');
    await assert.rejects(driver.restart(allowed.unit), hasCode('E_SYSTEMD_ACCESS_DENIED', /Interactive authentication required/));
    await assert.rejects(driver.start(other.unit), hasCode('E_SYSTEMD_ACCESS_DENIED'));
    assert.equal((await driver.stop(allowed.unit, { gracePeriodMs: 30_000 })).wasRunning, true);
  });

  test('privileges: the sudoers lines let `sudo -n` run exactly those command lines', async (t) => {
    const sudoMissing = !existsSync('/usr/bin/sudo') ? 'sudo is not installed (apt-get install -y sudo)' : undefined;
    if (sudoMissing && process.env.PM_TEST_STRICT !== '1') return t.skip(sudoMissing);
    assert.equal(sudoMissing, undefined, `${sudoMissing} (PM_TEST_STRICT=1: a failure, not a skip)`);
    const allowed = await owned(t, 'sudo-allowed');
    const other = await owned(t, 'sudo-other');
    const result = privileges([allowed.unit], ['start', 'stop', 'kill'], { user: 'nobody' });
    assert.ok(!result.sudoers.includes(other.unit));

    // Only this namespace sees the file: /etc/sudoers.d is a private tmpfs there.
    const dir = await ns().privateDir('/etc/sudoers.d');
    await writeFile(join(dir, 'pm-nobody'), result.sudoers, { mode: 0o440 });
    await ns().execOk(['visudo', '-c', '-f', '/etc/sudoers.d/pm-nobody']);

    // sudo for the verbs only. Reads need no privilege; they run as root here because nobody's
    // systemctl would need the system bus, which only the polkit test starts.
    const { driver } = driverFor({ prefix: [...ns().prefix, ...NOBODY, ...result.sudoRunner.prefix], readPrefix: ns().prefix });
    const handle = await driver.start(allowed.unit);
    assert.equal((await driver.inspect(handle)).state, 'running');
    await assert.rejects(driver.restart(allowed.unit), hasCode('E_SYSTEMD_ACCESS_DENIED', /sudo refused/));
    await assert.rejects(driver.start(other.unit), hasCode('E_SYSTEMD_ACCESS_DENIED', /sudo refused/));
    assert.equal((await driver.stop(allowed.unit, { gracePeriodMs: 30_000 })).wasRunning, true);
  });

  test('E_SYSTEMD_NOT_RUNNING where systemd is not PID 1 (this host)', async (t) => {
    if (existsSync('/run/systemd/system')) return t.skip('this host runs systemd as PID 1');
    const systemctl = new Systemctl({ prefix: [] });
    await assert.rejects(systemctl.showUnits(['pm-x.service']), hasCode('E_SYSTEMD_NOT_RUNNING', /not booted with systemd|not running/));
    await assert.rejects(systemctl.verb('start', 'pm-x.service'), hasCode('E_SYSTEMD_NOT_RUNNING'));
  });

  test('nothing of the earlier tests is left: no unit files, no loaded test units', async () => {
    const prefix = `pm-t${process.pid}n`;
    assert.deepEqual((await readdir(ns().unitDir)).filter((file) => file.startsWith(prefix) && !file.endsWith('-polkit.service')), []);
    const anchors = await readdir(join(ns().unitDir, 'pm.target.d')).catch(() => []);
    assert.deepEqual(anchors.filter((file) => file.startsWith(prefix)), [], 'no pm.target drop-ins left');
    const listed = await ns().execOk(['systemctl', 'list-units', '--all', '--plain', '--no-legend', `${prefix}*`]);
    assert.deepEqual(listed.split('\n').filter((line) => line.trim() !== '' && !line.includes('-polkit.service')), []);
  });
});
