// Hooks against real child processes: exit codes, output, environment, cwd, timeouts and aborts
// that reach the whole process group, spawn failures, and nothing left behind on any path.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { describeHookFailure, KILL_GRACE_MS, MAX_OUTPUT_BYTES, runHook, type HookOptions, type HookResult } from '../../src/daemon/hooks.js';
import type { Hook } from '../../src/manifest/types.js';
import { isAlive, killGroup } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

function nodeHook(script: string, extra: Partial<Hook> = {}): Hook {
  return { command: [process.execPath, '-e', script], timeoutSeconds: 10, env: {}, ...extra };
}

function options(extra: Partial<HookOptions> = {}): HookOptions {
  return { name: 'web', kind: 'preStart', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, ...extra };
}

/** Timers alive in this process: a finished hook leaves none behind. */
function timerCount(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/**
 * A hook script that starts a grandchild in its own group, writes "leader grandchild" PIDs to
 * `pidFile` and runs until stopped. Both are killed when the test ends, whatever its outcome.
 */
function spawnerScript(t: TestContext, pidFile: string, leaderSetup = ''): string {
  t.after(async () => {
    if (!existsSync(pidFile)) return;
    const [leader, grandchild] = (await readFile(pidFile, 'utf8')).split(' ').map(Number);
    if (leader !== undefined) killGroup(leader);
    if (grandchild !== undefined && isAlive(grandchild)) process.kill(grandchild, 'SIGKILL');
  });
  return `
    ${leaderSetup}
    const c = require('child_process').spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    // Written aside and renamed: the test waits for the file to exist and must never read it half written.
    require('fs').writeFileSync(${JSON.stringify(pidFile + '.partial')}, process.pid + ' ' + c.pid);
    require('fs').renameSync(${JSON.stringify(pidFile + '.partial')}, ${JSON.stringify(pidFile)});
    console.log('started');
    setInterval(() => {}, 1000);`;
}

async function readPids(pidFile: string): Promise<[number, number]> {
  const [leader, grandchild] = (await readFile(pidFile, 'utf8')).split(' ').map(Number);
  assert.ok(leader !== undefined && grandchild !== undefined);
  return [leader, grandchild];
}

test('exit 0 is ok; the result has one shape for success and failure', async () => {
  const timers = timerCount();
  const result = await runHook(nodeHook('process.exit(0)'), options());
  assert.deepEqual(
    { ...result, durationMs: 0 },
    { ok: true, code: 0, signal: null, timedOut: false, aborted: false, timeoutSeconds: 10, durationMs: 0, output: '' },
  );
  assert.ok(result.durationMs > 0);
  assert.equal(timerCount(), timers, 'no timer left behind');
});

test('a non-zero exit is a failure with its code and output, described in one line', async () => {
  const script = "console.log('checking database'); console.error('database down\\n'); process.exit(3)";
  const result = await runHook(nodeHook(script), options());
  assert.deepEqual({ ok: result.ok, code: result.code, signal: result.signal, timedOut: result.timedOut }, { ok: false, code: 3, signal: null, timedOut: false });
  assert.match(result.output, /checking database\n/);
  assert.match(result.output, /database down\n/);
  assert.match(describeHookFailure('preStart', result), /^preStart hook exited with code 3 after \d+ ms: database down$/);
});

test('the environment is the process env, then hook.env, then PM_PROCESS and PM_HOOK, then extraEnv', async () => {
  const script = `process.stdout.write(JSON.stringify(process.env))`;
  const hook = nodeHook(script, { env: { FROM_HOOK: 'hook', BOTH_PROCESS_HOOK: 'hook', BOTH_HOOK_EXTRA: 'hook', PM_HOOK: 'spoofed' } });
  const result = await runHook(
    hook,
    options({
      name: 'api',
      kind: 'postStart',
      env: { PATH: process.env.PATH ?? '', FROM_PROCESS: 'process', BOTH_PROCESS_HOOK: 'process' },
      extraEnv: { PM_PID: '4242', BOTH_HOOK_EXTRA: 'extra' },
    }),
  );
  assert.equal(result.ok, true, result.output);
  const env = JSON.parse(result.output) as Record<string, string>;
  assert.deepEqual(
    {
      FROM_PROCESS: env.FROM_PROCESS,
      FROM_HOOK: env.FROM_HOOK,
      BOTH_PROCESS_HOOK: env.BOTH_PROCESS_HOOK,
      BOTH_HOOK_EXTRA: env.BOTH_HOOK_EXTRA,
      PM_PROCESS: env.PM_PROCESS,
      PM_HOOK: env.PM_HOOK,
      PM_PID: env.PM_PID,
    },
    { FROM_PROCESS: 'process', FROM_HOOK: 'hook', BOTH_PROCESS_HOOK: 'hook', BOTH_HOOK_EXTRA: 'extra', PM_PROCESS: 'api', PM_HOOK: 'postStart', PM_PID: '4242' },
  );
  assert.equal(env.HOME, undefined, "pm's own environment is not inherited");
});

test('runs without a shell, in the given cwd', async (t) => {
  const dir = await tempDir(t);
  const result = await runHook(nodeHook('process.stdout.write(process.cwd())'), options({ cwd: dir }));
  assert.equal(result.output, await realpath(dir));

  const shellish = await runHook({ command: ['true && false'], timeoutSeconds: 5, env: {} }, options());
  assert.equal(shellish.ok, false);
  assert.match(shellish.error ?? '', /ENOENT/);
});

test('a timeout stops the whole group: SIGTERM, then SIGKILL for what ignores it', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'pids');
  // The leader ignores SIGTERM, so only the SIGKILL after the grace period ends it.
  const script = spawnerScript(t, pidFile, 'process.on("SIGTERM", () => {});');
  const timers = timerCount();
  const signal = new AbortController().signal;
  const result = await runHook(nodeHook(script, { timeoutSeconds: 1 }), options({ signal }));

  assert.deepEqual({ ok: result.ok, code: result.code, signal: result.signal, timedOut: result.timedOut, aborted: result.aborted }, { ok: false, code: null, signal: 'SIGKILL', timedOut: true, aborted: false });
  assert.ok(result.durationMs >= 1000 + KILL_GRACE_MS - 50, `took ${result.durationMs} ms`);
  assert.match(result.output, /started/);
  assert.equal(describeHookFailure('preStart', result), 'preStart hook timed out after 1s: started');

  const [leader, grandchild] = await readPids(pidFile);
  assert.equal(isAlive(leader), false);
  await waitFor(() => !isAlive(grandchild), { message: 'the grandchild to be killed with the group' });
  assert.equal(getEventListeners(signal, 'abort').length, 0, 'the abort listener is removed');
  assert.equal(timerCount(), timers, 'no timer left behind');
});

test('an abort stops the whole group and is reported as such', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'pids');
  const controller = new AbortController();
  const running = runHook(nodeHook(spawnerScript(t, pidFile), { timeoutSeconds: 60 }), options({ kind: 'preStop', signal: controller.signal }));
  await waitFor(() => existsSync(pidFile), { message: 'the hook to start its grandchild' });
  controller.abort();
  const result = await running;

  assert.deepEqual({ ok: result.ok, signal: result.signal, timedOut: result.timedOut, aborted: result.aborted }, { ok: false, signal: 'SIGTERM', timedOut: false, aborted: true });
  assert.match(describeHookFailure('preStop', result), /^preStop hook was cancelled after \d+ ms/);
  const [leader, grandchild] = await readPids(pidFile);
  assert.equal(isAlive(leader), false);
  await waitFor(() => !isAlive(grandchild), { message: 'the grandchild to be killed with the group' });
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
});

test('an already aborted signal runs nothing', async (t) => {
  const dir = await tempDir(t);
  const marker = join(dir, 'ran');
  const result = await runHook(nodeHook(`require('fs').writeFileSync(${JSON.stringify(marker)}, '')`), options({ signal: AbortSignal.abort() }));
  assert.deepEqual(result, { ok: false, code: null, signal: null, timedOut: false, aborted: true, timeoutSeconds: 10, durationMs: 0, output: '' });
  assert.equal(existsSync(marker), false);
});

test('what a hook leaves running is killed when it exits, and does not hold the result', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'grandchild');
  // The grandchild inherits stdout and would hold it open for ever.
  const script = `
    const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: ['ignore', 'inherit', 'inherit'] });
    require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));
    process.exit(0);`;
  const result = await runHook(nodeHook(script, { timeoutSeconds: 30 }), options());
  const grandchild = Number(await readFile(pidFile, 'utf8'));
  t.after(() => {
    if (isAlive(grandchild)) process.kill(grandchild, 'SIGKILL');
  });
  assert.deepEqual({ ok: result.ok, timedOut: result.timedOut }, { ok: true, timedOut: false });
  await waitFor(() => !isAlive(grandchild), { message: 'the grandchild to be gone' });
});

test('a process that left the group and holds the output open does not hold the result', async (t) => {
  const dir = await tempDir(t);
  const pidFile = join(dir, 'escaped');
  // detached: the grandchild starts its own session, out of reach of the hook's group.
  const script = `
    const c = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
    require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(c.pid));
    console.log('bye');
    process.exit(0);`;
  const result = await runHook(nodeHook(script, { timeoutSeconds: 30 }), options());
  const escaped = Number(await readFile(pidFile, 'utf8'));
  t.after(() => killGroup(escaped));
  assert.deepEqual({ ok: result.ok, timedOut: result.timedOut, output: result.output }, { ok: true, timedOut: false, output: 'bye\n' });
});

test('a program that cannot be run is a failure with the reason, not an exception', async (t) => {
  const missing = await runHook({ command: ['/nonexistent/reload'], timeoutSeconds: 5, env: {} }, options({ kind: 'restartScript' }));
  assert.deepEqual({ ok: missing.ok, code: missing.code, error: missing.error }, { ok: false, code: null, error: 'spawn /nonexistent/reload ENOENT' });
  assert.equal(describeHookFailure('restartScript', missing), 'restart script could not run: spawn /nonexistent/reload ENOENT');

  const dir = await tempDir(t);
  const noCwd = await runHook(nodeHook('process.exit(0)'), options({ cwd: join(dir, 'gone') }));
  assert.equal(noCwd.error, `cwd ${join(dir, 'gone')} does not exist`);
});

test('output keeps only the last 4 KiB of a chatty hook', async () => {
  // 100 KiB, then a last line to find at the end. One stream only: how output of the two pipes
  // interleaves depends on which one is read first.
  const script = `
    const line = 'x'.repeat(1023) + '\\n';
    for (let i = 0; i < 100; i++) process.stdout.write(line);
    process.stdout.write('the end\\n');
    process.exitCode = 1;`;
  const result = await runHook(nodeHook(script), options());
  assert.equal(result.code, 1);
  assert.ok(result.output.startsWith('…'));
  assert.equal(Buffer.byteLength(result.output.slice(1)), MAX_OUTPUT_BYTES);
  assert.ok(result.output.endsWith('x\nthe end\n'));
  assert.match(describeHookFailure('postStart', result), /^postStart hook exited with code 1 after \d+(\.\d)?(s| ms): the end$/);

  // Two-byte characters, then one ASCII byte: an odd byte count from the end falls inside a character.
  const utf8 = await runHook(nodeHook("process.stderr.write('é'.repeat(3000) + 'z')"), options());
  assert.equal(utf8.output, `…${'é'.repeat(2047)}z`, 'the partial character is dropped, not shown as U+FFFD');
});

test('describeHookFailure names the hook, how it ended and how long it took', () => {
  const base: HookResult = { ok: false, code: null, signal: null, timedOut: false, aborted: false, timeoutSeconds: 30, durationMs: 120, output: '' };
  assert.equal(describeHookFailure('preStop', { ...base, signal: 'SIGSEGV', durationMs: 2500 }), 'preStop hook was killed by SIGSEGV after 2.5s');
  assert.equal(describeHookFailure('preStart', { ...base, code: 2, output: 'first\n\n  last words  \n\n' }), 'preStart hook exited with code 2 after 120 ms: last words');
  assert.equal(describeHookFailure('restartScript', { ...base, timedOut: true, durationMs: 32_000 }), 'restart script timed out after 30s');
  assert.equal(describeHookFailure('postStart', { ...base, ok: true, code: 0 }), 'postStart hook succeeded after 120 ms');
});

test('a bad timeout is a programming error', async () => {
  await assert.rejects(runHook(nodeHook('0', { timeoutSeconds: 0 }), options()), /timeoutSeconds must be a positive number, got 0/);
});

test('runs as the process user and group', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: only root can run a hook as another user');
    return;
  }
  const hook: Hook = { command: ['sh', '-c', 'echo "$(id -u):$(id -g):$(id -G)"'], timeoutSeconds: 5, env: {} };
  const result = await runHook(hook, options({ uid: 65534, gid: 65534 }));
  assert.equal(result.output, '65534:65534:65534\n', 'uid, gid, and no supplementary groups of pm');
});
