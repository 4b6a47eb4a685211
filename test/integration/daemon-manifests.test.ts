// pm daemon watches its manifest directory: an edit acts on the processes it changes and on no
// others, a label-only edit restarts nothing, and an invalid set changes nothing at all while
// /readyz says which file is wrong.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { isRunningWith, type Sandbox } from '../support/cli.js';
import { rename } from 'node:fs/promises';
import { createDaemonSandbox, daemonArgs, daemonEnv, fixtureManifest, indexOfEvent, quickRestarts, readEndpoint, startDaemon, type Daemon } from '../support/daemon.js';
import { waitForValue } from '../support/wait.js';

const write = (sandbox: Sandbox, name: string, env: Record<string, string> = {}, labels?: Record<string, string>) =>
  sandbox.write(`manifests/${name}.yaml`, fixtureManifest(sandbox, { name, program: 'idle', env, ...(labels && { labels }) }, quickRestarts()));

async function bothReady(daemon: Daemon): Promise<{ a: number; b: number }> {
  const a = await daemon.waitFor('a', (s) => s.phase === 'Ready', 'a to be Ready');
  const b = await daemon.waitFor('b', (s) => s.phase === 'Ready', 'b to be Ready');
  return { a: a.pid as number, b: b.pid as number };
}

/** A daemon running a (with `env` and `labels`) and b, both Ready; `before` holds their pids. */
async function aAndBReady(t: TestContext, env: Record<string, string> = {}, labels?: Record<string, string>): Promise<{ sandbox: Sandbox; daemon: Daemon; before: { a: number; b: number } }> {
  const sandbox = await createDaemonSandbox(t);
  await write(sandbox, 'a', env, labels);
  await write(sandbox, 'b');
  const daemon = await startDaemon(sandbox);
  return { sandbox, daemon, before: await bothReady(daemon) };
}

test('editing one manifest restarts that process only', async (t) => {
  const { sandbox, daemon, before } = await aAndBReady(t, { MODE: 'one' });

  await write(sandbox, 'a', { MODE: 'two' });
  const a = await daemon.waitFor('a', (s) => s.pid !== undefined && s.pid !== before.a && s.phase === 'Ready', 'a to run under a new pid');
  assert.equal(a.restarts, 1);
  assert.equal(await isRunningWith(before.a), false, 'the old a is gone');
  const accepted = await daemon.waitForEvent(undefined, (e) => e.type === 'ManifestsAccepted' && /changed: a$/.test(e.message), 'the edit accepted');
  assert.match(accepted.message, /changed: a$/, 'only a changed');

  const b = await daemon.get('b');
  assert.equal(b.pid, before.b, 'b keeps its pid');
  assert.equal(b.restarts, 0);
  const events = await daemon.events('a');
  const restarting = indexOfEvent(events, 'Restarting');
  assert.ok(restarting >= 0, 'a Restarting event');
  assert.match(events[restarting]?.message ?? '', /MODE|env|spec/i);
  assert.deepEqual(
    (await daemon.events('b')).map((e) => e.type),
    ['Started', 'Ready'],
    'b saw nothing after its start',
  );
});

test('a comment-only edit changes nothing; a real edit after it still restarts the process', async (t) => {
  const { sandbox, daemon, before } = await aAndBReady(t, { MODE: 'one' });

  // The daemon's reloads reuse what they read of unchanged files: a file whose text changed must
  // be read again, and one whose meaning did not must change nothing.
  const text = fixtureManifest(sandbox, { name: 'a', program: 'idle', env: { MODE: 'one' } }, quickRestarts());
  await sandbox.write('manifests/a.yaml', `# a comment, nothing else\n${text}`);
  await daemon.waitForEvent(undefined, (e) => e.type === 'ManifestsAccepted' && /changed: none$/.test(e.message), 'the comment accepted, nothing changed');
  await write(sandbox, 'a', { MODE: 'two' });
  const a = await daemon.waitFor('a', (s) => s.pid !== undefined && s.pid !== before.a && s.phase === 'Ready', 'a to run under a new pid');
  assert.equal(a.restarts, 1);
  const b = await daemon.get('b');
  assert.equal(b.pid, before.b, 'b keeps its pid');
  assert.equal(b.restarts, 0);
});

test('a label-only edit restarts nothing: the same pid, an Updated event', async (t) => {
  const { sandbox, daemon, before } = await aAndBReady(t, {}, { tier: 'one' });

  await write(sandbox, 'a', {}, { tier: 'two' });
  const updated = await daemon.waitForEvent('a', (e) => e.type === 'Updated', 'an Updated event for a');
  assert.match(updated.message, /labels/);
  const a = await daemon.get('a');
  assert.deepEqual(a.labels, { tier: 'two' });
  assert.equal(a.pid, before.a, 'a keeps its pid');
  assert.equal(a.restarts, 0);
  assert.equal(a.phase, 'Ready');
  assert.equal((await daemon.get('b')).pid, before.b);
  assert.equal((await daemon.events('a')).filter((e) => e.type === 'Started').length, 1);
});

test('an invalid edit changes nothing and /readyz says which file; fixing it makes the daemon ready again', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await write(sandbox, 'a');
  await write(sandbox, 'b', { MODE: 'one' });
  const daemon = await startDaemon(sandbox);
  const before = await bothReady(daemon);
  assert.equal((await daemon.readyz()).status, 200);

  const broken = [
    // A YAML syntax error.
    { what: 'a syntax error', text: 'apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata: {name: a\nspec: [\n' },
    // Valid YAML, but a field the schema does not know.
    { what: 'an unknown field', text: fixtureManifest(sandbox, { name: 'a', program: 'idle' }, { ...quickRestarts(), restartTimes: 3 }) },
  ];
  let mode = 'one';
  for (const { what, text } of broken) {
    // a breaks first, then b changes validly: every set the daemon can read in between holds the bad a.
    await sandbox.write('manifests/a.yaml', text);
    mode = mode === 'one' ? 'two' : 'one';
    await write(sandbox, 'b', { MODE: mode });
    const ready = await waitForValue(
      async () => {
        const reply = await daemon.readyz();
        return reply.status === 200 ? undefined : reply;
      },
      { message: `${what}: /readyz to stop answering 200` },
    );
    assert.equal(ready.status, 503, `${what}: /readyz answers 503`);
    assert.equal(ready.body.ready, false);
    assert.equal(ready.body.manifests.accepted, false);
    assert.ok(
      ready.body.reasons.some((r) => /manifests\/a\.yaml:\d+:\d+: /.test(r)),
      `${what}: a reason names the file: ${JSON.stringify(ready.body.reasons)}`,
    );
    await daemon.waitForEvent(
      undefined,
      (e, i, all) => e.type === 'ManifestsRejected' && all.slice(i + 1).every((x) => x.type !== 'ManifestsAccepted'),
      `${what}: ManifestsRejected`,
    );
    // Nothing changed: both keep their pids, b's valid edit is held back with the rest of the set.
    for (const name of ['a', 'b'] as const) {
      const status = await daemon.get(name);
      assert.equal(status.pid, before[name], `${what}: ${name} keeps its pid`);
      assert.equal(status.phase, 'Ready');
    }

    // Fixed: the set is accepted, b's edit takes effect, a stays as it was.
    await write(sandbox, 'a');
    const b = await daemon.waitFor('b', (s) => s.pid !== before.b && s.phase === 'Ready', `${what}: b to restart with its edit once a is fixed`);
    before.b = b.pid as number;
    const fixed = await daemon.readyz();
    assert.equal(fixed.status, 200, `${what}: ready again: ${JSON.stringify(fixed.body)}`);
    assert.deepEqual(fixed.body.reasons, []);
    const a = await daemon.get('a');
    assert.equal(a.pid, before.a, `${what}: a never restarted`);
    assert.equal(a.restarts, 0);
  }
});

test('removing a manifest stops and forgets its process; the others keep running', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await write(sandbox, 'a');
  await write(sandbox, 'b');
  const daemon = await startDaemon(sandbox);
  const before = await bothReady(daemon);

  await sandbox.remove('manifests/b.yaml');
  await daemon.waitForEvent(undefined, (e) => e.process === 'b' && e.type === 'Deleted', 'b to be deleted');
  assert.equal(await isRunningWith(before.b), false, 'b is stopped');
  assert.deepEqual(
    (await daemon.list()).map((s) => s.name),
    ['a'],
  );
  assert.equal((await daemon.api('GET', '/api/v1/processes/b')).status, 404);
  const a = await daemon.get('a');
  assert.equal(a.pid, before.a, 'a keeps its pid');
  assert.equal(a.restarts, 0);
});

test('a manifest written while the daemon starts, between its first read and its watcher being ready, is applied', async (t) => {
  const sandbox = await createDaemonSandbox(t);
  await sandbox.write('manifests/keep.yaml', fixtureManifest(sandbox, { name: 'keep', program: 'idle' }, quickRestarts()));
  const bg = sandbox.pmBackground(daemonArgs(sandbox), daemonEnv(sandbox));
  // daemon.json is written once the first read is done and the API listens: a daemon that started its
  // watcher only after that (as it once did) never applied what was written here.
  await waitForValue(async () => ((await readEndpoint(sandbox.stateDir))?.pid === bg.child.pid ? true : undefined), { message: 'daemon.json', intervalMs: 1 });
  await sandbox.write('manifests/.late.yaml.tmp', fixtureManifest(sandbox, { name: 'late', program: 'idle' }, quickRestarts()));
  await rename(sandbox.path('manifests/.late.yaml.tmp'), sandbox.path('manifests/late.yaml'));
  await waitForValue(async () => (bg.stdout().includes('"msg":"pm daemon running"') ? true : undefined), { message: 'the daemon to finish starting' });
  // The daemon's own log says it started it (pm get would go through the daemon too).
  await waitForValue(async () => (/"process":"late","event":"Started"/.test(bg.stdout()) ? true : undefined), { message: 'late to be started', timeoutMs: 20_000 });
  bg.child.kill('SIGTERM');
  await bg.result;
});
