// Units under pm daemon and pm apply, against a real systemd 252 booted as PID 1 of its own PID +
// mount namespace for this file (test/support/systemd.ts), reached through PM_SYSTEMCTL_PREFIX =
// nsenter. A unit pm writes runs with the manifest's command, environment and limits (read back
// with `systemctl show`); stopped or killed by hand it is started again; a spec change gives a new
// run with the new settings; removing the manifest removes the unit. An existing unit is started,
// restarted after a stop by hand, and left in place when its manifest goes. One graph across
// drivers: an exec process waits for a unit's readiness. Units are this file's own (named after
// this test process) and removed when each test ends; the namespace dies with the file.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { stringify } from 'yaml';
import { ownerIdOf } from '../../src/drivers/index.js';
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import { dockerSkip, engineClient, ensureTestImage, removeOwned, TEST_IMAGE } from '../support/docker.js';
import type { Sandbox } from '../support/cli.js';
import { programPath } from '../support/cli.js';
import { bootSystemd, systemdSkip, type SystemdNamespace } from '../support/systemd.js';
import { waitFor, waitForValue } from '../support/wait.js';

describe('systemd processes under pm, against a real systemd', { skip: systemdSkip() }, () => {
  let sd: SystemdNamespace | undefined;
  before(async () => {
    sd = await bootSystemd();
  });
  after(() => sd?.destroy());

  function ns(): SystemdNamespace {
    assert.ok(sd, 'systemd booted');
    return sd;
  }

  /** pm's settings for this systemd: systemctl through nsenter, unit files in its private /run. */
  function systemdEnv(): Record<string, string> {
    return {
      PM_SYSTEMCTL_PREFIX: JSON.stringify(ns().prefix),
      PM_SYSTEMD_UNIT_DIR: ns().unitDir,
      PM_SYSTEMD_UNIT_DIR_SEEN_BY_SYSTEMD: ns().systemdUnitDir,
      PM_SYSTEMD_POLL_MS: '50',
    };
  }

  async function show(unit: string, properties: string[]): Promise<Record<string, string>> {
    const out = await ns().execOk(['systemctl', 'show', '-p', properties.join(','), unit]);
    return Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  }

  /** Units stopped, their files removed and systemd reloaded when the test ends, passed or failed. */
  function removeUnitsAfter(t: TestContext, units: string[]): void {
    t.after(async () => {
      for (const unit of units) {
        await ns().exec(['systemctl', 'stop', unit]);
        await ns().exec(['systemctl', 'reset-failed', unit]);
        await ns().exec(['rm', '-f', `/run/systemd/system/${unit}`, `/run/systemd/system/pm.target.d/${unit}.conf`]);
      }
      await ns().exec(['systemctl', 'daemon-reload']);
    });
  }

  /** A unit pm writes: the http-server fixture on `port`, ready when /ready answers. */
  function unitManifest(sandbox: Sandbox, name: string, port: number, extra: { env?: Record<string, string>; spec?: Record<string, unknown> } = {}): string {
    return stringify({
      apiVersion: 'pm.dev/v1alpha1',
      kind: 'Process',
      metadata: { name },
      spec: {
        driver: 'systemd',
        systemd: { command: [process.execPath, programPath('http-server')], env: { PORT: String(port), GREETING: 'hello', ...extra.env } },
        ports: [{ name: 'http', port }],
        probes: { readiness: { http: { port: 'http', path: '/ready' }, periodSeconds: 0.2 } },
        minReadySeconds: 0,
        stop: { gracePeriodSeconds: 5 },
        restartPolicy: { backoff: { initialSeconds: 0.05, jitter: 0 } },
        ...extra.spec,
      },
    });
  }

  async function mainPid(unit: string): Promise<string> {
    const { MainPID } = await show(unit, ['MainPID']);
    assert.ok(MainPID && MainPID !== '0', `${unit} has a main process`);
    return MainPID;
  }

  /** The environment of the unit's main process, read inside the namespace. */
  async function environOf(unit: string): Promise<string[]> {
    const pid = await mainPid(unit);
    return (await ns().execOk(['cat', `/proc/${pid}/environ`])).split('\0');
  }

  async function sandboxWithKeep(t: TestContext): Promise<Sandbox> {
    const sandbox = await createDaemonSandbox(t);
    // The directory keeps one manifest when a unit's goes: an empty directory is refused as a mistake.
    await sandbox.write('manifests/keep.yaml', fixtureManifest(sandbox, { name: 'keep', program: 'idle' }, quickRestarts()));
    return sandbox;
  }

  test('a unit pm writes: command, environment and limits in force; restored after a stop or a kill by hand; a spec change is a new run; removed with its manifest', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const name = ns().processName('web');
    const unit = `pm-${name}.service`;
    removeUnitsAfter(t, [unit]);
    const port = await sandbox.freePort();
    const limits = { resources: { memory: '256Mi', cpus: 0.5, ioWeight: 500, openFiles: 4096, pids: 64 } };
    await sandbox.write(`manifests/${name}.yaml`, unitManifest(sandbox, name, port, { spec: limits }));
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });

    const ready = await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the unit Ready through its port', 30_000);
    assert.equal(ready.driver, 'systemd');
    const file = await readFile(join(ns().unitDir, unit), 'utf8');
    assert.match(file, /^# Written by pm/);
    assert.match(file, /^Restart=no$/m, 'pm restarts it, not systemd');
    const props = await show(unit, ['ActiveState', 'MemoryMax', 'CPUQuotaPerSecUSec', 'IOWeight', 'LimitNOFILE', 'TasksMax', 'NRestarts']);
    assert.deepEqual(props, {
      ActiveState: 'active',
      MemoryMax: String(256 * 1024 * 1024),
      CPUQuotaPerSecUSec: '500ms',
      // Docker's blkio scale (10–1000) on systemd's (1–10000), as runc converts it.
      IOWeight: '4950',
      LimitNOFILE: '4096',
      TasksMax: '64',
      NRestarts: '0',
    });
    const environ = await environOf(unit);
    assert.ok(environ.includes('GREETING=hello') && environ.includes(`PORT=${port}`));
    assert.ok(!environ.some((e) => e.startsWith('XDG_CONFIG_HOME=')), 'nothing of pm\'s own environment');
    // Its output goes to pm's log file: pm logs shows it.
    await waitFor(async () => (await sandbox.pm(['logs', name])).stdout.includes(`listening on ${port}`), { message: 'the unit\'s output in pm logs' });

    // Stopped by hand: an exit pm did not ask for, so the policy (always) starts it again.
    const first = (await show(unit, ['InvocationID'])).InvocationID;
    await ns().execOk(['systemctl', 'stop', unit]);
    await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 1, 'started again after systemctl stop', 30_000);
    const second = (await show(unit, ['InvocationID'])).InvocationID;
    assert.notEqual(second, first);

    // Killed: the exit is read from systemd (SIGKILL), and it is started again.
    await ns().execOk(['kill', '-9', await mainPid(unit)]);
    const killed = await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 2, 'started again after kill -9', 30_000);
    assert.equal(killed.lastExit?.signal, 'SIGKILL');

    // A spec change: the file is rewritten and the unit runs again with the new environment.
    await sandbox.write(`manifests/${name}.yaml`, unitManifest(sandbox, name, port, { env: { GREETING: 'bonjour' }, spec: limits }));
    await waitFor(async () => (await environOf(unit).catch((): string[] => [])).includes('GREETING=bonjour'), { message: 'the new environment in force', timeoutMs: 30_000 });
    await daemon.waitFor(name, (s) => s.phase === 'Ready', 'Ready after the change', 30_000);
    // The start says what changed (it once said only "changed: ").
    await daemon.waitForEvent(name, (e) => e.type === 'Started' && e.message.endsWith(': changed: spec.systemd.env.GREETING'), 'a Started event naming the changed field');
    assert.match(await readFile(join(ns().unitDir, 'pm-env', `${unit}.env`), 'utf8'), /^GREETING="bonjour"$/m);

    // Its manifest removed: stopped, and the file pm wrote is gone; systemd no longer knows it.
    await sandbox.remove(`manifests/${name}.yaml`);
    await waitFor(() => !existsSync(join(ns().unitDir, unit)), { message: 'the unit file removed', timeoutMs: 30_000 });
    await waitFor(async () => (await show(unit, ['LoadState'])).LoadState === 'not-found', { message: 'the unit unknown to systemd', timeoutMs: 30_000 });
  });

  test('an existing unit: started; restarted by hand it is the same unit (no failure, no second start); stopped by hand it is started again; left in place when its manifest goes; pm logs reads its journal', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const label = ns().processName('legacy');
    // Not pm-…: those names are the units pm writes. The harness sweeps units by the owner in the name.
    const unit = `${label.replace(/^/, 'ext-')}.service`;
    removeUnitsAfter(t, [unit]);
    const port = await sandbox.freePort();
    await writeFile(
      join(ns().unitDir, unit),
      `[Unit]\nDescription=an existing unit (pm test)\n[Service]\nType=exec\nEnvironment=PORT=${port}\nExecStart=${process.execPath} ${programPath('http-server')}\n`,
    );
    await ns().execOk(['systemctl', 'daemon-reload']);
    const name = label;
    await sandbox.write(
      `manifests/${name}.yaml`,
      stringify({
        apiVersion: 'pm.dev/v1alpha1',
        kind: 'Process',
        metadata: { name },
        spec: {
          driver: 'systemd',
          systemd: { unit },
          ports: [{ name: 'http', port }],
          probes: { readiness: { tcp: { port: 'http' }, periodSeconds: 0.2 } },
          minReadySeconds: 0,
          restartPolicy: { backoff: { initialSeconds: 0.05, jitter: 0 } },
        },
      }),
    );
    // Reads go through a prefix that logs them, so the test knows when pm has looked again.
    const reads = sandbox.path('reads.log');
    const wrapper = await sandbox.write('record.sh', 'log=$1; shift; printf "%s\\n" "$*" >> "$log"; exec "$@"\n');
    const countReads = async (): Promise<number> => (await readFile(reads, 'utf8').catch(() => '')).split('\n').filter((l) => l.includes(' show ')).length;
    const daemon = await startDaemon(sandbox, { env: { ...systemdEnv(), PM_SYSTEMCTL_READ_PREFIX: JSON.stringify(['/bin/sh', wrapper, reads, ...ns().prefix]) } });
    await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the existing unit started and Ready', 30_000);
    assert.equal((await show(unit, ['ActiveState'])).ActiveState, 'active');

    // Restarted by hand (a package upgrade, logrotate): pm supervises the unit, not one run of it.
    await ns().execOk(['systemctl', 'restart', unit]);
    const byHand = (await show(unit, ['InvocationID'])).InvocationID;
    const seen = await countReads();
    await waitFor(async () => (await countReads()) >= seen + 3, { message: 'pm to have read the unit again' });
    const after = await daemon.get(name);
    assert.deepEqual([after.restarts, after.backoff.failures], [0, 0], 'no failure counted, nothing restarted');
    assert.equal((await show(unit, ['InvocationID'])).InvocationID, byHand, 'the run started by hand is left running');
    assert.equal((await daemon.events(name)).filter((e) => e.type === 'Started' || e.type === 'Exited').length, 1, 'one Started, no Exited');

    await ns().execOk(['systemctl', 'stop', unit]);
    await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 1, 'started again after systemctl stop', 30_000);

    // Its output is in the journal: pm logs reads it there (this throwaway systemd runs no journald, so it is empty).
    const logs = await sandbox.pm(['logs', name, '--tail', '5'], { env: { ...systemdEnv(), PM_SYSTEMCTL_READ_PREFIX: JSON.stringify(['/bin/sh', wrapper, reads, ...ns().prefix]) } });
    assert.equal(logs.code, 0, logs.stderr);
    const journal = (await readFile(reads, 'utf8')).split('\n').filter((l) => l.includes('journalctl'));
    assert.equal(journal.length, 1);
    assert.match(journal[0] ?? '', new RegExp(`journalctl -u ${unit.replace(/\./g, '\\.')} --no-pager -o cat -q -n 5$`));

    await sandbox.remove(`manifests/${name}.yaml`);
    await waitFor(async () => (await show(unit, ['ActiveState'])).ActiveState === 'inactive', { message: 'the unit stopped with its manifest gone', timeoutMs: 30_000 });
    assert.ok(existsSync(join(ns().unitDir, unit)), 'pm never removes a unit it did not write');
  });

  test('one graph across drivers: an exec process waits for a unit to be ready', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const name = ns().processName('db');
    removeUnitsAfter(t, [`pm-${name}.service`]);
    const port = await sandbox.freePort();
    const readyFile = sandbox.path('db-ready');
    await sandbox.write(`manifests/${name}.yaml`, unitManifest(sandbox, name, port, { env: { READY_FILE: readyFile } }));
    await sandbox.write('manifests/app.yaml', fixtureManifest(sandbox, { name: 'app', program: 'idle', dependsOn: [{ name, condition: 'ready' }] }, quickRestarts()));
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });

    const waiting = await daemon.waitFor('app', (s) => s.phase === 'Waiting', 'app waiting for the unit', 30_000);
    assert.match(waiting.detail ?? '', new RegExp(name));
    assert.equal((await daemon.get(name)).phase, 'Starting', 'the unit runs but is not ready yet');
    await writeFile(readyFile, '');
    await daemon.waitFor('app', (s) => s.phase === 'Ready', 'app Ready once the unit is', 30_000);
    const events = await daemon.events();
    const unitReady = events.findIndex((e) => e.process === name && e.type === 'Ready');
    const appStarted = events.findIndex((e) => e.process === 'app' && e.type === 'Started');
    assert.ok(unitReady >= 0 && appStarted > unitReady, 'app started after the unit was ready');
  });

  test('pm apply without a daemon: the units run, pm get reads all their states with one systemctl show, pm delete removes them', async (t) => {
    const sandbox = await createDaemonSandbox(t);
    const names = [0, 1, 2].map((i) => ns().processName(`job${i}`));
    removeUnitsAfter(t, names.map((n) => `pm-${n}.service`));
    for (const name of names) await sandbox.write(`manifests/${name}.yaml`, unitManifest(sandbox, name, await sandbox.freePort()));
    const env = { env: systemdEnv() };
    const applied = await sandbox.pm(['apply', '-f', 'manifests/'], env);
    assert.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
    for (const name of names) assert.equal((await show(`pm-${name}.service`, ['ActiveState'])).ActiveState, 'active');

    // A read prefix that logs each call: pm get's observations of the three units are one read.
    const calls = sandbox.path('reads.log');
    const wrapper = await sandbox.write('record.sh', 'log=$1; shift; printf "%s\\n" "$*" >> "$log"; exec "$@"\n');
    const got = await sandbox.pm(['get', '-o', 'json'], { env: { ...systemdEnv(), PM_SYSTEMCTL_READ_PREFIX: JSON.stringify(['/bin/sh', wrapper, calls, ...ns().prefix]) } });
    assert.equal(got.code, 0, got.stderr);
    const items = JSON.parse(got.stdout) as { name: string; state: string; command: string[] }[];
    assert.deepEqual(
      items.map((i) => [i.name, i.state, i.command[0]]),
      names.map((n) => [n, 'Running', process.execPath]),
    );
    const reads = (await readFile(calls, 'utf8')).split('\n').filter((l) => l.includes(' show '));
    assert.equal(reads.length, 1, reads.join('\n'));
    for (const name of names) assert.ok(reads[0]?.includes(`pm-${name}.service`));

    const deleted = await sandbox.pm(['delete', ...names], env);
    assert.equal(deleted.code, 0, `${deleted.stdout}\n${deleted.stderr}`);
    for (const name of names) assert.equal(existsSync(join(ns().unitDir, `pm-${name}.service`)), false);
  });
  test('a unit that cannot start (its user does not exist): StartFailed says why and where its output goes; a counted failure, and pm does not crash', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const name = ns().processName('nouser');
    const unit = `pm-${name}.service`;
    removeUnitsAfter(t, [unit]);
    const port = await sandbox.freePort();
    const manifest = unitManifest(sandbox, name, port, { spec: { restartPolicy: { backoff: { initialSeconds: 60, jitter: 0 } } } }).replace('    env:\n', '    user: pm-no-such-user\n    env:\n');
    await sandbox.write(`manifests/${name}.yaml`, manifest);
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });
    const status = await daemon.waitFor(name, (s) => s.phase === 'BackOff' && s.backoff.failures === 1, 'one failed start, counted', 30_000);
    assert.match(status.lastError ?? '', new RegExp(`${unit} failed: .*USER: the user could not be set`));
    const failed = await daemon.waitForEvent(name, (e) => e.type === 'StartFailed', 'StartFailed');
    assert.match(failed.message, /USER: the user could not be set \(does it exist\?\)/);
    assert.equal((await daemon.get('keep')).phase, 'Ready', 'the other processes are supervised as before');
  });

  test('hooks and a restart script work for a unit: preStart before it, postStart with its PID, the script on pm restart (same run), preStop before its stop', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const name = ns().processName('hooked');
    const unit = `pm-${name}.service`;
    removeUnitsAfter(t, [unit]);
    const port = await sandbox.freePort();
    const log = sandbox.path('hooks.log');
    const record = (what: string): string[] => ['/bin/sh', '-c', `printf '%s %s\\n' "${what}" "$PM_PID" >> '${log}'`];
    await sandbox.write(
      `manifests/${name}.yaml`,
      unitManifest(sandbox, name, port, {
        spec: {
          hooks: { preStart: { command: record('preStart') }, postStart: { command: record('postStart') }, preStop: { command: record('preStop') } },
          restartPolicy: { strategy: 'script', script: { command: record('script') }, backoff: { initialSeconds: 0.05, jitter: 0 } },
        },
      }),
    );
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });
    await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the unit Ready', 30_000);
    const pid = await mainPid(unit);
    const invocation = (await show(unit, ['InvocationID'])).InvocationID;
    await waitForValue(async () => ((await readFile(log, 'utf8').catch(() => '')).includes('postStart') ? true : undefined), { message: 'postStart to run' });

    assert.equal((await daemon.control('restart', name)).changed, true);
    await daemon.waitForEvent(name, (e) => e.type === 'ScriptRan', 'the restart script to run');
    assert.equal((await show(unit, ['InvocationID'])).InvocationID, invocation, 'the script restarts nothing itself: the same run');

    await sandbox.remove(`manifests/${name}.yaml`);
    await waitFor(async () => (await show(unit, ['LoadState'])).LoadState === 'not-found', { message: 'the unit removed', timeoutMs: 30_000 });
    // PM_PID is the unit's MainPID as systemd sees it (its PID namespace here).
    assert.deepEqual((await readFile(log, 'utf8')).trim().split('\n'), ['preStart ', `postStart ${pid}`, `script ${pid}`, `preStop ${pid}`]);
  });

  test('one graph across three drivers: a unit waits for a container, an exec process for the unit', { skip: dockerSkip() }, async (t) => {
    await ensureTestImage();
    const docker = engineClient();
    const sandbox = await sandboxWithKeep(t);
    const owner = await ownerIdOf(sandbox.stateDir);
    t.after(() => removeOwned(docker, owner));
    const db = ns().processName('store');
    const api = ns().processName('api');
    removeUnitsAfter(t, [`pm-${api}.service`]);
    const [dbPort, apiPort] = [await sandbox.freePort(), await sandbox.freePort()];
    await sandbox.write(
      `manifests/${db}.yaml`,
      stringify({
        apiVersion: 'pm.dev/v1alpha1',
        kind: 'Process',
        metadata: { name: db },
        spec: {
          driver: 'docker',
          docker: { image: TEST_IMAGE, command: ['sh', '-c', 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www'], publish: [{ containerPort: 8080, hostPort: dbPort }] },
          ports: [{ name: 'http', port: dbPort }],
          probes: { readiness: { http: { port: 'http', path: '/' }, periodSeconds: 0.2 } },
          minReadySeconds: 0,
          stop: { gracePeriodSeconds: 2 },
        },
      }),
    );
    await sandbox.write(`manifests/${api}.yaml`, unitManifest(sandbox, api, apiPort, { spec: { dependsOn: [{ name: db, condition: 'ready' }] } }));
    await sandbox.write('manifests/web.yaml', fixtureManifest(sandbox, { name: 'web', program: 'idle', dependsOn: [{ name: api, condition: 'ready' }] }, quickRestarts()));
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });
    await daemon.waitFor('web', (s) => s.phase === 'Ready', 'web Ready at the end of the chain', 60_000);
    const events = await daemon.events();
    const at = (process: string, type: string): number => events.findIndex((e) => e.process === process && e.type === type);
    assert.ok(at(db, 'Ready') >= 0 && at(db, 'Ready') < at(api, 'Started'), 'the unit started after the container was ready');
    assert.ok(at(api, 'Ready') < at('web', 'Started'), 'the exec process started after the unit was ready');
  });

  test('exits of many units are polled together: one systemctl show per round, whatever the number of units', async (t) => {
    const sandbox = await sandboxWithKeep(t);
    const names = Array.from({ length: 12 }, (_, i) => ns().processName(`many${i}`));
    removeUnitsAfter(t, names.map((n) => `pm-${n}.service`));
    // A prefix that logs each systemctl call, then runs it in the namespace.
    const calls = sandbox.path('calls.log');
    const wrapper = await sandbox.write('record.sh', 'log=$1; shift; printf "%s\\n" "$*" >> "$log"; exec "$@"\n');
    for (const name of names) {
      await sandbox.write(`manifests/${name}.yaml`, stringify({ apiVersion: 'pm.dev/v1alpha1', kind: 'Process', metadata: { name }, spec: { driver: 'systemd', systemd: { command: ['/bin/sleep', '1000'] }, minReadySeconds: 0 } }));
    }
    const env = { ...systemdEnv(), PM_SYSTEMCTL_PREFIX: JSON.stringify(['/bin/sh', wrapper, calls, ...ns().prefix]), PM_SYSTEMD_POLL_MS: '100' };
    const daemon = await startDaemon(sandbox, { env });
    for (const name of names) await daemon.waitFor(name, (s) => s.phase === 'Ready', `${name} Ready`, 30_000);
    const shows = async (): Promise<string[]> => (await readFile(calls, 'utf8')).split('\n').filter((l) => / show -p Id,Names,/.test(l));
    const before = (await shows()).length;
    await waitFor(async () => (await shows()).length >= before + 5, { message: 'five more poll rounds' });
    const rounds = (await shows()).slice(before, before + 5);
    for (const round of rounds) {
      const polled = names.filter((n) => round.includes(`pm-${n}.service`));
      assert.equal(polled.length, names.length, `every unit in each round: ${round}`);
    }
    // And an exit among them is still seen: the one killed is started again.
    await ns().execOk(['kill', '-9', await mainPid(`pm-${names[3]}.service`)]);
    await daemon.waitFor(names[3] as string, (s) => s.restarts === 1 && s.phase === 'Ready', 'the killed unit started again', 30_000);
  });
});
