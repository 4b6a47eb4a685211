// The notify startup probe's parts: where manifests may use it, the runner that waits for the line,
// the descriptor the exec driver hands the process, and the cgroup gate moving out of its way.
import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { behindGate, gateFd, gateScript, SH } from '../../src/drivers/exec/cgroup/gate.js';
import { ExecDriver } from '../../src/drivers/exec/index.js';
import { waitForNotification } from '../../src/probes/notify.js';
import { runProbe } from '../../src/probes/runners.js';
import type { Probe } from '../../src/manifest/types.js';
import { nodeScript } from '../support/exec-fixtures.js';
import { at, issuesOfFiles as issuesOf, only, proc } from '../support/manifest-issues.js';
import { killGroupAfter } from '../support/processes.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const HOUR_MS = 3_600_000;

test('a notify probe under readiness or liveness is rejected where it is written, with what to do', async (t) => {
  for (const kind of ['readiness', 'liveness']) {
    const issue = only(await issuesOf(t, { 'a.yaml': proc('api', `  probes:\n    ${kind}:\n      notify: {}\n`) }));
    assert.equal(issue.code, 'probe.notify-kind');
    assert.equal(at(issue), 'manifests/a.yaml:10:7');
    assert.match(issue.message, new RegExp(`cannot be a ${kind} probe`));
    assert.match(issue.hint ?? '', /spec\.probes\.startup/);
  }
});

test('a notify probe needs the exec driver', async (t) => {
  const docker = `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: web
spec:
  driver: docker
  docker:
    image: nginx:1
  probes:
    startup:
      notify: {fd: 4}
`;
  const issue = only(await issuesOf(t, { 'w.yaml': docker }));
  assert.equal(issue.code, 'probe.notify-driver');
  assert.equal(at(issue), 'manifests/w.yaml:11:7');
  assert.match(issue.message, /driver docker/);
});

test('a notify descriptor outside 3–9 is a schema error', async (t) => {
  const issue = only(await issuesOf(t, { 'a.yaml': proc('api', '  probes:\n    startup:\n      notify: {fd: 2}\n') }));
  assert.equal(at(issue), 'manifests/a.yaml:10:20');
  assert.match(issue.message, /fd/);
});

test('waitForNotification: a line already there passes at once; a line written later passes when written', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'ready');
  await writeFile(file, 'READY=1\n');
  assert.deepEqual(pick(await waitForNotification(file, 3, HOUR_MS)), { ok: true, message: 'notified ready on descriptor 3' });

  await writeFile(file, '');
  // An hour's wait: only the file watch can end it within the test.
  const waiting = waitForNotification(file, 3, HOUR_MS);
  await appendFile(file, 'READY');
  await appendFile(file, '=1\n');
  assert.deepEqual(pick(await waiting), { ok: true, message: 'notified ready on descriptor 3' });
});

test('waitForNotification: text without a newline is not a notification; a missing file and an abort are failures', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'ready');
  await writeFile(file, 'READY=1');
  assert.deepEqual(pick(await waitForNotification(file, 4, 30)), { ok: false, message: 'not notified ready yet (descriptor 4)' });
  const missing = await waitForNotification(join(dir, 'nothing'), 3, HOUR_MS);
  assert.equal(missing.ok, false);
  assert.match(missing.message, /no notification file .*nothing: the process was not started with this probe/);
  const abort = new AbortController();
  const aborted = waitForNotification(file, 3, HOUR_MS, abort.signal);
  abort.abort();
  assert.deepEqual(pick(await aborted), { ok: false, message: 'aborted' });
});

test('runProbe: a notify probe without a file for the run fails with the reason', async () => {
  const probe: Probe = { notify: { fd: 3 }, initialDelaySeconds: 0, periodSeconds: 1, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 };
  const result = await runProbe(probe, { ports: [] });
  assert.equal(result.ok, false);
  assert.match(result.message, /no notification file for this run/);
});

test('exec driver: the process gets the emptied file as its descriptor, and PM_READY_FD names it', async (t) => {
  const dir = await tempDir(t);
  const readyFile = join(dir, 'ready');
  await writeFile(readyFile, 'READY=1\nfrom an earlier run\n');
  const request = nodeScript(dir, "require('fs').writeSync(5, 'fd ' + process.env.PM_READY_FD + '\\n'); setInterval(() => {}, 1000);", { readyFile });
  const base = request.manifest;
  request.manifest = { ...base, spec: { ...base.spec, probes: { startup: { notify: { fd: 5 }, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 } } } };
  const handle = await new ExecDriver().start(request);
  killGroupAfter(t, handle.pgid);
  await waitFor(async () => (await readFile(readyFile, 'utf8')).length > 0, { message: 'the child to write to descriptor 5' });
  assert.equal(await readFile(readyFile, 'utf8'), 'fd 5\n', 'only this run’s line: the file was emptied at the start');
});

test('the cgroup gate waits on descriptor 4 when the notify descriptor is 3, else on 3', () => {
  assert.equal(gateFd(3), 4);
  assert.equal(gateFd(5), 3);
  assert.equal(gateFd(undefined), 3);
  assert.deepEqual(behindGate(['prog', 'a'], 4), [SH, '-c', gateScript(4), 'pm-exec', 'prog', 'a']);
  assert.equal(gateScript(4), 'read -r go <&4 && [ "$go" = go ] || exit 125; exec 4<&-; exec "$@"');
});

function pick(result: { ok: boolean; message: string }): { ok: boolean; message: string } {
  return { ok: result.ok, message: result.message };
}
