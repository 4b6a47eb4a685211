// `pm privileges` against a real systemd 252 and polkit (test/support/systemd.ts): the rule the
// built CLI prints is installed as it is, and user nobody, through setpriv, does exactly what pm
// does: install, start, restart, stop and uninstall of a unit pm writes (daemon-reload and
// `start pm.target` included) and of an existing unit, while any other unit or verb is refused,
// and daemon-reload is refused once the set has no unit pm writes.
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SystemdDriver } from '../../src/drivers/systemd/driver.js';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { Systemctl } from '../../src/drivers/systemd/systemctl.js';
import type { UnitSpec } from '../../src/drivers/systemd/unit-file.js';
import { createSandbox } from '../support/cli.js';
import { bootSystemd, systemdSkip, type SystemdNamespace } from '../support/systemd.js';
import { tempDir } from '../support/tmp.js';

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

function denied(error: unknown): boolean {
  if (!(error instanceof SystemdError)) throw error;
  assert.equal(error.code, 'E_SYSTEMD_ACCESS_DENIED', error.message);
  return true;
}

const manifest = (name: string, spec: string): string => `apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata: {name: ${name}}\nspec:\n${spec}`;

describe('pm privileges against a real systemd and polkit', { skip: systemdSkip() }, () => {
  let sd: SystemdNamespace | undefined;
  before(async () => {
    sd = await bootSystemd();
  });
  after(() => sd?.destroy());

  test('the printed rule lets nobody drive exactly the units of the manifests; daemon-reload only while pm writes one', async (t) => {
    assert.ok(sd, 'systemd booted');
    const ns = sd;
    const asRoot = new Systemctl({ prefix: ns.prefix, timeoutMs: 30_000 });
    const rootDriver = new SystemdDriver({ systemctl: asRoot, unitDir: ns.unitDir, systemdUnitDir: ns.systemdUnitDir });
    const systemctl = new Systemctl({ prefix: [...ns.prefix, ...NOBODY], timeoutMs: 30_000 });
    const driver = new SystemdDriver({ systemctl, unitDir: ns.unitDir, systemdUnitDir: ns.systemdUnitDir, waitPollMs: 50 });
    const logs = await tempDir(t);
    const spec = (label: string): UnitSpec => ({
      description: `pm test ${label}`,
      command: ['/bin/sleep', '1000'],
      env: {},
      stdoutPath: join(logs, `${label}.log`),
      stderrPath: join(logs, `${label}.log`),
      stopSignal: 'SIGTERM',
      gracePeriodSeconds: 30,
    });

    // An existing unit (pm never writes it; named without pm-, as manifests require) and a unit of
    // no manifest, both set up as root and removed as root, pass or fail.
    const web = `pmtest-${ns.processName('web')}.service`;
    t.after(async () => {
      await rootDriver.stop(web, { gracePeriodMs: 5_000 });
      await rm(join(ns.unitDir, web), { force: true });
      await asRoot.daemonReload();
    });
    await writeFile(join(ns.unitDir, web), '[Unit]\nDescription=pm test existing unit\n[Service]\nExecStart=/bin/sleep 1000\n');
    const otherName = ns.processName('other');
    t.after(() => rootDriver.uninstall(otherName, { gracePeriodMs: 5_000 }));
    const other = (await rootDriver.install(otherName, spec('other'))).unit;
    const api = ns.processName('api');
    const apiUnit = `pm-${api}.service`;
    t.after(() => rootDriver.uninstall(api, { gracePeriodMs: 5_000 }));

    const sandbox = await createSandbox(t);
    await sandbox.write('writes/set.yaml', [
      manifest('web', `  driver: systemd\n  systemd: {unit: ${web}}\n`),
      manifest(api, '  driver: systemd\n  systemd: {command: [/bin/sleep, "1000"]}\n'),
      manifest('job', '  exec: {command: [/bin/true]}\n'),
    ].join('---\n'));
    await sandbox.write('existing/set.yaml', manifest('web', `  driver: systemd\n  systemd: {unit: ${web}}\n`));
    const printed = async (dir: string): Promise<string> => {
      const result = await sandbox.pm(['privileges', '-f', dir, '--user', 'nobody', '--format', 'polkit']);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout;
    };

    // With a unit pm writes: the whole of pm's work on both units, as nobody.
    const rule = await printed('writes');
    assert.ok(rule.includes(web) && rule.includes(apiUnit) && !rule.includes(other));
    await ns.enablePolkit(rule);
    const installed = await driver.install(api, spec('api'));
    assert.equal(installed.unit, apiUnit, 'daemon-reload and start pm.target as nobody');
    const apiRun = await driver.start(apiUnit);
    assert.equal((await driver.inspect(apiRun)).state, 'running');
    assert.notEqual((await driver.restart(apiUnit)).invocationId, apiRun.invocationId);
    const webRun = await driver.start(web);
    assert.equal((await driver.inspect(webRun)).state, 'running');
    assert.equal((await driver.stop(web, { gracePeriodMs: 30_000 })).wasRunning, true);
    await assert.rejects(systemctl.verb('start', other), denied, 'a unit of no manifest');
    await assert.rejects(systemctl.verb('stop', 'pm.target'), denied, 'only start on pm.target');
    const removed = await driver.uninstall(api, { gracePeriodMs: 30_000 });
    assert.deepEqual([removed.removed, removed.stop.wasRunning], [true, true], 'stop, reset-failed and daemon-reload as nobody');

    // Without one: the existing unit still works; daemon-reload and pm.target are refused.
    const narrower = await printed('existing');
    assert.ok(!narrower.includes('reload-daemon') && !narrower.includes('pm.target') && !narrower.includes(apiUnit));
    await ns.enablePolkit(narrower);
    await driver.start(web);
    assert.equal((await driver.stop(web, { gracePeriodMs: 30_000 })).wasRunning, true);
    await assert.rejects(systemctl.daemonReload(), denied, 'daemon-reload');
    await assert.rejects(systemctl.verb('start', 'pm.target'), denied, 'start pm.target');
    await assert.rejects(systemctl.verb('restart', other), denied, 'a unit of no manifest');
  });
});
