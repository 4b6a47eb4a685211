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
import { createDaemonSandbox, fixtureManifest, quickRestarts, startDaemon } from '../support/daemon.js';
import type { Sandbox } from '../support/cli.js';
import { programPath } from '../support/cli.js';
import { bootSystemd, systemdSkip, type SystemdNamespace } from '../support/systemd.js';
import { waitFor } from '../support/wait.js';

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
    assert.match(await readFile(join(ns().unitDir, unit), 'utf8'), /Environment="GREETING=bonjour"/);

    // Its manifest removed: stopped, and the file pm wrote is gone; systemd no longer knows it.
    await sandbox.remove(`manifests/${name}.yaml`);
    await waitFor(() => !existsSync(join(ns().unitDir, unit)), { message: 'the unit file removed', timeoutMs: 30_000 });
    await waitFor(async () => (await show(unit, ['LoadState'])).LoadState === 'not-found', { message: 'the unit unknown to systemd', timeoutMs: 30_000 });
  });

  test('an existing unit: started, restarted after a stop by hand, stopped but left in place when its manifest goes; pm logs reads its journal', async (t) => {
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
    const daemon = await startDaemon(sandbox, { env: systemdEnv() });
    await daemon.waitFor(name, (s) => s.phase === 'Ready', 'the existing unit started and Ready', 30_000);
    assert.equal((await show(unit, ['ActiveState'])).ActiveState, 'active');

    await ns().execOk(['systemctl', 'stop', unit]);
    await daemon.waitFor(name, (s) => s.phase === 'Ready' && s.restarts === 1, 'started again after systemctl stop', 30_000);

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

  test('pm apply without a daemon: the unit runs, pm get shows it, pm delete removes it', async (t) => {
    const sandbox = await createDaemonSandbox(t);
    const name = ns().processName('job');
    const unit = `pm-${name}.service`;
    removeUnitsAfter(t, [unit]);
    const port = await sandbox.freePort();
    await sandbox.write(`manifests/${name}.yaml`, unitManifest(sandbox, name, port));
    const env = { env: systemdEnv() };
    const applied = await sandbox.pm(['apply', '-f', 'manifests/'], env);
    assert.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
    assert.equal((await show(unit, ['ActiveState'])).ActiveState, 'active');
    const got = await sandbox.pm(['get', '-o', 'json'], env);
    const items = JSON.parse(got.stdout) as { name: string; state: string; command: string[] }[];
    assert.deepEqual(items.map((i) => [i.name, i.state, i.command[0]]), [[name, 'Running', process.execPath]]);
    const deleted = await sandbox.pm(['delete', name], env);
    assert.equal(deleted.code, 0, `${deleted.stdout}\n${deleted.stderr}`);
    assert.equal(existsSync(join(ns().unitDir, unit)), false);
  });
});
