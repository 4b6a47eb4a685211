// Daemon config: precedence defaults < file < env < flags, sources, coercion, file errors, reload.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { ConfigError, loadConfig, loadEnvFile, reloadConfig, type LoadConfigOptions } from '../../src/config/index.js';
import { tempDir } from '../support/tmp.js';

/** A temp dir acting as HOME, cwd and XDG dirs, so the real user's config never leaks in. */
async function sandbox(t: TestContext): Promise<{ dir: string; opts: (o?: Partial<LoadConfigOptions>) => LoadConfigOptions }> {
  const dir = await tempDir(t, 'pm-config-');
  const baseEnv = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'xdg-config'), XDG_STATE_HOME: join(dir, 'xdg-state') };
  return { dir, opts: (o = {}) => ({ env: { ...baseEnv, ...o.env }, flags: o.flags ?? {}, cwd: dir, ...(o.file === undefined ? {} : { file: o.file }) }) };
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.exitCode, 2);
    return error;
  }
  return assert.fail('expected a ConfigError');
}

test('one key through all four layers: each higher layer wins and is reported', async (t) => {
  const { dir, opts } = await sandbox(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'logLevel: warn\nparallel: 2\n');

  const defaults = await loadConfig(opts());
  assert.equal(defaults.config.parallel, 32);
  assert.deepEqual(defaults.sources.parallel, { source: 'default', detail: 'schema' });
  assert.equal(defaults.file, undefined);

  const fromFile = await loadConfig(opts({ file }));
  assert.equal(fromFile.config.parallel, 2);
  assert.deepEqual(fromFile.sources.parallel, { source: 'file', detail: `${file}:2` });

  const fromEnv = await loadConfig(opts({ file, env: { PM_PARALLEL: '4' } }));
  assert.equal(fromEnv.config.parallel, 4);
  assert.deepEqual(fromEnv.sources.parallel, { source: 'env', detail: 'PM_PARALLEL' });

  const fromFlag = await loadConfig(opts({ file, env: { PM_PARALLEL: '4' }, flags: { parallel: '16' } }));
  assert.equal(fromFlag.config.parallel, 16);
  assert.deepEqual(fromFlag.sources.parallel, { source: 'flag', detail: '--parallel' });
  // Other keys keep their own layer.
  assert.equal(fromFlag.config.logLevel, 'warn');
  assert.deepEqual(fromFlag.sources.logLevel, { source: 'file', detail: `${file}:1` });
  assert.equal(fromFlag.config.listen, '127.0.0.1:7070');
  assert.deepEqual(fromFlag.sources.listen, { source: 'default', detail: 'schema' });
});

test('stateDir defaults from XDG_STATE_HOME, else HOME; relative paths resolve per layer', async (t) => {
  const { dir, opts } = await sandbox(t);
  const xdg = await loadConfig(opts());
  assert.equal(xdg.config.stateDir, join(dir, 'xdg-state', 'pm'));
  assert.deepEqual(xdg.sources.stateDir, { source: 'default', detail: '$XDG_STATE_HOME/pm' });
  const home = await loadConfig({ ...opts(), env: { HOME: dir } });
  assert.equal(home.config.stateDir, join(dir, '.local', 'state', 'pm'));

  await mkdir(join(dir, 'etc'));
  await writeFile(join(dir, 'etc', 'config.yaml'), 'stateDir: state\n');
  const fromFile = await loadConfig(opts({ file: 'etc/config.yaml' }));
  assert.equal(fromFile.config.stateDir, join(dir, 'etc', 'state'), 'relative to the file');
  const fromFlag = await loadConfig(opts({ flags: { 'state-dir': 'here' } }));
  assert.equal(fromFlag.config.stateDir, join(dir, 'here'), 'relative to cwd');
});

test('the default file is read when present, PM_CONFIG names another, absence is fine', async (t) => {
  const { dir, opts } = await sandbox(t);
  assert.equal((await loadConfig(opts())).file, undefined);
  const defaultFile = join(dir, 'xdg-config', 'pm', 'config.yaml');
  await mkdir(join(dir, 'xdg-config', 'pm'), { recursive: true });
  await writeFile(defaultFile, 'shutdown: stop\n');
  const loaded = await loadConfig(opts());
  assert.equal(loaded.file, defaultFile);
  assert.equal(loaded.config.shutdown, 'stop');

  await writeFile(join(dir, 'other.yaml'), 'shutdown: leave-running\n');
  assert.equal((await loadConfig(opts({ env: { PM_CONFIG: 'other.yaml' } }))).config.shutdown, 'leave-running');
});

test('a missing explicit file is an error (--config and PM_CONFIG)', async (t) => {
  const { opts } = await sandbox(t);
  const viaFlag = await configError(loadConfig(opts({ file: 'nope.yaml' })));
  assert.match(viaFlag.message, /--config nope\.yaml: config file .*nope\.yaml does not exist/);
  const viaEnv = await configError(loadConfig(opts({ env: { PM_CONFIG: 'nope.yaml' } })));
  assert.match(viaEnv.message, /PM_CONFIG nope\.yaml/);
});

test('env and flag values are coerced by the schema type; failures name the variable or flag', async (t) => {
  const { opts } = await sandbox(t);
  const ok = await loadConfig(opts({ env: { PM_RESYNC_SECONDS: '2.5', PM_WATCH_DEBOUNCE_MS: '0', PM_LOG_FORMAT: 'json' } }));
  assert.equal(ok.config.resyncSeconds, 2.5);
  assert.equal(ok.config.watchDebounceMs, 0);
  assert.equal(ok.config.logFormat, 'json');

  const error = await configError(
    loadConfig(opts({ env: { PM_PARALLEL: 'abc', PM_RESYNC_SECONDS: 'soon', PM_LOG_LEVEL: 'loud' }, flags: { 'watch-debounce-ms': '1.5' } })),
  );
  assert.deepEqual(
    error.issues.map((i) => i.where),
    ['env PM_PARALLEL', 'env PM_RESYNC_SECONDS', 'flag --watch-debounce-ms', 'env PM_LOG_LEVEL'],
  );
  assert.match(error.message, /env PM_PARALLEL: parallel: "abc" is not a whole number/);
  assert.match(error.message, /env PM_LOG_LEVEL: logLevel: "loud" is not one of trace, debug, info, warn, error/);
});

test('schema limits are checked after coercion and located at their source', async (t) => {
  const { opts } = await sandbox(t);
  const error = await configError(loadConfig(opts({ env: { PM_PARALLEL: '0' }, flags: { listen: 'nohost' } })));
  assert.deepEqual(error.issues.map((i) => i.where).sort(), ['env PM_PARALLEL', 'flag --listen']);
  assert.match(error.message, /parallel must be >= 1 \(got 0\)/);
  assert.match(error.message, /listen must be host:port/);
});

test('file problems carry file:line:col: unknown keys, wrong types, bad YAML', async (t) => {
  const { dir, opts } = await sandbox(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'parallel: 4\nlog_level: debug\nresyncSeconds: fast\n');
  const error = await configError(loadConfig(opts({ file })));
  assert.deepEqual(error.issues, [
    { where: `file ${file}:2:1`, message: 'unknown key "log_level" (did you mean "logLevel"?)' },
    { where: `file ${file}:3:16`, message: 'resyncSeconds must be number (got "fast")' },
  ]);

  await writeFile(file, 'parallel: [1\n');
  const yamlError = await configError(loadConfig(opts({ file })));
  assert.match(yamlError.issues[0]?.where ?? '', new RegExp(`^file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+$`));

  await writeFile(file, '- a\n- b\n');
  assert.match((await configError(loadConfig(opts({ file })))).message, /must be a mapping/);
});

test('a secret is never echoed in error messages', async (t) => {
  const { dir, opts } = await sandbox(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'apiToken: 12345\n');
  const error = await configError(loadConfig(opts({ file })));
  assert.match(error.message, /apiToken must be string/);
  assert.doesNotMatch(error.message, /12345/);
});

test('an invalid new config is refused and logged; the old one stays in force', async (t) => {
  const { dir, opts } = await sandbox(t);
  const file = join(dir, 'config.yaml');
  await writeFile(file, 'parallel: 3\n');
  const current = await loadConfig(opts({ file }));
  await writeFile(file, 'parallel: 5\nlogLevel: chatty\n');
  const logged: string[] = [];
  const result = await reloadConfig(current, opts({ file }), (message, error) => logged.push(`${message}: ${error.issues.length}`));
  assert.equal(result.applied, false);
  assert.equal(result.loaded, current);
  assert.equal(result.loaded.config.parallel, 3, 'nothing half-applied');
  assert.deepEqual(logged, ['new configuration refused; the previous one stays in force: 1']);

  await writeFile(file, 'parallel: 5\n');
  const next = await reloadConfig(current, opts({ file }), () => assert.fail('should not log'));
  assert.equal(next.applied, true);
  assert.equal(next.loaded.config.parallel, 5);
});

test('--env-file adds variables but never overrides ones already set', async (t) => {
  const { dir, opts } = await sandbox(t);
  const envFile = join(dir, '.env');
  await writeFile(envFile, 'PM_PARALLEL=6\nPM_LOG_LEVEL=debug\n# comment\nPM_LISTEN="0.0.0.0:9000"\n');
  const base = { PM_LOG_LEVEL: 'error' };
  const env = await loadEnvFile(envFile, base);
  assert.deepEqual(base, { PM_LOG_LEVEL: 'error' }, 'the input env is not mutated');
  const loaded = await loadConfig(opts({ env }));
  assert.equal(loaded.config.parallel, 6);
  assert.equal(loaded.config.logLevel, 'error');
  assert.equal(loaded.config.listen, '0.0.0.0:9000');
  await configError(loadEnvFile(join(dir, 'missing.env'), {}));
});
