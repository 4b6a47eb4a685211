// renderUnit: every value quoted the way systemd unquotes it, or refused. Hostile inputs included;
// the integration test runs such a unit for real and compares the argv and environment it got.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { environmentAssignment, execArgument, execStartLine, renderUnit, UNIT_FILE_MARKER, type UnitSpec } from '../../src/drivers/systemd/unit-file.js';

const base: UnitSpec = {
  description: 'api',
  command: ['/usr/bin/node', 'server.js'],
  env: {},
  stdoutPath: '/var/log/pm/api.log',
  stderrPath: '/var/log/pm/api.log',
  stopSignal: 'SIGTERM',
  gracePeriodSeconds: 10,
};

function isSpecError(field: RegExp) {
  return (error: unknown): boolean => error instanceof SystemdError && error.code === 'E_SYSTEMD_UNIT_SPEC' && field.test(error.message);
}

test('a full unit', () => {
  const text = renderUnit({
    ...base,
    description: 'API 100%',
    env: { PORT: '8080', A_B: 'x' },
    user: 'www-data',
    group: '33',
    workingDirectory: '/srv/api',
    stderrPath: '/var/log/pm/api.err',
    stopSignal: 'SIGINT',
    gracePeriodSeconds: 1.5,
    limits: { memoryBytes: 536870912, cpuQuotaPercent: 50, ioWeight: 200, nofile: 4096, tasks: 64 },
  });
  assert.equal(
    text,
    [
      UNIT_FILE_MARKER,
      '[Unit]',
      'Description=API 100%%',
      '',
      '[Service]',
      'Type=exec',
      'ExecStart="/usr/bin/node" "server.js"',
      'Environment="A_B=x"',
      'Environment="PORT=8080"',
      'User=www-data',
      'Group=33',
      'WorkingDirectory=/srv/api',
      'StandardOutput=append:/var/log/pm/api.log',
      'StandardError=append:/var/log/pm/api.err',
      'KillSignal=SIGINT',
      'TimeoutStopSec=1500ms',
      'Restart=no',
      'MemoryMax=536870912',
      'CPUQuota=50%',
      'IOWeight=200',
      'LimitNOFILE=4096',
      'TasksMax=64',
      '',
    ].join('\n'),
  );
  assert.match(renderUnit(base), /^TimeoutStopSec=10s$/m);
  assert.doesNotMatch(renderUnit(base), /User=|Group=|WorkingDirectory=|MemoryMax=/);
});

test('hostile arguments: quoted, % and $ doubled, one word each', () => {
  assert.equal(execArgument('a', 'two words'), '"two words"');
  assert.equal(execArgument('a', 'say "hi"'), '"say \\"hi\\""');
  assert.equal(execArgument('a', "it's"), '"it\'s"');
  assert.equal(execArgument('a', '100%'), '"100%%"');
  assert.equal(execArgument('a', '%n'), '"%%n"', 'a specifier stays literal');
  assert.equal(execArgument('a', '$HOME ${X}'), '"$$HOME $${X}"', 'no variable expansion');
  assert.equal(execArgument('a', 'C:\\dir\\'), '"C:\\\\dir\\\\"', 'backslashes escaped');
  assert.equal(execArgument('a', 'tab\there'), '"tab\\there"');
  assert.equal(execArgument('a', 'héllo ✓ 🚀'), '"héllo ✓ 🚀"', 'unicode as UTF-8');
  assert.equal(execArgument('a', ''), '""', 'an empty argument is kept');
  assert.equal(execArgument('a', ';'), '";"', 'a lone ; would end the command line');
  assert.equal(execStartLine(['/bin/echo', 'a b', '-', '--x=1']), '"/bin/echo" "a b" "-" "--x=1"');
});

test('environment: quoted, % doubled, $ literal', () => {
  assert.equal(environmentAssignment('A', 'say "hi"'), '"A=say \\"hi\\""');
  assert.equal(environmentAssignment('A', "it's $HOME 50% \\n"), '"A=it\'s $HOME 50%% \\\\n"');
  assert.equal(environmentAssignment('A', ''), '"A="');
  assert.throws(() => environmentAssignment('1A', 'x'), isSpecError(/env\.1A/));
  assert.throws(() => environmentAssignment('A-B', 'x'), isSpecError(/env\.A-B/));
  assert.throws(() => environmentAssignment('A B', 'x'), isSpecError(/env\.A B/));
});

test('a line break anywhere is refused (it would start a new directive)', () => {
  const injections: Array<[Partial<UnitSpec>, RegExp]> = [
    [{ command: ['/bin/sh', 'x\nExecStartPre=/bin/rm -rf /'] }, /command\[1\].*line break/],
    [{ env: { A: 'x\nUser=root' } }, /env\.A.*line break/],
    [{ env: { A: 'x\r' } }, /env\.A.*line break/],
    [{ description: 'a\n[Service]' }, /description.*line break/],
    [{ stdoutPath: '/var/log/a\nb' }, /stdoutPath.*line break/],
    [{ workingDirectory: '/srv\n' }, /workingDirectory.*line break/],
    [{ user: 'root\nUser=x' }, /user/],
  ];
  for (const [change, field] of injections) assert.throws(() => renderUnit({ ...base, ...change }), isSpecError(field), JSON.stringify(change));
});

test('the program: absolute, normalised, no quotes, backslashes, whitespace or control characters', () => {
  const bad: Array<[string[], RegExp]> = [
    [[], /command: it is empty/],
    [['node', 'x'], /absolute path/],
    [['./run'], /absolute path/],
    [['-/bin/sh'], /absolute path/],
    [['/bin/"sh'], /quote or backslash/],
    [["/bin/'sh"], /quote or backslash/],
    [['/bin/s\\h'], /quote or backslash/],
    [['/opt/my app/run'], /whitespace/],
    [['/bin/sh\t'], /whitespace/],
    [['/bin//sh'], /not normalised/],
    [['/bin/../bin/sh'], /not normalised/],
    [['/bin/'], /not normalised/],
    [['/bin/sh\0'], /NUL/],
    [['/bin/sh', 'a\0b'], /command\[1\].*NUL/],
    [['/bin/sh', 'a\uD800'], /lone UTF-16 surrogate/],
  ];
  for (const [command, rule] of bad) assert.throws(() => renderUnit({ ...base, command }), isSpecError(rule), JSON.stringify(command));
  assert.equal(execStartLine(['/opt/app%/run$', 'x']), '"/opt/app%%/run$$" "x"', '% and $ in a path are fine once doubled');
});

test('other fields are checked', () => {
  const bad: Array<[Partial<UnitSpec>, RegExp]> = [
    [{ stdoutPath: 'relative.log' }, /stdoutPath: must be an absolute path/],
    [{ stderrPath: '/var/log/../x' }, /stderrPath: .* not normalised/],
    [{ workingDirectory: '~' }, /workingDirectory: must be an absolute path/],
    [{ workingDirectory: '/srv ' }, /whitespace/],
    [{ user: '-root' }, /user: .* not a user or group name/],
    [{ group: 'a b' }, /group: .* not a user or group name/],
    [{ stopSignal: 'TERM' as NodeJS.Signals }, /stopSignal/],
    [{ stopSignal: 'SIGNOPE' as NodeJS.Signals }, /stopSignal/],
    [{ gracePeriodSeconds: 0 }, /gracePeriodSeconds: .*wait forever/],
    [{ gracePeriodSeconds: -1 }, /gracePeriodSeconds/],
    [{ gracePeriodSeconds: Number.NaN }, /gracePeriodSeconds/],
    [{ limits: { memoryBytes: 0 } }, /limits\.memoryBytes/],
    [{ limits: { memoryBytes: 1.5 } }, /limits\.memoryBytes/],
    [{ limits: { cpuQuotaPercent: -5 } }, /limits\.cpuQuotaPercent/],
    [{ limits: { ioWeight: 10_001 } }, /limits\.ioWeight: must be a whole number from 1 to 10000/],
    [{ limits: { nofile: 0 } }, /limits\.nofile/],
    [{ limits: { tasks: Number.POSITIVE_INFINITY } }, /limits\.tasks/],
  ];
  for (const [change, rule] of bad) assert.throws(() => renderUnit({ ...base, ...change }), isSpecError(rule), JSON.stringify(change));
  assert.match(renderUnit({ ...base, stdoutPath: '/var/log/100%.log' }), /^StandardOutput=append:\/var\/log\/100%%\.log$/m);
  assert.match(renderUnit({ ...base, gracePeriodSeconds: 0.0001 }), /^TimeoutStopSec=1ms$/m, 'never rounds to 0 (forever)');
});

test('Restart=no is always there, with the reason next to it in the source', () => {
  assert.match(renderUnit(base), /^Restart=no$/m);
  assert.match(renderUnit(base), /^Type=exec$/m);
});

test('the environment file: KEY="VALUE" lines, \\ " $ ` escaped, the rest literal; the unit names it instead of Environment=', async () => {
  const { renderEnvironmentFile } = await import('../../src/drivers/systemd/unit-file.js');
  assert.equal(renderEnvironmentFile({ B: 'a "b" $C `d` \\e', A: '  50% #x  ' }).split('\n').slice(1).join('\n'), 'A="  50% #x  "\nB="a \\"b\\" \\$C \\`d\\` \\\\e"\n');
  assert.throws(() => renderEnvironmentFile({ A: 'two\nlines' }), isSpecError(/line break/));
  const text = renderUnit({ ...base, env: { TOKEN: 'secret' }, environmentFile: '/run/systemd/system/pm-env/pm-a.service.env' });
  assert.match(text, /^EnvironmentFile=\/run\/systemd\/system\/pm-env\/pm-a\.service\.env$/m);
  assert.doesNotMatch(text, /secret|^Environment=/m);
});
