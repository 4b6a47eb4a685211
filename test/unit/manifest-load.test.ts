// Loading: files, directories, stdin, multi-document files, YAML errors, normalization, defaults.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { at, loadIssues as issuesOf, proc } from '../support/manifest-issues.js';
import { UsageError, type ManifestIssue } from '../../src/errors.js';
import { loadDesiredSet } from '../../src/manifest/index.js';

/** A fresh temporary directory holding `files` (relative path → text), removed after the test. */
async function tempDir(t: TestContext, files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pm-load-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), text);
  }
  return dir;
}

test('a multi-document file yields every non-empty document, with its start line', async (t) => {
  const dir = await tempDir(t, {
    'all.yaml': `# leading comment\n---\n${proc('b')}---\n# only a comment\n---\n${proc('a')}---\n`,
  });
  const set = await loadDesiredSet(['all.yaml'], { cwd: dir });
  assert.deepEqual([...set.processes.keys()], ['a', 'b']);
  assert.deepEqual(set.processes.get('b')?.source, { file: path.join(dir, 'all.yaml'), line: 3 });
  assert.deepEqual(set.processes.get('a')?.source, { file: path.join(dir, 'all.yaml'), line: 13 });
  assert.deepEqual(set.roots, [path.join(dir, 'all.yaml')]);
});

test('a directory is read recursively: .yaml and .yml, sorted by path; other and hidden files ignored', async (t) => {
  const dir = await tempDir(t, {
    'manifests/b.yaml': proc('from-b'),
    'manifests/a.yml': proc('from-a'),
    'manifests/nested/deeper/c.yaml': proc('from-c'),
    'manifests/README.md': '# not a manifest',
    'manifests/notes.txt': 'apiVersion: nope',
    'manifests/data.json': '{}',
    'manifests/.hidden.yaml': 'not: [valid',
    'manifests/.git/config.yaml': 'not: [valid',
  });
  const set = await loadDesiredSet(['manifests/'], { cwd: dir });
  assert.deepEqual([...set.processes.keys()], ['from-a', 'from-b', 'from-c']);
  assert.equal(set.processes.get('from-c')?.source.file, path.join(dir, 'manifests/nested/deeper/c.yaml'));
  assert.deepEqual(set.roots, [path.join(dir, 'manifests')]);
  // Issues follow the sorted file order: a.yml, b.yaml, nested/deeper/c.yaml.
  const broken = await tempDir(t, {
    'm/b.yaml': 'x: [',
    'm/a.yml': 'x: [',
    'm/nested/c.yaml': 'x: [',
  });
  const issues = await issuesOf(['m'], { cwd: broken });
  assert.deepEqual(
    issues.map((issue) => issue.file),
    ['m/a.yml', 'm/b.yaml', 'm/nested/c.yaml'],
  );
});

test('stdin is read for -', async (t) => {
  const dir = await tempDir(t);
  const stdin = Readable.from([`${proc('one')}---\n`, proc('two', '    cwd: work\n')]);
  const set = await loadDesiredSet(['-'], { cwd: dir, stdin });
  assert.deepEqual([...set.processes.keys()], ['one', 'two']);
  assert.deepEqual(set.processes.get('two')?.source, { file: '-', line: 9 });
  assert.equal(set.processes.get('one')?.manifest.spec.exec?.cwd, dir);
  assert.equal(set.processes.get('two')?.manifest.spec.exec?.cwd, path.join(dir, 'work'));
  assert.deepEqual(set.roots, ['-']);
});

test('stdin issues are reported against -', async (t) => {
  const dir = await tempDir(t);
  const stdin = Readable.from(['apiVersion: pm.dev/v1alpha1\nkind: Process\nmetadata: {name: x}\nspec: {}\n']);
  const issues = await issuesOf(['-'], { cwd: dir, stdin });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['-:4:7 driver.spec-missing'],
  );
});

test('a valid set fills in defaults and resolves paths against the manifest folder', async (t) => {
  const dir = await tempDir(t, {
    'manifests/web/api.yaml': proc(
      'api',
      `    cwd: ../srv
    envFiles: [.env, /etc/pm/common.env]
    env:
      PORT: 8080
      HOME_DIR: { fromEnv: HOME }
      TOKEN: { fromFile: secrets/token }
    logs:
      stdout: logs/out.log
      stderr: /var/log/api.err
  ports:
    - { name: http, port: 8080 }
  probes:
    readiness:
      http: { port: http }
  dependsOn:
    - name: db
`,
    ),
    'manifests/db.yaml': proc('db'),
  });
  const set = await loadDesiredSet(['manifests'], { cwd: dir });
  const web = path.join(dir, 'manifests/web');
  const api = set.processes.get('api');
  assert.ok(api);
  assert.equal(api.name, 'api');
  const { spec, metadata } = api.manifest;
  assert.deepEqual(metadata, { name: 'api', labels: {} });
  assert.equal(spec.driver, 'exec');
  assert.equal(spec.exec?.cwd, path.join(dir, 'manifests/srv'));
  assert.deepEqual(spec.exec?.envFiles, [path.join(web, '.env'), '/etc/pm/common.env']);
  assert.deepEqual(spec.exec?.env, { PORT: 8080, HOME_DIR: { fromEnv: 'HOME' }, TOKEN: { fromFile: path.join(web, 'secrets/token') } });
  assert.deepEqual(spec.exec?.logs, { stdout: path.join(web, 'logs/out.log'), stderr: '/var/log/api.err' });
  assert.deepEqual(spec.ports, [{ name: 'http', port: 8080, protocol: 'tcp' }]);
  assert.deepEqual(spec.dependsOn, [{ name: 'db', condition: 'ready', restart: false }]);
  assert.deepEqual(spec.probes.readiness, {
    http: { port: 'http', host: '127.0.0.1', path: '/', scheme: 'http', headers: {} },
    initialDelaySeconds: 0,
    periodSeconds: 10,
    timeoutSeconds: 1,
    successThreshold: 1,
    failureThreshold: 3,
  });
  assert.deepEqual(spec.restartPolicy, {
    policy: 'always',
    strategy: 'restart',
    backoff: { initialSeconds: 1, factor: 2, maxSeconds: 300, jitter: 0.2, resetAfterSeconds: 600 },
    circuitBreaker: { enabled: true, maxFailures: 5, windowSeconds: 300, cooldownSeconds: 300 },
  });
  assert.deepEqual(spec.hooks, {});
  assert.deepEqual(spec.stop, { signal: 'SIGTERM', gracePeriodSeconds: 10 });
  assert.equal(set.processes.get('db')?.manifest.spec.exec?.cwd, path.join(dir, 'manifests'));
});

test('a manifest that needs the full YAML parser (anchors) loads the same way', async (t) => {
  const dir = await tempDir(t, {
    'a.yaml': `${proc('a')}---\n${proc('b', '    env: &env\n      MODE: prod\n  probes:\n    liveness:\n      exec: { command: [check] }\n      failureThreshold: &n 7\n      successThreshold: *n\n')}`,
  });
  const set = await loadDesiredSet(['a.yaml'], { cwd: dir });
  assert.deepEqual(set.processes.get('b')?.manifest.spec.exec?.env, { MODE: 'prod' });
  assert.equal(set.processes.get('b')?.manifest.spec.probes.liveness?.successThreshold, 7);
  assert.equal(set.processes.get('b')?.source.line, 9);
});

test('processes iterate in name order whatever the file order', async (t) => {
  const dir = await tempDir(t, { 'z.yaml': proc('alpha'), 'a.yaml': proc('zulu'), 'm.yaml': proc('mike') });
  const set = await loadDesiredSet(['.'], { cwd: dir });
  assert.deepEqual([...set.processes.keys()], ['alpha', 'mike', 'zulu']);
});

test('YAML syntax errors are reported at their line:col; other files are still checked', async (t) => {
  const dir = await tempDir(t, {
    'm/a.yaml': `${proc('a')}  ports: [8080\n`,
    'm/b.yaml': proc('b', '  restartPolicy: { policy: sometimes }\n'),
  });
  const issues = await issuesOf(['m'], { cwd: dir });
  assert.equal(issues.length, 2, JSON.stringify(issues, null, 2));
  const [syntax, schema] = issues as [ManifestIssue, ManifestIssue];
  assert.equal(syntax.code, 'yaml.syntax');
  assert.equal(at(syntax), 'm/a.yaml:9:1');
  assert.match(syntax.message, /^YAML syntax error: /);
  assert.equal(schema.code, 'schema.enum');
  assert.equal(at(schema), 'm/b.yaml:8:28');
});

test('a duplicate key is reported at the second key', async (t) => {
  const dir = await tempDir(t, { 'a.yaml': `${proc('a')}  stop: {}\n  stop: {}\n` });
  const issues = await issuesOf(['a.yaml'], { cwd: dir });
  assert.equal(issues.length, 1, JSON.stringify(issues, null, 2));
  assert.equal(issues[0]?.code, 'yaml.duplicate-key');
  assert.equal(at(issues[0]), 'a.yaml:9:3');
  assert.match(issues[0]?.message ?? '', /duplicate key `stop`/);
});

test('an empty directory is an error', async (t) => {
  const dir = await tempDir(t, { 'empty/README.md': 'nothing here' });
  const issues = await issuesOf(['empty'], { cwd: dir });
  assert.equal(issues.length, 1);
  assert.equal(issues[0]?.code, 'source.empty');
  assert.equal(issues[0]?.message, 'no manifests found in empty');
  assert.equal(at(issues[0]), 'empty:1:1');
});

test('a file of comments and empty documents is an error', async (t) => {
  const dir = await tempDir(t, { 'c.yaml': '# nothing yet\n---\n---\n' });
  const issues = await issuesOf(['c.yaml'], { cwd: dir });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code} ${issue.message}`),
    ['c.yaml:1:1 source.empty no manifests found in c.yaml'],
  );
});

test('a missing path is an issue, reported with the other issues', async (t) => {
  const dir = await tempDir(t, { 'ok.yaml': proc('ok', '  stop: { signal: SIGFOO }\n') });
  const issues = await issuesOf(['missing.yaml', 'ok.yaml'], { cwd: dir });
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['missing.yaml:1:1 source.not-found', 'ok.yaml:8:19 schema.enum'],
  );
});

test('file names in issues: relative to cwd when under it, as given otherwise', async (t) => {
  const dir = await tempDir(t, { 'project/m/a.yaml': 'x: [' });
  const other = await tempDir(t);
  const absolute = await issuesOf([path.join(dir, 'project/m')], { cwd: path.join(dir, 'project') });
  assert.equal(absolute[0]?.file, 'm/a.yaml');
  const outside = await issuesOf([path.join(dir, 'project/m')], { cwd: other });
  assert.equal(outside[0]?.file, path.join(dir, 'project/m/a.yaml'));
  const relativeOutside = await issuesOf(['../project/m'], { cwd: path.join(dir, 'elsewhere') });
  assert.equal(relativeOutside[0]?.file, '../project/m/a.yaml');
  const parentOfCwd = await issuesOf(['..'], { cwd: path.join(dir, 'project/m') });
  assert.equal(parentOfCwd[0]?.file, 'a.yaml');
});

test('a file reached twice is loaded once', async (t) => {
  const dir = await tempDir(t, { 'm/a.yaml': proc('a') });
  const set = await loadDesiredSet(['m', 'm/a.yaml', './m'], { cwd: dir });
  assert.deepEqual([...set.processes.keys()], ['a']);
  assert.deepEqual(set.roots, [path.join(dir, 'm'), path.join(dir, 'm/a.yaml')]);
});

test('no paths at all is a usage error', async () => {
  await assert.rejects(loadDesiredSet([]), UsageError);
});

test('10,000 processes in one file and in many files load', async (t) => {
  const dir = await tempDir(t);
  const count = 10_000;
  const manifest = (i: number): string =>
    proc(
      `p${i}`,
      `    env: { PORT: "${10_000 + i}" }
  ports:
    - { name: http, port: ${10_000 + i} }
  probes:
    readiness:
      http: { port: http, path: /healthz }
${i === 0 ? '' : `  dependsOn:\n    - name: p${i - 1}\n      condition: started\n`}`,
    );
  const texts = Array.from({ length: count }, (_, i) => manifest(i));
  await writeFile(path.join(dir, 'all.yaml'), texts.join('---\n'));
  const one = await loadDesiredSet(['all.yaml'], { cwd: dir });
  assert.equal(one.processes.size, count);
  assert.deepEqual(one.processes.get('p9999')?.manifest.spec.dependsOn, [{ name: 'p9998', condition: 'started', restart: false }]);

  await mkdir(path.join(dir, 'many'));
  for (let start = 0; start < count; start += 500) {
    const batch = texts.slice(start, start + 500);
    await Promise.all(batch.map((text, i) => writeFile(path.join(dir, 'many', `p${String(start + i).padStart(5, '0')}.yaml`), text)));
  }
  const many = await loadDesiredSet(['many'], { cwd: dir });
  assert.equal(many.processes.size, count);
  assert.deepEqual([...many.processes.keys()], [...one.processes.keys()]);
});
