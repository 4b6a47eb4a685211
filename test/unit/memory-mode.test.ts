// memoryMode: the flags reach V8 when set at run time. Each case runs in its own node process (a
// flag, once set, stays for the process) with V8's natives syntax, to ask whether a hot function
// was optimized; 'fast' is the control that shows the probe can see an optimization at all.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { MEMORY_MODE_FLAGS, type MemoryMode } from '../../src/daemon/memory-mode.js';
import { tempDir } from '../support/tmp.js';

const MODULE = fileURLToPath(new URL('../../src/daemon/memory-mode.ts', import.meta.url));
/** %GetOptimizationStatus: the function has optimized code. */
const OPTIMIZED = 1 << 4;

/** Calls a small function until V8 optimizes it or 5 million calls have passed; the last status. */
function optimizationStatus(mode: MemoryMode): number {
  const script = `
    import { applyMemoryMode } from ${JSON.stringify(MODULE)};
    applyMemoryMode(${JSON.stringify(mode)});
    function hot(x) { return x * 2 + 1; }
    let status = 0;
    for (let round = 0; round < 500 && (status & ${OPTIMIZED}) === 0; round++) {
      for (let i = 0; i < 10000; i++) hot(i);
      // Optimized code is compiled on another thread and installed when the loop yields.
      await new Promise((resolve) => setImmediate(resolve));
      status = %GetOptimizationStatus(hot);
    }
    process.stdout.write(String(status));
  `;
  const run = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, run.stderr);
  return Number(run.stdout);
}

test('fast leaves V8 its optimizing compiler: a hot function is optimized', () => {
  assert.deepEqual(MEMORY_MODE_FLAGS.fast, []);
  assert.notEqual(optimizationStatus('fast') & OPTIMIZED, 0);
});

test('lean turns the optimizing compilers off at run time: the same hot function never is', () => {
  assert.deepEqual(MEMORY_MODE_FLAGS.lean, ['--no-opt', '--no-maglev', '--optimize-for-size']);
  assert.equal(optimizationStatus('lean') & OPTIMIZED, 0);
});

test('memoryMode defaults to lean; fast comes from the file, PM_MEMORY_MODE or --memory-mode; others are refused', async (t) => {
  const dir = await tempDir(t, 'pm-memory-mode-');
  const env = { HOME: dir, XDG_CONFIG_HOME: dir, XDG_STATE_HOME: dir };
  assert.equal((await loadConfig({ env, flags: {}, cwd: dir })).config.memoryMode, 'lean');
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'memoryMode: fast\n');
  assert.equal((await loadConfig({ env, flags: {}, cwd: dir, file })).config.memoryMode, 'fast');
  const viaEnv = await loadConfig({ env: { ...env, PM_MEMORY_MODE: 'fast' }, flags: {}, cwd: dir });
  assert.equal(viaEnv.config.memoryMode, 'fast');
  assert.equal((await loadConfig({ env, flags: { 'memory-mode': 'fast' }, cwd: dir })).config.memoryMode, 'fast');
  await assert.rejects(loadConfig({ env: { ...env, PM_MEMORY_MODE: 'tiny' }, flags: {}, cwd: dir }), (error: Error) => /PM_MEMORY_MODE/.test(error.message) && /lean/.test(error.message) && /fast/.test(error.message));
});
