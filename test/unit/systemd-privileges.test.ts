// privileges(): exactly the units and verbs given, nothing more; the sudoers lines are the argv
// the runner sends. The integration test runs the polkit rule (and sudo, when installed) for real.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { test } from 'node:test';
import { privileges } from '../../src/drivers/systemd/privileges.js';
import { daemonReloadArgv } from '../../src/drivers/systemd/systemctl.js';
import { Systemctl, UNIT_VERBS, verbArgv } from '../../src/drivers/systemd/systemctl.js';
import { tempDir } from '../support/tmp.js';

/** Evaluates the rule as polkitd would: returns the decision for (user, unit, verb). */
function decide(rule: string, user: string, unit: string, verb: string, actionId = 'org.freedesktop.systemd1.manage-units'): string {
  const Result = { YES: 'yes', NO: 'no', NOT_HANDLED: 'not-handled' };
  const rules: Array<(action: unknown, subject: unknown) => string> = [];
  runInNewContext(rule, { polkit: { Result, addRule: (fn: (action: unknown, subject: unknown) => string) => rules.push(fn) } });
  assert.equal(rules.length, 1);
  const action = { id: actionId, lookup: (key: string) => ({ unit, verb })[key as 'unit' | 'verb'] };
  return rules[0]?.(action, { user }) ?? 'none';
}

test('polkit: exactly the units × verbs, for exactly that user', () => {
  const { polkitRule, polkitPath } = privileges(['pm-a.service', 'pm-b.service'], ['start', 'stop'], { user: 'pm' });
  assert.equal(polkitPath, '/etc/polkit-1/rules.d/50-pm-pm.rules');
  assert.equal(decide(polkitRule, 'pm', 'pm-a.service', 'start'), 'yes');
  assert.equal(decide(polkitRule, 'pm', 'pm-b.service', 'stop'), 'yes');
  assert.equal(decide(polkitRule, 'pm', 'pm-a.service', 'restart'), 'not-handled', 'a verb not given');
  assert.equal(decide(polkitRule, 'pm', 'pm-c.service', 'start'), 'not-handled', 'a unit not given');
  assert.equal(decide(polkitRule, 'pm', 'pm-a.servicex', 'start'), 'not-handled', 'no prefix match');
  assert.equal(decide(polkitRule, 'pm', 'constructor', 'start'), 'not-handled', 'no inherited property');
  assert.equal(decide(polkitRule, 'other', 'pm-a.service', 'start'), 'not-handled', 'another user');
  assert.equal(decide(polkitRule, 'pm', 'pm-a.service', 'start', 'org.freedesktop.systemd1.reload-daemon'), 'not-handled', 'another action');
  assert.doesNotMatch(polkitRule, /=>|\blet\b|\bconst\b|includes\(/, 'ES5 only');
});

test('sudoers: one exact line per unit and verb, as the runner sends it, escaped', () => {
  const units = ['pm-a.service', 'x:y\\x2d.service'];
  const { sudoers, commands, sudoersPath, sudoRunner } = privileges(units, ['start', 'kill'], { user: 'pm' });
  assert.equal(sudoersPath, '/etc/sudoers.d/pm-pm');
  assert.deepEqual(sudoRunner, { prefix: ['sudo', '-n'], readPrefix: [] });
  assert.deepEqual(commands, [
    ['systemctl', ...verbArgv('system', 'start', 'pm-a.service')],
    ['systemctl', ...verbArgv('system', 'kill', 'pm-a.service')],
    ['systemctl', ...verbArgv('system', 'start', 'x:y\\x2d.service')],
    ['systemctl', ...verbArgv('system', 'kill', 'x:y\\x2d.service')],
  ]);
  const lines = sudoers.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  assert.deepEqual(lines, [
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password start pm-a.service',
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password --signal\\=SIGKILL kill pm-a.service',
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password start x\\:y\\\\x2d.service',
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password --signal\\=SIGKILL kill x\\:y\\\\x2d.service',
  ]);
  assert.doesNotMatch(sudoers, /[*?[]/, 'no wildcard at all');
});

test('output names exactly the units given', () => {
  const units = Array.from({ length: 7 }, (_, i) => `pm-u${i}.service`);
  const result = privileges([...units, units[0] ?? ''], ['restart'], { user: 'svc-pm' });
  const inRule = [...result.polkitRule.matchAll(/"(pm-u\d+\.service)"/g)].map((m) => m[1]);
  const inSudoers = [...result.sudoers.matchAll(/ (pm-u\d+\.service)$/gm)].map((m) => m[1]);
  assert.deepEqual(inRule, units);
  assert.deepEqual(inSudoers, units);
});

test('writesUnits: also daemon-reload and `start pm.target`, nothing else', () => {
  const result = privileges(['pm-a.service', 'nginx.service'], UNIT_VERBS, { user: 'pm', writesUnits: true });
  const reload = 'org.freedesktop.systemd1.reload-daemon';
  assert.equal(decide(result.polkitRule, 'pm', '', '', reload), 'yes');
  assert.equal(decide(result.polkitRule, 'other', '', '', reload), 'not-handled', 'another user');
  assert.equal(decide(result.polkitRule, 'pm', 'pm.target', 'start'), 'yes');
  for (const verb of ['stop', 'restart', 'kill', 'reset-failed']) assert.equal(decide(result.polkitRule, 'pm', 'pm.target', verb), 'not-handled', `${verb} pm.target`);
  assert.equal(decide(result.polkitRule, 'pm', 'pm-a.service', 'kill'), 'yes');
  assert.equal(decide(result.polkitRule, 'pm', 'pm-b.service', 'start'), 'not-handled');
  assert.equal(decide(result.polkitRule, 'pm', '', '', 'org.freedesktop.systemd1.manage-unit-files'), 'not-handled', 'no enable, link or mask');
  assert.deepEqual(result.allowed, { units: { 'pm-a.service': [...UNIT_VERBS], 'nginx.service': [...UNIT_VERBS], 'pm.target': ['start'] }, daemonReload: true });
  const lines = result.sudoers.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  assert.equal(lines.length, 2 * UNIT_VERBS.length + 2);
  assert.deepEqual(lines.slice(-2), [
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password start pm.target',
    'pm ALL=(root) NOPASSWD: /usr/bin/systemctl --system --no-pager --no-ask-password daemon-reload',
  ]);
  assert.doesNotMatch(result.polkitRule, /=>|\blet\b|\bconst\b|includes\(/, 'ES5 only');

  const without = privileges(['nginx.service'], UNIT_VERBS, { user: 'pm' });
  assert.equal(decide(without.polkitRule, 'pm', '', '', reload), 'not-handled');
  assert.equal(decide(without.polkitRule, 'pm', 'pm.target', 'start'), 'not-handled');
  assert.doesNotMatch(without.sudoers, /daemon-reload|pm\.target/);
  assert.equal(without.allowed.daemonReload, false);
});

test('writesUnits: a manifest naming pm.target itself keeps its verbs, merged with start', () => {
  const { allowed } = privileges(['pm.target'], ['stop'], { user: 'pm', writesUnits: true });
  assert.deepEqual(allowed.units, { 'pm.target': ['start', 'stop'] });
});

test('the daemon-reload line is exactly what Systemctl.daemonReload runs', async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, 'argv');
  // The prefix records the rest of the command line instead of running it (no input in the script).
  const systemctl = new Systemctl({ prefix: ['/bin/sh', '-c', 'printf "%s\\n" "$@" > "$0"', log] });
  await systemctl.daemonReload();
  const ran = (await readFile(log, 'utf8')).split('\n').filter((word) => word !== '');
  assert.deepEqual(ran, ['systemctl', ...daemonReloadArgv()]);
  const { commands } = privileges(['pm-a.service'], ['start'], { user: 'pm', writesUnits: true });
  assert.deepEqual(commands.at(-1), ran);
});

test('bad input is refused', () => {
  assert.throws(() => privileges([], ['start'], { user: 'pm' }), /no units/);
  assert.throws(() => privileges(['pm-a.service'], [], { user: 'pm' }), /no verbs/);
  assert.throws(() => privileges(['pm a.service'], ['start'], { user: 'pm' }), /E_SYSTEMD_UNIT_NAME|a space/);
  assert.throws(() => privileges(['pm-a.service'], ['daemon-reload' as 'start'], { user: 'pm' }), /unknown verb/);
  assert.throws(() => privileges(['pm-a.service'], ['start'], { user: 'pm ALL=(ALL) ALL' }), /not a user name/);
  assert.throws(() => privileges(['pm-a.service'], ['start'], { user: 'pm', systemctlPath: 'systemctl' }), /absolute path/);
});
