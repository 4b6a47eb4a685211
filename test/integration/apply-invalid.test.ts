// A set is accepted whole or not at all: one invalid manifest means exit 2 and nothing is started,
// stopped or restarted, and every problem is reported at file:line:col.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSandbox, programPath } from '../support/cli.js';
import { byName, pids } from './stack.js';

const BROKEN = `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: broken
spec:
  exec:
    command: [node, x.js]
    commnd: [oops]
`;

test('an unknown field anywhere in the set: exit 2, located, and nothing is started, stopped or restarted', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/alpha.yaml', sandbox.manifest({ name: 'alpha', program: 'idle' }));
  await sandbox.write('manifests/beta.yaml', sandbox.manifest({ name: 'beta', program: 'idle' }));
  const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
  const before = pids(await sandbox.get());

  await sandbox.write('manifests/broken.yaml', BROKEN);
  await sandbox.write('manifests/gamma.yaml', sandbox.manifest({ name: 'gamma', program: 'idle' }));
  await sandbox.write('manifests/beta.yaml', sandbox.manifest({ name: 'beta', program: 'idle', args: ['--changed'] }));

  for (const command of ['apply', 'diff', 'validate']) {
    const result = await sandbox.pm([command, '-f', 'manifests/']);
    assert.equal(result.code, 2, `pm ${command} exits 2:\n${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, /manifests\/broken\.yaml:8:5: .*spec\.exec\.commnd/, `pm ${command} locates the field:\n${result.stderr}`);
    assert.match(result.stderr, /hint: .*command/);
    assert.match(result.stderr, /nothing was changed/);
  }

  const after = byName(await sandbox.get());
  assert.deepEqual([...after.keys()].sort(), ['alpha', 'beta'], 'gamma was not started');
  assert.deepEqual(pids([...after.values()]), before, 'beta was not restarted');
  assert.deepEqual((await sandbox.record('beta')).manifest.spec.exec?.command, [process.execPath, programPath('idle')], 'the old beta is still the recorded one');
});

test('a dependency cycle and a dependency on an unknown process: exit 2 with the cycle path', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/x.yaml', sandbox.manifest({ name: 'x', program: 'idle', dependsOn: [{ name: 'y' }] }));
  await sandbox.write('manifests/y.yaml', sandbox.manifest({ name: 'y', program: 'idle', dependsOn: [{ name: 'x' }] }));
  await sandbox.write('manifests/z.yaml', sandbox.manifest({ name: 'z', program: 'idle', dependsOn: [{ name: 'ghost' }] }));

  const result = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(result.code, 2, `apply exits 2:\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stderr, /^error: manifests\/[xy]\.yaml:\d+:\d+: dependency cycle: (x -> y -> x|y -> x -> y)/m);
  assert.match(result.stderr, /^error: manifests\/z\.yaml:\d+:\d+: .*ghost/m);
  assert.equal(result.stdout, '', 'no plan is printed');
  assert.deepEqual(await sandbox.get(), [], 'nothing was started');

  const validate = await sandbox.pm(['validate', '-f', 'manifests/']);
  assert.equal(validate.code, 2);
  assert.match(validate.stderr, /dependency cycle: (x -> y -> x|y -> x -> y)/);
});

test('a changed command that cannot run, or a missing secret: exit 2 before the running version is stopped', async (t) => {
  const sandbox = await createSandbox(t);
  await sandbox.write('manifests/alpha.yaml', sandbox.manifest({ name: 'alpha', program: 'idle' }));
  await sandbox.write('manifests/beta.yaml', sandbox.manifest({ name: 'beta', program: 'idle' }));
  const converge = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(converge.code, 0, `apply failed:\n${converge.stdout}\n${converge.stderr}`);
  const before = pids(await sandbox.get());

  const broken = (sandbox.manifest({ name: 'alpha', program: 'idle' })).replace(process.execPath, '/nonexistent/bin/node');
  await sandbox.write('manifests/alpha.yaml', broken);
  const noProgram = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(noProgram.code, 2, `apply exits 2:\n${noProgram.stdout}\n${noProgram.stderr}`);
  assert.match(noProgram.stderr, /nothing was changed/);
  assert.match(noProgram.stderr, /alpha: command "\/nonexistent\/bin\/node" is not an executable file/);

  await sandbox.write('manifests/alpha.yaml', sandbox.manifest({ name: 'alpha', program: 'idle' }));
  await sandbox.write('manifests/beta.yaml', sandbox.manifest({ name: 'beta', program: 'idle', env: { TOKEN: { fromEnv: 'PM_TEST_SURELY_UNSET' } } }));
  const noSecret = await sandbox.pm(['apply', '-f', 'manifests/']);
  assert.equal(noSecret.code, 2, `apply exits 2:\n${noSecret.stdout}\n${noSecret.stderr}`);
  assert.match(noSecret.stderr, /beta: env TOKEN: pm's environment has no variable PM_TEST_SURELY_UNSET/);

  assert.deepEqual(pids(await sandbox.get()), before, 'both kept running, untouched');
});
