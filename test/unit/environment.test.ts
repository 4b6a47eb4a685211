import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveEnvironment } from '../../src/apply/environment.js';
import { resolveRunAs } from '../../src/apply/identity.js';
import { StartError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { manifest } from '../support/manifests.js';
import type { ProcessManifest } from '../../src/manifest/types.js';

function withExec(exec: Partial<ProcessManifest['spec']['exec']>): ProcessManifest {
  const m = manifest({ name: 'api', command: ['x'] });
  return { ...m, spec: { ...m.spec, exec: { ...m.spec.exec, ...exec } } };
}

test('env: only a few variables inherited; env files, then literals, secrets from env and files', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, '.env'), 'A=from-file\nB="quoted value"\n');
  await writeFile(join(dir, 'secret'), 's3cret\n');
  const env = await resolveEnvironment(
    'api',
    withExec({ envFiles: [join(dir, '.env')], env: { A: 'literal', N: 8080, T: true, S: { fromEnv: 'MY_SECRET' }, F: { fromFile: join(dir, 'secret') } } }),
    { PATH: '/bin', HOME: '/root', MY_SECRET: 'hidden', AWS_SECRET_ACCESS_KEY: 'never-inherited' },
  );
  assert.deepEqual(env, { PATH: '/bin', HOME: '/root', A: 'literal', B: 'quoted value', N: '8080', T: 'true', S: 'hidden', F: 's3cret' });
});

test('env: a missing secret or file fails with the variable named and a hint', async () => {
  await assert.rejects(
    resolveEnvironment('api', withExec({ env: { DB: { fromEnv: 'NOPE' } } }), {}),
    (error) => error instanceof StartError && /env DB: pm's environment has no variable NOPE/.test(error.message) && /export NOPE/.test(error.hint ?? ''),
  );
  await assert.rejects(resolveEnvironment('api', withExec({ envFiles: ['/nonexistent/.env'] }), {}), (error) => error instanceof StartError && /ENOENT/.test(error.message));
});

test('user: unknown users are refused; switching is refused unless pm runs as root', async () => {
  await assert.rejects(resolveRunAs('api', withExec({ user: 'no-such-user-here' })), /user "no-such-user-here" does not exist/);
  const uid = process.getuid?.();
  const self = await resolveRunAs('api', withExec({ user: String(uid) }));
  assert.equal(self.uid, uid);
  if (uid !== 0) await assert.rejects(resolveRunAs('api', withExec({ user: '0' })), /cannot switch/);
  else assert.equal((await resolveRunAs('api', withExec({ user: 'nobody' }))).uid !== undefined, true);
});
