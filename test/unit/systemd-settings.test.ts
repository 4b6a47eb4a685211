// How pm reaches systemd, from its environment: defaults, prefixes as words or JSON, and every bad
// value refused naming the variable.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PmError } from '../../src/errors.js';
import { systemdSettingsOf } from '../../src/drivers/systemd/settings.js';
import { unitLimitsOf } from '../../src/drivers/systemd-process.js';
import { ioWeightV2 } from '../../src/manifest/resources.js';
import type { ProcessManifest } from '../../src/manifest/types.js';

test('defaults: the system manager, systemctl as it is, runtime units in /run/systemd/system', () => {
  assert.deepEqual(systemdSettingsOf({}), { scope: 'system', prefix: [], readPrefix: [], unitDir: '/run/systemd/system', systemdUnitDir: '/run/systemd/system', timeoutMs: 30_000 });
});

test('a prefix as words or as a JSON array; the read prefix defaults to it, [] turns it off', () => {
  const sudo = systemdSettingsOf({ PM_SYSTEMCTL_PREFIX: 'sudo  -n', PM_SYSTEMCTL_READ_PREFIX: '[]' });
  assert.deepEqual([sudo.prefix, sudo.readPrefix], [['sudo', '-n'], []]);
  const ns = systemdSettingsOf({ PM_SYSTEMCTL_PREFIX: '["nsenter","-t","42","-m","-p","--"]' });
  assert.deepEqual([ns.prefix, ns.readPrefix], [['nsenter', '-t', '42', '-m', '-p', '--'], ['nsenter', '-t', '42', '-m', '-p', '--']]);
  // An empty variable counts as unset, as for pm's other settings.
  assert.deepEqual(systemdSettingsOf({ PM_SYSTEMCTL_PREFIX: ' ' }).prefix, []);
});

test('the user scope reads its runtime folder from XDG_RUNTIME_DIR, and needs it', () => {
  const user = systemdSettingsOf({ PM_SYSTEMD_SCOPE: 'user', XDG_RUNTIME_DIR: '/run/user/1000' });
  assert.deepEqual([user.scope, user.unitDir], ['user', '/run/user/1000/systemd/user']);
  assert.throws(() => systemdSettingsOf({ PM_SYSTEMD_SCOPE: 'user' }), (error: unknown) => error instanceof PmError && /XDG_RUNTIME_DIR/.test(error.message) && error.hint !== undefined);
});

test('bad values are refused naming the variable and what it takes', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ PM_SYSTEMD_SCOPE: 'global' }, /^PM_SYSTEMD_SCOPE=global is not valid: it takes system .* or user/],
    [{ PM_SYSTEMCTL_PREFIX: '["sudo", 1]' }, /^PM_SYSTEMCTL_PREFIX=.* a JSON array of non-empty strings/],
    [{ PM_SYSTEMCTL_PREFIX: '[sudo' }, /^PM_SYSTEMCTL_PREFIX=\[sudo is not valid/],
    [{ PM_SYSTEMD_UNIT_DIR: 'units' }, /^PM_SYSTEMD_UNIT_DIR=units is not valid: it takes an absolute path/],
    [{ PM_SYSTEMCTL_TIMEOUT_MS: '0' }, /^PM_SYSTEMCTL_TIMEOUT_MS=0 is not valid/],
    [{ PM_SYSTEMD_POLL_MS: '1.5' }, /^PM_SYSTEMD_POLL_MS=1.5 is not valid/],
  ];
  for (const [env, message] of cases) {
    assert.throws(() => systemdSettingsOf(env), (error: unknown) => error instanceof PmError && error.code === 'E_SYSTEMD_SETTINGS' && message.test(error.message), JSON.stringify(env));
  }
});

test('resources in a unit: CPUQuota in percent, I/O weight on systemd\'s scale as runc converts Docker\'s', () => {
  assert.deepEqual([ioWeightV2(10), ioWeightV2(500), ioWeightV2(1000)], [1, 4950, 10_000]);
  const manifest = { spec: { resources: { memory: '1Gi', cpus: 1.5, ioWeight: 10, openFiles: 1024, pids: 50 } } } as unknown as ProcessManifest;
  assert.deepEqual(unitLimitsOf({ manifest }), { memoryBytes: 1024 ** 3, cpuQuotaPercent: 150, ioWeight: 1, nofile: 1024, tasks: 50 });
});
