// The manifests the repository ships (the demo stack and the examples) stay valid.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSandbox, repoRoot } from '../support/cli.js';

for (const folder of ['manifests/', 'examples/']) {
  test(`pm validate -f ${folder} (the repository's own) exits 0`, async (t) => {
    const sandbox = await createSandbox(t);
    const result = await sandbox.pm(['validate', '-f', folder], { cwd: repoRoot });
    assert.equal(result.code, 0, `${folder} is invalid:\n${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^valid: \\d+ process(es)? in ${folder}$`, 'm'));
  });
}
