// The daemon's logger, written to an in-memory stream: JSON shape, levels, child loggers, pretty
// output, and that secrets never reach the output, by field name or by value.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger, processLogger, REDACTED, SecretRedactor, type LoggerOptions } from '../../src/log/logger.js';

/** A destination that keeps what is written; writes land synchronously, so no waiting is needed. */
function collector(options: { tty?: boolean } = {}): { stream: Writable; text: () => string; records: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  });
  if (options.tty) Object.assign(stream, { isTTY: true });
  const text = (): string => chunks.join('');
  const records = (): Record<string, unknown>[] =>
    text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, text, records };
}

async function jsonLogger(options: Partial<LoggerOptions> = {}) {
  const out = collector();
  const logger = await createLogger({ level: 'info', format: 'json', destination: out.stream, ...options });
  return { logger, ...out };
}

test('JSON lines carry level, time and msg; a process logger adds the process name', async () => {
  const { logger, records } = await jsonLogger();
  logger.info('daemon started');
  processLogger(logger, 'web').warn({ code: 3 }, 'exited');

  const [daemon, web] = records();
  assert.equal(records().length, 2);
  assert.equal(daemon?.level, 30);
  assert.equal(typeof daemon?.time, 'number');
  assert.equal(daemon?.msg, 'daemon started');
  assert.equal(daemon?.process, undefined);
  assert.deepEqual({ level: web?.level, msg: web?.msg, process: web?.process, code: web?.code }, { level: 40, msg: 'exited', process: 'web', code: 3 });
});

test('lines below the level are not written', async () => {
  const { logger, records } = await jsonLogger({ level: 'warn' });
  logger.trace('t');
  logger.debug('d');
  logger.info('i');
  logger.warn('w');
  logger.error('e');
  assert.deepEqual(
    records().map((r) => r.msg),
    ['w', 'e'],
  );

  const verbose = await jsonLogger({ level: 'trace' });
  verbose.logger.trace('t');
  assert.deepEqual(
    verbose.records().map((r) => r.level),
    [10],
  );
});

test('secret values are replaced in the message and in string fields', async () => {
  const secret = 'tok-9f8e7d6c5b4a';
  const { logger, text, records } = await jsonLogger({ secrets: [secret] });
  logger.info({ url: `https://api.example/v1?token=${secret}`, nested: { header: `Bearer ${secret}`, deeper: { value: secret } } }, `using ${secret}`);
  logger.info('interpolated %s and %o', secret, { inner: secret });
  processLogger(logger, 'api').error(new Error(`request failed for ${secret}`));
  logger.child({ note: `bound ${secret}` }).info('from a child');

  assert.equal(text().includes(secret), false, text());
  const [fields, interpolated, error, child] = records();
  assert.equal(fields?.msg, `using ${REDACTED}`);
  assert.equal(fields?.url, `https://api.example/v1?token=${REDACTED}`);
  assert.deepEqual(fields?.nested, { header: `Bearer ${REDACTED}`, deeper: { value: REDACTED } });
  assert.match(String(interpolated?.msg), /^interpolated \[redacted\] and /);
  assert.equal(error?.msg, `request failed for ${REDACTED}`);
  assert.equal((error?.err as { message?: string }).message, `request failed for ${REDACTED}`);
  assert.equal(child?.note, `bound ${REDACTED}`);
});

test('fields named like secrets are censored whatever their value; env objects whole', async () => {
  const { logger, records } = await jsonLogger();
  logger.info({
    token: 'a',
    password: 'b',
    env: { DATABASE_URL: 'postgres://u:p@db/x', HOME: '/root' },
    request: { apiToken: 'c', headers: { authorization: 'Basic xyz', accept: 'text/plain' } },
    spec: { env: { A: '1' } },
  });
  const [record] = records();
  assert.deepEqual(
    { token: record?.token, password: record?.password, env: record?.env, request: record?.request, spec: record?.spec },
    {
      token: REDACTED,
      password: REDACTED,
      env: REDACTED,
      request: { apiToken: REDACTED, headers: { authorization: REDACTED, accept: 'text/plain' } },
      spec: { env: REDACTED },
    },
  );
});

test('a secret added to the redactor after the logger was created is redacted from then on', async () => {
  const redactor = new SecretRedactor();
  const { logger, records } = await jsonLogger({ redactor, secrets: ['first-secret'] });
  const child = processLogger(logger, 'db');
  child.info('before: late-secret first-secret');
  redactor.add('late-secret');
  child.info({ dsn: 'user:late-secret@db' }, 'after: late-secret');

  const [before, after] = records();
  assert.equal(before?.msg, `before: late-secret ${REDACTED}`);
  assert.equal(after?.msg, `after: ${REDACTED}`);
  assert.equal(after?.dsn, `user:${REDACTED}@db`);
});

test('redaction keeps every line valid JSON of the same shape', async () => {
  // A number-like secret must not touch numbers; one with quotes and backslashes is matched as
  // JSON escapes it; one that looks like the tail of an escape sequence must not split it.
  const { logger, text, records } = await jsonLogger({ secrets: ['5432', 'pa"ss\\word', 'nabc'] });
  logger.info({ port: 5432, dsn: 'host=db port=5432', quoted: 'x pa"ss\\word y', escaped: 'line\nabc' }, 'pa"ss\\word');
  const [record] = records();
  assert.deepEqual(
    { port: record?.port, dsn: record?.dsn, quoted: record?.quoted, escaped: record?.escaped, msg: record?.msg },
    { port: 5432, dsn: `host=db port=${REDACTED}`, quoted: `x ${REDACTED} y`, escaped: 'line\nabc', msg: REDACTED },
  );
  assert.equal(text().split('\n').length, 2, 'one line and its newline');
});

test('SecretRedactor: longest secret first, short values ignored, plain text too', () => {
  const redactor = new SecretRedactor(['abcd', 'abcdefgh', 'on', '']);
  assert.equal(redactor.size, 2, 'values under 4 characters are not redacted by substring');
  assert.equal(redactor.redact('x abcdefgh y abcd z on'), `x ${REDACTED} y ${REDACTED} z on`);
  assert.equal(redactor.redact('nothing here'), 'nothing here');
  redactor.add('a.c*');
  assert.equal(redactor.redact('abc a.c* a.c'), `abc ${REDACTED} a.c`, 'secrets are literals, not patterns');
  assert.equal(new SecretRedactor().redactJsonLine('{"a":"b"}\n'), '{"a":"b"}\n');
});

test('pretty format writes human text with the message and the process name', async () => {
  const out = collector();
  const logger = await createLogger({ level: 'info', format: 'pretty', destination: out.stream, secrets: ['hunter2-secret'] });
  processLogger(logger, 'web').info({ attempt: 2 }, 'started with hunter2-secret');

  const text = out.text();
  assert.throws(() => JSON.parse(text.split('\n')[0] ?? ''), 'not JSON');
  assert.match(text, /INFO/);
  assert.match(text, /\[web\] started with \[redacted\]/);
  assert.match(text, /attempt: 2/);
  assert.doesNotMatch(text, /hunter2-secret/);
  assert.equal(text.includes('\u001b['), false, 'no colours when the destination is not a terminal');
});

test('auto format: pretty on a terminal, JSON elsewhere', async () => {
  const pipe = collector();
  (await createLogger({ level: 'info', format: 'auto', destination: pipe.stream })).info('to a pipe');
  assert.equal(pipe.records()[0]?.msg, 'to a pipe');

  const terminal = collector({ tty: true });
  (await createLogger({ level: 'info', format: 'auto', destination: terminal.stream })).info('to a terminal');
  assert.match(terminal.text(), /to a terminal/);
  assert.throws(() => JSON.parse(terminal.text().split('\n')[0] ?? ''));
});

test('an unknown level or format is refused, naming the value', async () => {
  const { stream } = collector();
  await assert.rejects(createLogger({ level: 'verbose' as LoggerOptions['level'], format: 'json', destination: stream }), /log level "verbose" is not one of trace/);
  await assert.rejects(createLogger({ level: 'info', format: 'xml' as LoggerOptions['format'], destination: stream }), /log format "xml" is not one of json/);
});
