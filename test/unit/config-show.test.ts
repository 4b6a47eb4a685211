// `pm config show`: every key with its value and source, secrets masked, via the command's run().
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { configCommand } from '../../src/cli/commands/config.js';
import type { Cli } from '../../src/cli/command.js';
import { makeStyle } from '../../src/cli/output/style.js';
import { UsageError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

async function show(dir: string, env: NodeJS.ProcessEnv, values: Record<string, string>, positionals = ['show']): Promise<string> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const cli = {
    stdout: out as unknown as NodeJS.WriteStream,
    stderr: new PassThrough() as unknown as NodeJS.WriteStream,
    stdin: new PassThrough() as unknown as NodeJS.ReadStream,
    env: { HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), XDG_STATE_HOME: join(dir, 'state'), ...env },
    cwd: dir,
    style: makeStyle(false),
    errStyle: makeStyle(false),
    stateDir: join(dir, 'state'),
    signal: new AbortController().signal,
  } satisfies Cli;
  assert.equal(await configCommand.run(values, positionals, cli), 0);
  return text;
}

test('the table shows each value and its source; the secret is masked', async (t) => {
  const dir = await tempDir(t, 'pm-config-show-');
  const file = join(dir, 'config.yaml');
  await writeFile(file, '# pm\nlogLevel: warn\napiToken: hunter2-secret\n');
  const text = await show(dir, { PM_PARALLEL: '4' }, { config: file, 'log-format': 'json' });
  assert.doesNotMatch(text, /hunter2/);
  const rows = new Map(text.trim().split('\n').slice(2).map((line) => {
    const [key, value, ...source] = line.split(/\s{3,}/);
    return [key, { value, source: source.join(' ') }];
  }));
  assert.deepEqual(rows.get('apiToken'), { value: '****', source: `file ${file}:3` });
  assert.deepEqual(rows.get('logLevel'), { value: 'warn', source: `file ${file}:2` });
  assert.deepEqual(rows.get('parallel'), { value: '4', source: 'env PM_PARALLEL' });
  assert.deepEqual(rows.get('logFormat'), { value: 'json', source: 'flag --log-format' });
  assert.deepEqual(rows.get('listen'), { value: '127.0.0.1:7070', source: 'default' });
  assert.deepEqual(rows.get('socket'), { value: '-', source: 'default' });
  assert.match(text, new RegExp(`^# config file: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
});

test('-o json masks the secret from the environment too and keeps source details', async (t) => {
  const dir = await tempDir(t, 'pm-config-show-');
  const doc = JSON.parse(await show(dir, { PM_API_TOKEN: 'tok-123' }, { output: 'json' })) as Record<string, { value: unknown; source: string; detail: string }>;
  assert.deepEqual(doc.apiToken, { value: '****', source: 'env', detail: 'PM_API_TOKEN' });
  assert.deepEqual(doc.apiTokenFile, { value: null, source: 'default', detail: 'not set' });
  assert.deepEqual(doc.stateDir, { value: join(dir, 'state', 'pm'), source: 'default', detail: '$XDG_STATE_HOME/pm' });
});

test('anything but `show` is a usage error', async (t) => {
  const dir = await tempDir(t, 'pm-config-show-');
  await assert.rejects(show(dir, {}, {}, []), UsageError);
  await assert.rejects(show(dir, {}, {}, ['edit']), UsageError);
  await assert.rejects(show(dir, {}, { output: 'xml' }), UsageError);
});

test('a database URL shows where the server is, never its password (userinfo or ?password=)', async (t) => {
  const dir = await tempDir(t);
  const text = await show(dir, { PM_DATABASE_URL: 'postgres://pm:hunter2@db.example:5432/pm?sslmode=require&password=also-secret' }, { output: 'json' });
  const doc = JSON.parse(text) as Record<string, { value: unknown; source: string }>;
  assert.equal(doc.databaseUrl?.value, 'postgres://pm:****@db.example:5432/pm?sslmode=require&password=****');
  assert.equal(doc.databaseUrl?.source, 'env');
  assert.ok(!text.includes('hunter2') && !text.includes('also-secret'));
  const garbled = JSON.parse(await show(dir, { PM_DATABASE_URL: 'postgres://pm:hunter2@[bad' }, { output: 'json' })) as Record<string, { value: unknown }>;
  assert.equal(garbled.databaseUrl?.value, '****', 'a URL that does not parse is masked whole');
});
