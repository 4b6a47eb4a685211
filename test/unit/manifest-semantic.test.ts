// Checks across the whole set: names, dependencies, cycles, conditions, ports, probe ports.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadDesiredSet } from '../../src/manifest/index.js';
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

const container = (name: string, docker: string, extra = ''): string =>
  `apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata:\n  name: ${name}\nspec:\n  driver: docker\n  docker:\n${docker}${extra}`;

test('each driver has its own spec block: docker without spec.docker, exec without spec.exec, and a block of the other driver', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': 'apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata:\n  name: a\nspec:\n  driver: docker\n  ports: []\n',
    'b.yaml': 'apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata:\n  name: b\nspec:\n  minReadySeconds: 0\n',
    'c.yaml': container('c', '    image: pm-test/busybox:1\n', '  exec:\n    command: [sleep, "1"]\n'),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}: ${issue.message}`),
    [
      'manifests/a.yaml:6:3 driver.spec-missing: driver docker needs spec.docker',
      'manifests/b.yaml:6:3 driver.spec-missing: driver exec needs spec.exec',
      'manifests/c.yaml:9:3 driver.spec-unused: spec.exec is for driver exec, but this process has driver docker',
    ],
  );
  assert.match(issues[0]?.hint ?? '', /pm never pulls/);
});

test('a container: not HEALTHCHECK and a readiness probe both, no pm.* labels; exec probes are fine (they run inside it)', async (t) => {
  const issues = await issuesOf(t, {
    'web.yaml': container(
      'web',
      '    image: pm-test/busybox:1\n    useHealthcheck: true\n    labels:\n      pm.owner: me\n      team: web\n',
      '  probes:\n    readiness:\n      tcp: { port: 8080 }\n    liveness:\n      exec: { command: [wget, -q, localhost:8080] }\n',
    ),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['manifests/web.yaml:11:7 docker.label-reserved', 'manifests/web.yaml:14:5 probe.readiness-twice'],
  );
});

test('a valid container manifest: defaults filled, paths resolved against the manifest folder', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pm-manifests-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    path.join(dir, 'api.yaml'),
    container('api', '    image: pm-test/busybox:1\n    command: [httpd, -f, -p, "8080"]\n    envFiles: [api.env]\n    publish:\n      - { containerPort: 8080, hostPort: 18080 }\n    volumes:\n      - { source: ./data, target: /data }\n'),
  );
  const set = await loadDesiredSet(['api.yaml'], { cwd: dir });
  const spec = set.processes.get('api')?.manifest.spec;
  assert.equal(spec?.exec, undefined);
  assert.deepEqual(spec?.docker, {
    image: 'pm-test/busybox:1',
    command: ['httpd', '-f', '-p', '8080'],
    env: {},
    envFiles: [path.join(dir, 'api.env')],
    publish: [{ containerPort: 8080, hostPort: 18080, hostIp: '127.0.0.1', protocol: 'tcp' }],
    volumes: [{ source: path.join(dir, 'data'), target: '/data', readOnly: false }],
    labels: {},
    useHealthcheck: false,
  });
});

test('a published host port is taken like a listened one: not by another process; a container may name its own; not with network host', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': container('a', '    image: pm-test/busybox:1\n    publish:\n      - { containerPort: 80, hostPort: 18080 }\n', '  ports:\n    - { name: http, port: 18080 }\n'),
    'b.yaml': container('b', '    image: pm-test/busybox:1\n    publish:\n      - { containerPort: 80, hostPort: 18080 }\n'),
    'c.yaml': container('c', '    image: pm-test/busybox:1\n    network: host\n    publish:\n      - { containerPort: 80, hostPort: 18081 }\n'),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}: ${issue.message}`),
    [
      'manifests/b.yaml:10:40 port.conflict: host port 18080/tcp is also declared by a at manifests/a.yaml:12:27',
      'manifests/c.yaml:10:5 docker.publish-host-network: with network: host a container shares the host\'s ports: publish does nothing',
    ],
  );
});

test('resources: exec takes every limit (whether this machine can enforce them is the driver\'s check at start); a container needs at least 6Mi', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': proc('a', '  resources:\n    openFiles: 1024\n    memory: 512Mi\n    pids: 10\n    cpus: 0.5\n    ioWeight: 100\n'),
    'b.yaml': container('b', '    image: pm-test/busybox:1\n', '  resources:\n    memory: 1Mi\n    cpus: 0.5\n'),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}: ${issue.message}`),
    ["manifests/b.yaml:10:13 resources.memory-too-small: resources.memory 1Mi is below the engine's minimum for a container, 6Mi"],
  );
});

const unitProcess = (name: string, systemd: string, extra = ''): string =>
  `apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata:\n  name: ${name}\nspec:\n  driver: systemd\n  systemd:\n${systemd}${extra}`;

test('systemd: an existing unit has a valid name that is not pm-…, one process per unit, and nothing pm would have to write into it', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': unitProcess('a', '    unit: nginx.service\n    env:\n      A: "1"\n    user: www\n', '  resources:\n    memory: 64Mi\n'),
    'b.yaml': unitProcess('b', '    unit: nginx.service\n'),
    'c.yaml': unitProcess('c', '    unit: pm-c.service\n'),
    'd.yaml': unitProcess('d', '    unit: "bad name.service"\n'),
    'e.yaml': unitProcess('e', '    command: [/bin/sleep, "10"]\n', '  resources:\n    memory: 64Mi\n    cpus: 0.5\n    ioWeight: 100\n    openFiles: 1024\n    pids: 10\n'),
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}: ${issue.message}`),
    [
      'manifests/a.yaml:9:5 systemd.unit-not-owned: spec.systemd.env would have to be written into nginx.service, which pm does not own',
      'manifests/a.yaml:11:5 systemd.unit-not-owned: spec.systemd.user would have to be written into nginx.service, which pm does not own',
      'manifests/a.yaml:13:5 resources.unsupported: pm does not write nginx.service, so it cannot put resources.memory in it',
      'manifests/b.yaml:8:11 systemd.unit-twice: nginx.service is also managed by a at manifests/a.yaml:8:11',
      'manifests/c.yaml:8:11 systemd.unit-reserved: pm-c.service: units named pm-… are the ones pm writes for spec.systemd.command',
      'manifests/d.yaml:8:11 systemd.unit-name: invalid unit name "bad name.service": a space is not allowed (only letters, digits and : _ . \\ -, and one @ for a template instance)',
    ],
  );
});

test('systemd: exactly one of unit and command, and no other driver\'s block', async (t) => {
  const issues = await issuesOf(t, {
    'a.yaml': unitProcess('a', '    unit: a.service\n    command: [/bin/true]\n'),
    'b.yaml': unitProcess('b', '    cwd: /srv\n'),
    'c.yaml': unitProcess('c', '    command: [/bin/true]\n', '  exec:\n    command: [/bin/true]\n'),
    'd.yaml': 'apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata:\n  name: d\nspec:\n  driver: systemd\n',
  });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['manifests/a.yaml:8:5 schema.oneOf', 'manifests/b.yaml:8:5 schema.oneOf', 'manifests/c.yaml:9:3 driver.spec-unused', 'manifests/d.yaml:6:3 driver.spec-missing'],
  );
  assert.match(issues.at(-1)?.hint ?? '', /spec\.systemd\.unit .* or spec\.systemd\.command/);
  assert.deepEqual(
    issues.slice(0, 2).map((i) => i.message),
    ['spec.systemd has both unit and command: it names an existing unit or describes one pm writes, not both', 'spec.systemd has neither unit nor command'],
  );
});
