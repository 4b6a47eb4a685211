// pm logs against real files: --tail counts lines the way tail(1) does (a last line without a
// newline is a line), -f follows, a slow reader holds pm's memory down, and a read error while
// following is an error of the command, not an unhandled rejection.
import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { logsCommand } from '../../src/cli/commands/logs.js';
import type { Cli, Values } from '../../src/cli/command.js';
import { makeStyle } from '../../src/cli/output/style.js';
import { PmError } from '../../src/errors.js';
import { FileStore } from '../../src/store/file-store.js';
import { manifest } from '../support/manifests.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

/** Collects what pm prints. `hold` defers each write's completion by that many event loop turns (a slow reader). */
class Output extends Writable {
  readonly chunks: Buffer[] = [];
  /** The most bytes ever waiting in this stream's buffer. */
  maxBuffered = 0;
  constructor(private readonly hold = 0) {
    super({ highWaterMark: 16 * 1024 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    let turns = this.hold;
    const next = (): void => {
      if (turns-- <= 0) callback();
      else setImmediate(next);
    };
    next();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

interface Setup {
  log: string;
  logs(args: { tail?: string; follow?: boolean }, out?: Output, signal?: AbortSignal): Promise<{ out: Output; code: number }>;
}

/** A state directory with one process, `api`, whose log file is `log` (not created). */
async function setup(t: TestContext): Promise<Setup> {
  const stateDir = await tempDir(t);
  const store = await FileStore.open(stateDir);
  await store.putRecord({ name: 'api', manifest: manifest({ name: 'api', command: ['x'] }), source: { file: '/m/api.yaml', line: 1 }, appliedAt: new Date().toISOString(), starts: 1 });
  return {
    log: store.defaultLogPath('api'),
    async logs(args, out = new Output(), signal = new AbortController().signal) {
      const values: Values = { ...(args.tail !== undefined && { tail: args.tail }), ...(args.follow && { follow: true }) };
      const cli: Cli = {
        stdout: out as unknown as Cli['stdout'],
        stderr: process.stderr,
        stdin: process.stdin,
        env: {},
        cwd: stateDir,
        style: makeStyle(false),
        errStyle: makeStyle(false),
        stateDir,
        signal,
      };
      const code = await logsCommand.run(values, ['api'], cli);
      return { out, code };
    },
  };
}

test('--tail N prints the last N lines, with and without a newline at the end', async (t) => {
  const { log, logs } = await setup(t);
  const cases: [content: string, tail: string | undefined, printed: string][] = [
    ['a\nb\nc\n', undefined, 'a\nb\nc\n'],
    ['a\nb\nc\n', '0', ''],
    ['a\nb\nc\n', '1', 'c\n'],
    ['a\nb\nc\n', '2', 'b\nc\n'],
    ['a\nb\nc\n', '3', 'a\nb\nc\n'],
    ['a\nb\nc\n', '10', 'a\nb\nc\n'],
    // The last line has no newline yet (the process is mid-line): it is still a line.
    ['a\nb\nc', '0', ''],
    ['a\nb\nc', '1', 'c'],
    ['a\nb\nc', '2', 'b\nc'],
    ['a\nb\nc', '3', 'a\nb\nc'],
    ['a\nb\nc', '10', 'a\nb\nc'],
    // Empty lines are lines.
    ['a\n\n\n', '1', '\n'],
    ['a\n\n\n', '2', '\n\n'],
    ['\n', '1', '\n'],
    ['', '1', ''],
    ['', '0', ''],
  ];
  for (const [content, tail, printed] of cases) {
    await writeFile(log, content);
    const { out, code } = await logs({ tail });
    assert.equal(code, 0);
    assert.equal(out.text(), printed, `${JSON.stringify(content)} --tail ${tail}`);
  }
});

test('--tail N finds lines across read chunks in a large file', async (t) => {
  const { log, logs } = await setup(t);
  const lines = Array.from({ length: 50_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 97)}`);
  for (const end of ['\n', '']) {
    await writeFile(log, lines.join('\n') + end);
    for (const n of [1, 7, 3000]) {
      const { out } = await logs({ tail: String(n) });
      assert.equal(out.text(), lines.slice(-n).join('\n') + end, `--tail ${n}, ending ${JSON.stringify(end)}`);
    }
  }
});

test('--tail 0 -f prints nothing of what was there, then what is appended', async (t) => {
  const { log, logs } = await setup(t);
  await writeFile(log, 'old 1\nold 2\n');
  const controller = new AbortController();
  const out = new Output();
  const watchesBefore = await inotifyWatches();
  const running = logs({ tail: '0', follow: true }, out, controller.signal);
  t.after(() => controller.abort());

  // pm watches the file once it has printed the tail: append only then, so the tail is decided.
  await waitFor(async () => (await inotifyWatches()) > watchesBefore, { message: 'pm logs -f to watch the file' });
  await appendFile(log, 'new 1\n');
  await waitFor(() => out.text().includes('new 1\n'), { message: 'pm logs -f to print the appended line' });
  await appendFile(log, 'new 2\n');
  await waitFor(() => out.text().includes('new 2\n'), { message: 'pm logs -f to print a second appended line' });
  controller.abort();
  assert.equal((await running).code, 0);
  assert.equal(out.text(), 'new 1\nnew 2\n');
});

/** How many inotify watches this process holds (fs.watch on Linux). */
async function inotifyWatches(): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fdinfo').catch(() => [] as string[])) {
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    count += info.split('\n').filter((line) => line.startsWith('inotify wd:')).length;
  }
  return count;
}

test('a slow reader holds back reading: pm buffers a chunk or so, not the file', async (t) => {
  const { log, logs } = await setup(t);
  const line = `${'y'.repeat(99)}\n`;
  await writeFile(log, line.repeat(160_000)); // 16 MB
  const out = new Output(20);
  await logs({}, out);
  assert.equal(Buffer.concat(out.chunks).length, 16_000_000);
  // One 64 KiB chunk over the 16 KiB high-water mark at most; without backpressure it is megabytes.
  assert.ok(out.maxBuffered <= 64 * 1024 + 16 * 1024, `up to ${out.maxBuffered} bytes were waiting in the output`);
});

test('-f: a read error while following ends the command with an error, not an unhandled rejection', async (t) => {
  const { log, logs } = await setup(t);
  const controller = new AbortController();
  t.after(() => controller.abort());
  let outcome: { error: unknown } | { code: number } | undefined;
  const running = logs({ follow: true }, new Output(), controller.signal).then(
    ({ code }) => (outcome = { code }),
    (error: unknown) => (outcome = { error }),
  );
  // The log path turns into a folder: opening works, reading fails with EISDIR.
  await mkdir(log);
  await waitFor(() => outcome !== undefined, { message: 'pm logs -f to end with the read error' });
  await running;
  assert.ok(outcome && 'error' in outcome, `pm logs -f ended without an error: ${JSON.stringify(outcome)}`);
  assert.ok(outcome.error instanceof PmError);
  assert.equal(outcome.error.code, 'E_LOG_READ');
  assert.match(outcome.error.message, /cannot read log file .*api\.log: EISDIR/);
});
