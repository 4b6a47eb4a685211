// pm is meant to run with the Node flags the benches measure it with: the `pm` command's #! line,
// `npm start` and the README's command line must all pass bench/daemon's PM_NODE_FLAGS.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { PM_NODE_FLAGS } from '../../bench/daemon/managers/pm.js';

const root = new URL('../../', import.meta.url);
const text = (path: string): Promise<string> => readFile(new URL(path, root), 'utf8');

test('the #! line, npm start and the README run node with PM_NODE_FLAGS', async () => {
  const flags = PM_NODE_FLAGS.join(' ');
  assert.equal((await text('src/cli/main.ts')).split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  const scripts = (JSON.parse(await text('package.json')) as { scripts: Record<string, string> }).scripts;
  assert.equal(scripts.start, `node ${flags} dist/cli/main.js daemon -f manifests/`);
  assert.match(await text('README.md'), new RegExp(`node ${flags} dist/cli/main\\.js daemon -f manifests/`));
});
