// The API token: made once in the state directory (0600) and reused, taken from the config or a
// file when given, refused when others can read it; and the bearer check.
import assert from 'node:assert/strict';
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { PmError } from '../../src/errors.js';
import { checkBearer, loadOrCreateToken } from '../../src/server/auth.js';
import { tempDir } from '../support/tmp.js';

test('first start makes <stateDir>/api-token: 32 random bytes in hex, mode 0600; later starts reuse it', async (t) => {
  const dir = await tempDir(t);
  const first = await loadOrCreateToken(dir);
  const path = join(dir, 'api-token');
  assert.equal(first.file, path);
  assert.match(first.token, /^[0-9a-f]{64}$/);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.equal((await readFile(path, 'utf8')).trim(), first.token);
  assert.deepEqual(await loadOrCreateToken(dir), first);
  assert.deepEqual(await readdir(dir), ['api-token'], 'no temp file is left behind');
});

test('daemons starting at once agree on one token: none overwrites another', async (t) => {
  const dir = await tempDir(t);
  const tokens = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateToken(dir)));
  assert.equal(new Set(tokens.map((x) => x.token)).size, 1);
  assert.deepEqual(await readdir(dir), ['api-token']);
});

test('a configured token wins and writes nothing; a token file is read and trimmed', async (t) => {
  const dir = await tempDir(t);
  assert.deepEqual(await loadOrCreateToken(dir, { token: 's3cret', tokenFile: join(dir, 'ignored') }), { token: 's3cret', file: undefined });
  assert.deepEqual(await readdir(dir), []);
  const file = join(dir, 'token');
  await writeFile(file, '  from-file\n', { mode: 0o600 });
  assert.deepEqual(await loadOrCreateToken(dir, { tokenFile: file }), { token: 'from-file', file });
  assert.deepEqual((await readdir(dir)).sort(), ['token'], 'no api-token is made when a file is configured');
});

test('a token file other users can read is refused, naming the file and the fix', async (t) => {
  const dir = await tempDir(t);
  const own = join(dir, 'api-token');
  await writeFile(own, 'abc\n', { mode: 0o600 });
  await chmod(own, 0o640);
  const refused = (path: string, mode: string) => (error: PmError) => {
    assert.ok(error instanceof PmError);
    assert.equal(error.code, 'E_TOKEN');
    assert.ok(error.message.includes(path), error.message);
    assert.ok(error.message.includes(`other users (mode ${mode})`), error.message);
    assert.equal(error.hint, `run \`chmod 600 ${path}\``);
    return true;
  };
  await assert.rejects(loadOrCreateToken(dir), refused(own, '0640'));
  assert.equal(await readFile(own, 'utf8'), 'abc\n', 'the file is left as it was');

  const configured = join(dir, 'configured');
  await writeFile(configured, 'abc\n');
  await chmod(configured, 0o604);
  await assert.rejects(loadOrCreateToken(dir, { tokenFile: configured }), refused(configured, '0604'));
});

test('a missing or empty token file is an error naming it', async (t) => {
  const dir = await tempDir(t);
  const missing = join(dir, 'missing');
  await assert.rejects(loadOrCreateToken(dir, { tokenFile: missing }), (error: PmError) => error.code === 'E_TOKEN' && error.message.includes(missing) && /ENOENT/.test(error.message));
  const empty = join(dir, 'empty');
  await writeFile(empty, ' \n', { mode: 0o600 });
  await assert.rejects(loadOrCreateToken(dir, { tokenFile: empty }), (error: PmError) => error.code === 'E_TOKEN' && error.message === `the API token file ${empty} is empty`);
  await assert.rejects(loadOrCreateToken(dir, { token: ' ' }), (error: PmError) => error.code === 'E_TOKEN');
});

test('checkBearer: only "Bearer <the token>" passes; length differences and other schemes fail', () => {
  const token = 'a'.repeat(64);
  assert.equal(checkBearer(`Bearer ${token}`, token), true);
  assert.equal(checkBearer(`bearer  ${token} `, token), true, 'the scheme is case-insensitive (RFC 7235)');
  assert.equal(checkBearer(`Bearer ${'a'.repeat(63)}`, token), false, 'a prefix of the token');
  assert.equal(checkBearer(`Bearer ${token}a`, token), false, 'a longer string');
  assert.equal(checkBearer(`Bearer ${'b'.repeat(64)}`, token), false);
  assert.equal(checkBearer('Bearer x', token), false);
  assert.equal(checkBearer(undefined, token), false);
  assert.equal(checkBearer('', token), false);
  assert.equal(checkBearer(token, token), false, 'no scheme');
  assert.equal(checkBearer(`Basic ${token}`, token), false);
  assert.equal(checkBearer(`Bearer ${token} extra`, token), false);
  assert.equal(checkBearer('Bearer ', ''), false, 'an empty token never matches');
});
