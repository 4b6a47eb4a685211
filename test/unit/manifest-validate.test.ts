// Schema errors: every kind is reported at the right file:line:col, with a useful hint, and
// ajv's noise (anyOf/oneOf branches, duplicates) is collapsed.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { at, issuesOfFiles, only } from '../support/manifest-issues.js';
import type { ManifestIssue } from '../../src/errors.js';

/** The issues of loading `text` as manifests/api.yaml. */
const issuesOf = (t: TestContext, text: string): Promise<ManifestIssue[]> => issuesOfFiles(t, { 'api.yaml': text });

const HEAD = `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: api
`;

test('required: located at the object that misses the field', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    cwd: /srv
`,
    ),
  );
  assert.equal(issue.code, 'schema.required');
  assert.equal(at(issue), 'manifests/api.yaml:7:5');
  assert.match(issue.message, /spec\.exec\.command/);
  assert.equal(issue.hint, 'add `spec.exec.command`');
});

test('required: a missing apiVersion hints the value to write', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `kind: Process
metadata:
  name: api
spec:
  exec:
    command: [x]
`,
    ),
  );
  assert.equal(issue.code, 'schema.required');
  assert.equal(at(issue), 'manifests/api.yaml:1:1');
  assert.equal(issue.hint, 'add `apiVersion: pm.dev/v1alpha1`');
});

test('additionalProperties: located at the key, with a did-you-mean', async (t) => {
  const issues = await issuesOf(
    t,
    `${HEAD}spec:
  exec:
    commnd: [node, server.js]
`,
  );
  assert.equal(issues.length, 2);
  const [required, unknown] = issues as [ManifestIssue, ManifestIssue];
  assert.equal(required.code, 'schema.required');
  assert.equal(at(required), 'manifests/api.yaml:7:5');
  assert.equal(unknown.code, 'schema.additionalProperties');
  assert.equal(at(unknown), 'manifests/api.yaml:7:5');
  assert.equal(unknown.message, 'unknown field spec.exec.commnd');
  assert.equal(unknown.hint, 'remove `commnd` — did you mean `command`?');
});

test('additionalProperties without a close match lists the allowed fields', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}  owner: me
spec:
  exec:
    command: [x]
`,
    ),
  );
  assert.equal(at(issue), 'manifests/api.yaml:5:3');
  assert.equal(issue.hint, 'remove `owner`; allowed here: name, labels');
});

test('enum: lists the allowed values', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: [x]
  restartPolicy:
    policy: sometimes
`,
    ),
  );
  assert.equal(issue.code, 'schema.enum');
  assert.equal(at(issue), 'manifests/api.yaml:9:13');
  assert.match(issue.message, /^spec\.restartPolicy\.policy is "sometimes"/);
  assert.equal(issue.hint, 'use one of: always, on-failure, never');
});

test('const: tells what to set', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `apiVersion: v1
kind: Process
metadata:
  name: api
spec:
  exec:
    command: [x]
`,
    ),
  );
  assert.equal(issue.code, 'schema.const');
  assert.equal(at(issue), 'manifests/api.yaml:1:13');
  assert.equal(issue.message, 'apiVersion must be pm.dev/v1alpha1, got "v1"');
  assert.equal(issue.hint, 'set apiVersion: pm.dev/v1alpha1');
});

test('type: names the element and what was found', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: [8080]
`,
    ),
  );
  assert.equal(issue.code, 'schema.type');
  assert.equal(at(issue), 'manifests/api.yaml:7:15');
  assert.equal(issue.message, 'spec.exec.command[0] must be a string');
  assert.match(issue.hint, /^expected a string, got a number/);
});

test('type: a command written as a string is shown as a list', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: node server.js --port 80
`,
    ),
  );
  assert.equal(at(issue), 'manifests/api.yaml:7:14');
  assert.equal(issue.message, 'spec.exec.command must be a list');
  assert.equal(issue.hint, 'expected a list, got a string: write it as a list, as in [node, server.js, --port, 80]');
});

test('type: an empty value is located at its key', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
`,
    ),
  );
  assert.equal(issue.code, 'schema.type');
  assert.equal(at(issue), 'manifests/api.yaml:6:3');
  assert.match(issue.hint, /expected an object .*, got an empty value/);
});

test('pattern on a name explains DNS-1123 and suggests a valid name', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `apiVersion: pm.dev/v1alpha1
kind: Process
metadata:
  name: My_API
spec:
  exec:
    command: [x]
`,
    ),
  );
  assert.equal(issue.code, 'schema.pattern');
  assert.equal(at(issue), 'manifests/api.yaml:4:9');
  assert.equal(issue.message, 'metadata.name "My_API" is not a valid name');
  assert.match(issue.hint, /DNS-1123 label/);
  assert.match(issue.hint, /"my-api"/);
});

test('maximum on a port: located at the value, hint states the range', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: [x]
  ports:
    - name: http
      port: 70000
`,
    ),
  );
  assert.equal(issue.code, 'schema.maximum');
  assert.equal(at(issue), 'manifests/api.yaml:10:13');
  assert.equal(issue.message, 'spec.ports[0].port is 70000, out of range');
  assert.equal(issue.hint, 'use an integer from 1 to 65535');
});

test('exclusiveMinimum on a probe period', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: [x]
  probes:
    readiness:
      tcp: { port: 8080 }
      periodSeconds: 0
`,
    ),
  );
  assert.equal(issue.code, 'schema.exclusiveMinimum');
  assert.equal(at(issue), 'manifests/api.yaml:11:22');
  assert.match(issue.message, /^spec\.probes\.readiness\.periodSeconds is 0/);
  assert.equal(issue.hint, 'use a number greater than 0');
});

test('oneOf on a probe: one issue when no check is given, one when two are', async (t) => {
  const issues = await issuesOf(
    t,
    `${HEAD}spec:
  exec:
    command: [x]
  probes:
    readiness:
      periodSeconds: 5
    liveness:
      exec: { command: [check] }
      tcp: { port: 8080 }
`,
  );
  assert.equal(issues.length, 2, JSON.stringify(issues, null, 2));
  const [none, two] = issues as [ManifestIssue, ManifestIssue];
  assert.equal(none.code, 'schema.oneOf');
  assert.equal(at(none), 'manifests/api.yaml:10:7');
  assert.equal(none.message, 'spec.probes.readiness has no check: it needs exec, http or tcp');
  assert.equal(none.hint, 'a probe needs exactly one of exec, http, tcp');
  assert.equal(at(two), 'manifests/api.yaml:12:7');
  assert.equal(two.message, 'spec.probes.liveness has more than one check: exec and tcp');
});

test('anyOf on an env value and on a probe port: one issue each, no branch noise', async (t) => {
  const issues = await issuesOf(
    t,
    `${HEAD}spec:
  exec:
    command: [x]
    env:
      TOKEN: { fromEnv: 1BAD }
  probes:
    readiness:
      http: { port: Not_A_Name }
`,
  );
  assert.equal(issues.length, 2, JSON.stringify(issues, null, 2));
  const [env, port] = issues as [ManifestIssue, ManifestIssue];
  assert.equal(env.code, 'schema.anyOf');
  assert.equal(at(env), 'manifests/api.yaml:9:14');
  assert.match(env.hint, /fromEnv takes a variable name/);
  assert.equal(port.code, 'schema.anyOf');
  assert.equal(at(port), 'manifests/api.yaml:12:21');
  assert.match(port.hint, /1 to 65535, or one of the names in spec\.ports/);
});

test('propertyNames: an invalid env name is located at the key', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: [x]
    env:
      1PORT: "80"
`,
    ),
  );
  assert.equal(issue.code, 'schema.propertyNames');
  assert.equal(at(issue), 'manifests/api.yaml:9:7');
  assert.match(issue.message, /invalid environment variable name "1PORT"/);
});

test('minItems: an empty command', async (t) => {
  const issue = only(
    await issuesOf(
      t,
      `${HEAD}spec:
  exec:
    command: []
`,
    ),
  );
  assert.equal(issue.code, 'schema.minItems');
  assert.equal(at(issue), 'manifests/api.yaml:7:14');
  assert.match(issue.hint, /program and its arguments/);
});

test('several errors in one file are all reported, in line order', async (t) => {
  const issues = await issuesOf(
    t,
    `apiVersion: pm.dev/v1alpha1
kind: Proces
metadata:
  name: api
spec:
  exec:
    command: [node, 42]
    envFile: [.env]
  ports:
    - port: 0
  restartPolicy:
    policy: sometimes
  stop:
    gracePeriodSeconds: -1
`,
  );
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    [
      'manifests/api.yaml:2:7 schema.const',
      'manifests/api.yaml:7:21 schema.type',
      'manifests/api.yaml:8:5 schema.additionalProperties',
      'manifests/api.yaml:10:13 schema.minimum',
      'manifests/api.yaml:12:13 schema.enum',
      'manifests/api.yaml:14:25 schema.minimum',
    ],
  );
  assert.equal(issues[2]?.hint, 'remove `envFile` — did you mean `envFiles`?');
});

test('the document root must be a mapping', async (t) => {
  const issue = only(await issuesOf(t, '- a\n- b\n'));
  assert.equal(issue.code, 'schema.type');
  assert.equal(at(issue), 'manifests/api.yaml:1:1');
  assert.equal(issue.message, 'the document must be an object (a mapping of fields)');
});

test('errors are located the same in files that need the full YAML parser', async (t) => {
  // An anchor and an alias are outside the fast reader's subset.
  const issues = await issuesOf(
    t,
    `${HEAD}spec:
  exec:
    command: &cmd [x]
    env:
      A: *cmd
  ports:
    - port: 70000
`,
  );
  assert.deepEqual(
    issues.map((issue) => `${at(issue)} ${issue.code}`),
    ['manifests/api.yaml:9:10 schema.anyOf', 'manifests/api.yaml:11:13 schema.maximum'],
  );
});
