// Checks across the whole set: names, dependencies, cycles, conditions, ports, probe ports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { at, issuesOfFiles as issuesOf, only, proc } from '../support/manifest-issues.js';

const deps = (...names: string[]): string => `  dependsOn:\n${names.map((n) => `    - name: ${n}\n`).join('')}`;

test('a duplicate name is reported at the second declaration, pointing at the first', async (t) => {
  const issue = only(await issuesOf(t, { 'a.yaml': proc('api'), 'b.yaml': `${proc('db')}---\n${proc('api')}` }));
  assert.equal(issue.code, 'name.duplicate');
  assert.equal(at(issue), 'manifests/b.yaml:12:9');
  assert.equal(issue.message, 'duplicate process name "api": also declared at manifests/a.yaml:4:9');
});

test('a dependency that is not in the set', async (t) => {
  const issue = only(await issuesOf(t, { 'api.yaml': proc('api', deps('database')), 'db.yaml': proc('databse') }));
  assert.equal(issue.code, 'dependency.missing');
  assert.equal(at(issue), 'manifests/api.yaml:9:13');
  assert.equal(issue.message, 'api depends on "database", which is not in the set (did you mean "databse"?)');
  assert.equal(issue.hint, 'the set must contain every process it depends on: add its manifest or remove the dependency');
});

test('a missing dependency is not reported while another file cannot be read', async (t) => {
  const issues = await issuesOf(t, { 'api.yaml': proc('api', deps('db')), 'db.yaml': 'apiVersion: [' });
  assert.deepEqual(
    issues.map((issue) => issue.code),
    ['yaml.syntax'],
  );
});

test('a dependency declared by a document with schema errors is not missing', async (t) => {
  const issues = await issuesOf(t, { 'api.yaml': proc('api', deps('db')), 'db.yaml': proc('db', '  stop: { signal: SIGFOO }\n') });
  assert.deepEqual(
    issues.map((issue) => issue.code),
    ['schema.enum'],
  );
});

test('a process depending on itself', async (t) => {
  const issue = only(await issuesOf(t, { 'api.yaml': proc('api', deps('api')) }));
  assert.equal(issue.code, 'dependency.self');
  assert.equal(at(issue), 'manifests/api.yaml:9:13');
  assert.equal(issue.message, 'api depends on itself');
});

test('a 3-process cycle is reported once, with its path, at the entry that closes it', async (t) => {
  const issue = only(
    await issuesOf(t, {
      'api.yaml': proc('api', deps('worker')),
      'queue.yaml': proc('queue', deps('api')),
      'worker.yaml': proc('worker', `  ports:\n    - port: 9000\n${deps('queue')}`),
    }),
  );
  assert.equal(issue.code, 'dependency.cycle');
  assert.equal(issue.message, 'dependency cycle: api -> worker -> queue -> api');
  // DFS starts at `api` (name order); queue's entry for api closes the cycle.
  assert.equal(at(issue), 'manifests/queue.yaml:9:13');
});

test('separate cycles are each reported, deterministically', async (t) => {
  const files = {
    'a.yaml': proc('a', deps('b')),
    'b.yaml': proc('b', deps('a')),
    'c.yaml': proc('c', deps('d', 'a')),
    'd.yaml': proc('d', deps('c')),
  };
  const first = await issuesOf(t, files);
  assert.deepEqual(
    first.map((issue) => `${at(issue)} ${issue.message}`),
    ['manifests/b.yaml:9:13 dependency cycle: a -> b -> a', 'manifests/d.yaml:9:13 dependency cycle: c -> d -> c'],
  );
  assert.deepEqual(await issuesOf(t, files), first);
});

test('a dependency listed twice', async (t) => {
  const issue = only(await issuesOf(t, { 'api.yaml': proc('api', deps('db', 'db')), 'db.yaml': proc('db') }));
  assert.equal(issue.code, 'dependency.duplicate');
  assert.equal(at(issue), 'manifests/api.yaml:10:13');
  assert.match(issue.message, /lists dependency "db" twice \(also spec\.dependsOn\[0\]\)/);
});

test('condition: completed on a dependency that always restarts', async (t) => {
  const issue = only(
    await issuesOf(t, {
      'api.yaml': proc('api', '  dependsOn:\n    - name: migrate\n      condition: completed\n'),
      'migrate.yaml': proc('migrate'),
      'ok.yaml': proc('ok', '  dependsOn:\n    - { name: once, condition: completed }\n'),
      'once.yaml': proc('once', '  restartPolicy: { policy: on-failure }\n'),
    }),
  );
  assert.equal(issue.code, 'dependency.never-completes');
  assert.equal(at(issue), 'manifests/api.yaml:10:18');
  assert.match(issue.message, /never completes/);
  assert.match(issue.hint, /restartPolicy\.policy: on-failure or never on migrate/);
});

test('a probe naming a port the process does not declare', async (t) => {
  const issue = only(
    await issuesOf(t, {
      'api.yaml': proc(
        'api',
        `  ports:
    - { name: http, port: 8080 }
    - { name: metrics, port: 9090 }
  probes:
    readiness:
      http: { port: htp }
    liveness:
      tcp: { port: metrics }
`,
      ),
    }),
  );
  assert.equal(issue.code, 'probe.unknown-port');
  assert.equal(at(issue), 'manifests/api.yaml:13:21');
  assert.match(issue.message, /port "htp"/);
  assert.equal(issue.hint, 'did you mean "http"? Use one of: http, metrics, or a port number');
});

test('the same port and protocol declared by two processes', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': proc('a', '  ports:\n    - port: 8080\n    - { port: 53, protocol: udp }\n'),
    'b.yaml': proc('b', '  ports:\n    - { port: 8080, protocol: tcp }\n    - { port: 53, protocol: tcp }\n'),
  });
  const issue = only(issues);
  assert.equal(issue.code, 'port.conflict');
  assert.equal(at(issue), 'manifests/b.yaml:9:15');
  assert.equal(issue.message, 'port 8080/tcp is also declared by a at manifests/a.yaml:9:13');
});

test('a port name used twice in one process, and a port declared twice', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': proc('a', '  ports:\n    - { name: web, port: 80 }\n    - { name: web, port: 443 }\n    - { port: 80 }\n'),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['manifests/a.yaml:10:15 port.duplicate-name', 'manifests/a.yaml:11:15 port.duplicate'],
  );
});

test('a cycle through 10,000 processes is found without recursion', async (t) => {
  const count = 10_000;
  const texts = Array.from({ length: count }, (_, i) => proc(`p${i}`, deps(`p${(i + 1) % count}`)));
  const issue = only(await issuesOf(t, { 'all.yaml': texts.join('---\n') }));
  assert.equal(issue.code, 'dependency.cycle');
  assert.match(issue.message, /^dependency cycle: p0 -> p1 -> p2 -> .* -> \.\.\. \(9980 more\) \.\.\. -> .* -> p0$/);
});

test('an empty program name is refused where it stands; empty arguments are fine', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: api
spec:
  exec:
    command: ["", --save, ""]
  probes:
    readiness:
      exec:
        command: ["", x]
`,
    'b.yaml': proc('redis').replace('[sleep, "1000"]', '[redis-server, --save, ""]'),
  });
  assert.deepEqual(
    issues.map((i) => [i.code, at(i), i.message]),
    [
      ['command.empty-program', 'manifests/a.yaml:7:15', 'spec.exec.command[0] is empty: the first item is the program to run'],
      ['command.empty-program', 'manifests/a.yaml:11:19', 'spec.probes.readiness.exec.command[0] is empty: the first item is the program to run'],
    ],
  );
});

test('restartPolicy.strategy script and restartPolicy.script come together', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': proc('a', '  restartPolicy:\n    strategy: script\n'),
    'b.yaml': proc('b', '  restartPolicy:\n    script: { command: [nginx, -s, reload] }\n'),
  });
  assert.deepEqual(
    issues.map((i) => [i.code, at(i)]),
    [
      ['restart.script-missing', 'manifests/a.yaml:9:15'],
      ['restart.script-unused', 'manifests/b.yaml:9:5'],
    ],
  );
});

test('a hook or restart script with an empty program is refused where it stands', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': proc('a', '  hooks:\n    preStart: { command: ["", x] }\n  restartPolicy:\n    strategy: script\n    script: { command: [""] }\n'),
  });
  assert.deepEqual(
    issues.map((i) => i.message),
    ['spec.hooks.preStart.command[0] is empty: the first item is the program to run', 'spec.restartPolicy.script.command[0] is empty: the first item is the program to run'],
  );
});
