import { test } from 'node:test';
import { execSpecOf } from '../../src/manifest/runtime.js';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { resolveEnvironment } from '../../src/apply/environment.js';
import { resolveRunAs } from '../../src/apply/identity.js';
import { StartError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { manifest } from '../support/manifests.js';
import type { ExecSpec, ProcessManifest } from '../../src/manifest/types.js';

function withExec(exec: Partial<ExecSpec>): ProcessManifest {
  const m = manifest({ name: 'api', command: ['x'] });
  return { ...m, spec: { ...m.spec, exec: { ...execSpecOf(m), ...exec } } };
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

/** A uid that /etc/passwd does not list. */
async function unlistedUid(): Promise<number> {
  const ids = new Set((await readFile('/etc/passwd', 'utf8')).split('\n').map((line) => Number(line.split(':')[2])));
  let uid = 4_242_424;
  while (ids.has(uid)) uid++;
  return uid;
}

test('user: a numeric user with no /etc/passwd entry needs group:, or it would keep gid 0', async () => {
  const uid = await unlistedUid();
  await assert.rejects(
    resolveRunAs('api', withExec({ user: String(uid) })),
    (error) =>
      error instanceof StartError &&
      error.message.includes(`user ${uid} has no entry in /etc/passwd, so it has no primary group`) &&
      /add spec\.exec\.group/.test(error.hint ?? ''),
  );
  const withGroup = resolveRunAs('api', withExec({ user: String(uid), group: String(uid) }));
  if (process.getuid?.() === 0) {
    // No passwd entry: no home and no name, so HOME is / (as Docker does), never pm's own.
    assert.deepEqual(await withGroup, { uid, gid: uid, identityEnv: { HOME: '/' } });
  } else {
    await assert.rejects(withGroup, /cannot switch/);
  }
});

test('user: HOME, USER and LOGNAME come from the passwd entry and replace what pm would pass on', async () => {
  const me = userInfo();
  // Our own user works without root; as root, switch to nobody as well.
  const cases: [string, { uid: number; name: string; home: string }][] = [[String(me.uid), { uid: me.uid, name: me.username, home: me.homedir }]];
  if (me.uid === 0) {
    const nobody = (await readFile('/etc/passwd', 'utf8')).split('\n').find((line) => line.startsWith('nobody:'))?.split(':');
    if (nobody) cases.push(['nobody', { uid: Number(nobody[2]), name: 'nobody', home: nobody[5] ?? '' }]);
  }
  for (const [user, want] of cases) {
    const runAs = await resolveRunAs('api', withExec({ user }));
    assert.equal(runAs.uid, want.uid, user);
    assert.deepEqual(runAs.identityEnv, { HOME: want.home, USER: want.name, LOGNAME: want.name }, user);

    const pmEnv = { PATH: '/bin', HOME: '/pm/own/home', USER: 'pm-user' };
    const env = await resolveEnvironment('api', withExec({ user }), pmEnv, runAs);
    assert.deepEqual(env, { PATH: '/bin', HOME: want.home, USER: want.name, LOGNAME: want.name }, user);
    const declared = await resolveEnvironment('api', withExec({ user, env: { HOME: '/srv/app' } }), pmEnv, runAs);
    assert.equal(declared.HOME, '/srv/app', 'the manifest still has the last word');
  }
  // Without spec.exec.user nothing changes: HOME is inherited as before.
  assert.deepEqual(await resolveRunAs('api', withExec({})), {});
  assert.equal((await resolveEnvironment('api', withExec({}), { HOME: '/pm/own/home' }, {})).HOME, '/pm/own/home');
});
