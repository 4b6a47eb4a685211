// `pm privileges -f DIR` through the command's run(): exactly the systemd units of the set, the
// refusals, and the shapes of each output. The rules themselves are tested in
// systemd-privileges.test.ts and, against a real systemd and polkit, in privileges-systemd.test.ts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { privilegesCommand } from '../../src/cli/commands/privileges.js';
import type { Cli, Values } from '../../src/cli/command.js';
import { makeStyle } from '../../src/cli/output/style.js';
import { UNIT_VERBS } from '../../src/drivers/systemd/systemctl.js';
import { ExitCode, ManifestError, UsageError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

const doc = (name: string, spec: string): string => `apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata: {name: ${name}}\nspec:\n${spec}`;
const EXEC = doc('job', '  exec: {command: [/bin/true]}\n');
const DOCKER = doc('cache', '  driver: docker\n  docker: {image: "redis:7"}\n');
const EXISTING = doc('web', '  driver: systemd\n  systemd: {unit: nginx.service}\n');
const WRITTEN = doc('api', '  driver: systemd\n  systemd: {command: [/bin/sleep, "1000"]}\n');

interface Run {
  dir: string;
  /** The exit code, or the error the command threw (main() prints it and exits with its code). */
  code?: number;
  error?: unknown;
  stdout: string;
}

/** Writes `docs` into a manifests folder and runs the command on it; never rejects. */
async function run(t: TestContext, docs: string[], values: Values = {}, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const dir = await tempDir(t, 'pm-privileges-');
  const manifests = join(dir, 'manifests');
  await mkdir(manifests);
  await writeFile(join(manifests, 'set.yaml'), docs.join('---\n'));
  let stdout = '';
  const out = new PassThrough();
  out.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const cli = {
    stdout: out as unknown as NodeJS.WriteStream,
    stderr: new PassThrough() as unknown as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    env,
    cwd: dir,
    style: makeStyle(false),
    errStyle: makeStyle(false),
    stateDir: join(dir, 'state'),
    signal: new AbortController().signal,
  } satisfies Cli;
  try {
    const code = await privilegesCommand.run({ filename: ['manifests'], user: 'pm', ...values }, [], cli);
    return { dir, code, stdout };
  } catch (error) {
    return { dir, error, stdout };
  }
}

/** run(), failing the test unless the command succeeded. */
async function privilegesOf(t: TestContext, docs: string[], values: Values = {}, env: NodeJS.ProcessEnv = {}): Promise<Run & { code: number }> {
  const result = await run(t, docs, values, env);
  if (result.error !== undefined) throw result.error;
  assert.equal(result.code, ExitCode.ok);
  return { ...result, code: ExitCode.ok };
}

/** The rule's decision for (user, unit, verb), evaluated as polkitd would. */
function decide(rule: string, unit: string, verb: string, actionId = 'org.freedesktop.systemd1.manage-units', user = 'pm'): string {
  const rules: Array<(action: unknown, subject: unknown) => string> = [];
  runInNewContext(rule, { polkit: { Result: { YES: 'yes', NO: 'no', NOT_HANDLED: 'not-handled' }, addRule: (fn: (action: unknown, subject: unknown) => string) => rules.push(fn) } });
  assert.equal(rules.length, 1, 'one rule');
  return rules[0]?.({ id: actionId, lookup: (key: string) => ({ unit, verb })[key as 'unit' | 'verb'] }, { user }) ?? 'none';
}

/** The units named in the sudoers lines of `text` (the last word of each rule line). */
function sudoersUnits(text: string): string[] {
  const lines = text.split('\n').filter((line) => line.startsWith('pm ALL=(root) NOPASSWD: '));
  return [...new Set(lines.map((line) => line.split(' ').at(-1) ?? ''))].filter((word) => word !== 'daemon-reload');
}

test('a mixed set: exactly the two systemd units (and pm.target, daemon-reload for the one pm writes), nothing of exec or docker', async (t) => {
  const { code, stdout } = await privilegesOf(t, [EXEC, DOCKER, EXISTING, WRITTEN]);
  assert.equal(code, ExitCode.ok);
  const rule = stdout.slice(stdout.indexOf('// Written by pm'), stdout.indexOf('});') + 4);
  for (const unit of ['nginx.service', 'pm-api.service']) for (const verb of UNIT_VERBS) assert.equal(decide(rule, unit, verb), 'yes', `${verb} ${unit}`);
  assert.equal(decide(rule, 'pm.target', 'start'), 'yes');
  assert.equal(decide(rule, 'pm.target', 'stop'), 'not-handled');
  assert.equal(decide(rule, '', '', 'org.freedesktop.systemd1.reload-daemon'), 'yes');
  for (const unit of ['pm-job.service', 'pm-cache.service', 'job.service', 'cache.service']) assert.equal(decide(rule, unit, 'start'), 'not-handled', unit);
  assert.deepEqual(sudoersUnits(stdout), ['pm-api.service', 'nginx.service', 'pm.target']);
  assert.match(stdout, /^pm ALL=\(root\) NOPASSWD: \/usr\/bin\/systemctl --system --no-pager --no-ask-password daemon-reload$/m);
  assert.doesNotMatch(stdout, /\bjob\b|\bcache\b|redis/, 'exec and docker processes are not mentioned');
  assert.match(stdout, /^\/\/ {3}api {3}pm-api\.service {3}pm writes it$/m);
  assert.match(stdout, /^\/\/ {3}web {3}nginx\.service {4}existing unit$/m);
  assert.match(stdout, /save as \/etc\/polkit-1\/rules\.d\/50-pm-pm\.rules/);
  assert.match(stdout, /visudo -cf FILE/);
  assert.match(stdout, /as \/etc\/sudoers\.d\/pm-pm, owned by root, mode 0440/);
  assert.match(stdout, /^# {3}PM_SYSTEMCTL_PREFIX='sudo -n'$/m);
  assert.match(stdout, /^# {3}PM_SYSTEMCTL_READ_PREFIX='\[\]'$/m);
  assert.match(stdout, /pm writes units \(api\): pm must also be able to write the folder PM_SYSTEMD_UNIT_DIR names/);
  assert.match(stdout, /systemd-analyze unit-paths/);
});

test('only existing units: no daemon-reload, no pm.target, no unit folder', async (t) => {
  const { stdout } = await privilegesOf(t, [EXISTING, EXEC]);
  const rule = stdout.slice(stdout.indexOf('// Written by pm'), stdout.indexOf('});') + 4);
  assert.equal(decide(rule, 'nginx.service', 'restart'), 'yes');
  assert.equal(decide(rule, '', '', 'org.freedesktop.systemd1.reload-daemon'), 'not-handled');
  assert.equal(decide(rule, 'pm.target', 'start'), 'not-handled');
  assert.deepEqual(sudoersUnits(stdout), ['nginx.service']);
  assert.doesNotMatch(stdout, /daemon-reload|pm\.target|PM_SYSTEMD_UNIT_DIR/);
});

test('an invalid set is refused with file:line:col issues (exit 2) and nothing on stdout', async (t) => {
  const broken = doc('web', '  driver: systemd\n  systemd: {unit: "pm-web.service"}\n');
  const { error, stdout } = await run(t, [WRITTEN, broken]);
  assert.ok(error instanceof ManifestError, String(error));
  assert.equal(error.exitCode, ExitCode.invalid);
  const issue = error.issues.find((i) => i.code === 'systemd.unit-reserved');
  assert.ok(issue, JSON.stringify(error.issues));
  assert.equal(issue.file, join('manifests', 'set.yaml'));
  assert.equal(issue.line, 13, 'the line of spec.systemd.unit in the second document');
  assert.ok(issue.col > 1);
  assert.equal(stdout, '');
});

test('no systemd process: says so, exit 0, nothing to allow', async (t) => {
  const text = await privilegesOf(t, [EXEC, DOCKER]);
  assert.equal(text.code, ExitCode.ok);
  assert.equal(text.stdout, 'no process of the manifests has driver systemd: pm needs no systemd privileges for them (nothing to allow)\n');
  const json = JSON.parse((await privilegesOf(t, [EXEC], { output: 'json' })).stdout) as Record<string, unknown>;
  assert.deepEqual(json, { user: 'pm', scope: 'system', processes: [], needed: false, why: 'no-systemd-processes', message: text.stdout.trim() });
});

test('the user scope and root need nothing', async (t) => {
  const user = await privilegesOf(t, [WRITTEN], {}, { PM_SYSTEMD_SCOPE: 'user' });
  assert.equal(user.code, ExitCode.ok);
  assert.match(user.stdout, /^PM_SYSTEMD_SCOPE=user: .*needs no privileges \(nothing to allow\)\n$/);
  const root = await privilegesOf(t, [WRITTEN], { user: 'root' });
  assert.match(root.stdout, /root, which needs no privileges .*pass --user NAME\n$/);
});

test('-o json: the processes, what is allowed, both texts with paths, the check and the sudo settings', async (t) => {
  const { stdout } = await privilegesOf(t, [EXEC, EXISTING, WRITTEN], { output: 'json' }, { PM_SYSTEMD_UNIT_DIR: '/srv/pm-units' });
  const json = JSON.parse(stdout) as Record<string, unknown> & { polkit: { rule: string }; sudoers: { text: string; commands: string[][] } };
  assert.deepEqual(Object.keys(json), ['user', 'scope', 'processes', 'needed', 'allowed', 'polkit', 'sudoers', 'unitDir']);
  assert.equal(json.user, 'pm');
  assert.equal(json.needed, true);
  assert.deepEqual(json.processes, [
    { process: 'api', unit: 'pm-api.service', writtenByPm: true },
    { process: 'web', unit: 'nginx.service', writtenByPm: false },
  ]);
  assert.deepEqual(json.allowed, { units: { 'pm-api.service': [...UNIT_VERBS], 'nginx.service': [...UNIT_VERBS], 'pm.target': ['start'] }, daemonReload: true });
  assert.deepEqual({ ...json.polkit, rule: undefined }, { path: '/etc/polkit-1/rules.d/50-pm-pm.rules', mode: '0644', rule: undefined });
  assert.equal(decide(json.polkit.rule, 'pm-api.service', 'start'), 'yes');
  assert.deepEqual({ ...json.sudoers, text: undefined, commands: undefined }, {
    path: '/etc/sudoers.d/pm-pm',
    mode: '0440',
    text: undefined,
    check: ['visudo', '-cf', '/etc/sudoers.d/pm-pm'],
    commands: undefined,
    env: { PM_SYSTEMCTL_PREFIX: 'sudo -n', PM_SYSTEMCTL_READ_PREFIX: '[]' },
  });
  assert.equal(json.sudoers.commands.length, 2 * UNIT_VERBS.length + 2);
  assert.deepEqual(json.unitDir, { path: '/srv/pm-units', systemdPath: '/srv/pm-units', writableBy: 'pm' });
});

test('--format polkit prints a rules file and no sudoers; --format sudoers a sudoers file and no rule', async (t) => {
  const polkit = await privilegesOf(t, [EXISTING, WRITTEN], { format: 'polkit' });
  assert.doesNotMatch(polkit.stdout, /NOPASSWD|sudo -n/);
  assert.ok(polkit.stdout.split('\n').every((line) => line === '' || line.startsWith('//') || !line.startsWith('#')), 'comments are JavaScript comments');
  assert.equal(decide(polkit.stdout, 'nginx.service', 'stop'), 'yes', 'the whole output is the rules file');

  const sudoers = await privilegesOf(t, [EXISTING, WRITTEN], { format: 'sudoers' });
  assert.doesNotMatch(sudoers.stdout, /polkit/);
  const lines = sudoers.stdout.split('\n').filter((line) => line !== '');
  assert.ok(lines.every((line) => line.startsWith('# ') || line.startsWith('pm ALL=(root) NOPASSWD: /usr/bin/systemctl ')), sudoers.stdout);
  if (existsSync('/usr/sbin/visudo')) {
    const file = join(sudoers.dir, 'pm-pm');
    await writeFile(file, sudoers.stdout, { mode: 0o440 });
    await promisify(execFile)('/usr/sbin/visudo', ['-cf', file]);
  }

  const json = JSON.parse((await privilegesOf(t, [EXISTING], { format: 'sudoers', output: 'json' })).stdout) as Record<string, unknown>;
  assert.equal(json.polkit, undefined);
  assert.ok(json.sudoers);
  const pam = await run(t, [EXISTING], { format: 'pam' });
  assert.ok(pam.error instanceof UsageError && /--format: unknown format "pam"/.test(pam.error.message), String(pam.error));
});

test('bad options are usage errors (exit 2), with nothing on stdout', async (t) => {
  const cases: [Values, RegExp][] = [
    [{ user: 'pm ALL=(ALL) ALL' }, /--user: "pm ALL=\(ALL\) ALL" is not a user name/],
    [{ output: 'yaml' }, /-o: unknown format "yaml"/],
    [{ filename: [] }, /needs -f PATH/],
  ];
  for (const [values, message] of cases) {
    const { error, stdout } = await run(t, [EXISTING], values);
    assert.ok(error instanceof UsageError && message.test(error.message), String(error));
    assert.equal(error.exitCode, ExitCode.invalid);
    assert.equal(stdout, '');
  }
});
