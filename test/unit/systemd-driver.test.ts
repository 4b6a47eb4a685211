// SystemdDriver paths a real systemd shows only by chance or not at all here: a start job that
// fails because the program ended at once (it ran: a start, then an exit), one that fails before
// the program ran (E_SYSTEMD_FAILED), and journal lines quoted when journald has them (the test
// namespace runs no journald). A fake systemctl/journalctl answers behind the prefix.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { SystemdDriver } from '../../src/drivers/systemd/driver.js';
import { SystemdError } from '../../src/drivers/systemd/errors.js';
import { Systemctl } from '../../src/drivers/systemd/systemctl.js';
import { tempDir } from '../support/tmp.js';

/** A unit's `show` block after a run whose main process ended with ExecMainCode/Status. */
function shownAfter(code: number, status: number): string {
  return [
    'Id=pm-a.service',
    'Names=pm-a.service',
    'LoadState=loaded',
    'ActiveState=failed',
    'SubState=failed',
    'MainPID=0',
    'NRestarts=0',
    `ExecMainCode=${code}`,
    `ExecMainStatus=${status}`,
    'Result=exit-code',
    'InvocationID=00112233445566778899aabbccddeeff',
    'ActiveEnterTimestamp=',
    'InactiveEnterTimestamp=@1795760990',
    'ExecMainStartTimestamp=@1795760989',
    'ExecMainExitTimestamp=@1795760990',
    'FragmentPath=/run/systemd/system/pm-a.service',
    'NeedDaemonReload=no',
  ].join('\n');
}

/** A driver whose prefix runs a script: `start` fails as a job, `show` prints `shown`, journalctl prints `journal`. */
async function fakeDriver(dir: string, shown: string, journal: string): Promise<SystemdDriver> {
  await writeFile(join(dir, 'show.txt'), `${shown}\n`);
  await writeFile(join(dir, 'journal.txt'), journal);
  const script = join(dir, 'fake.sh');
  await writeFile(
    script,
    [
      'case " $* " in',
      `  *" show "*) cat ${JSON.stringify(join(dir, 'show.txt'))} ;;`,
      `  " journalctl "*) cat ${JSON.stringify(join(dir, 'journal.txt'))} ;;`,
      '  *" cat "*) printf "[Service]\\nStandardOutput=append:/var/log/pm/a.log\\nStandardError=append:/var/log/pm/a.err\\n" ;;',
      '  *" start "*) echo "Job for pm-a.service failed because the control process exited with error code." >&2; exit 1 ;;',
      '  *) exit 0 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  const systemctl = new Systemctl({ prefix: ['/bin/sh', script] });
  return new SystemdDriver({ systemctl, unitDir: dir });
}

test('a failed start job whose program ran is a start, then an exit', async (t) => {
  const driver = await fakeDriver(await tempDir(t), shownAfter(1, 3), '');
  const handle = await driver.start('pm-a.service');
  assert.deepEqual(handle, { driver: 'systemd', unit: 'pm-a.service', owned: true, invocationId: '00112233445566778899aabbccddeeff' });
  assert.deepEqual(await driver.waitExit(handle), { code: 3, signal: null, at: 1795760990000, known: true });
});

test('a failed start job before the program ran: E_SYSTEMD_FAILED with the journal lines and the log files', async (t) => {
  const driver = await fakeDriver(await tempDir(t), shownAfter(1, 217), 'pm-a.service: Failed to determine user credentials: No such process\npm-a.service: Failed at step USER spawning /usr/bin/node: No such process\n');
  await assert.rejects(driver.start('pm-a.service'), (error: unknown) => {
    assert.ok(error instanceof SystemdError);
    assert.equal(error.code, 'E_SYSTEMD_FAILED');
    assert.match(error.message, /^pm-a\.service failed: its main process exited with code 217 before the program ran: USER: the user could not be set/);
    assert.match(error.message, /last 2 journal lines:\n {2}pm-a\.service: Failed to determine user credentials: No such process\n {2}pm-a\.service: Failed at step USER/);
    assert.equal(error.hint, 'its output goes to /var/log/pm/a.log and /var/log/pm/a.err; `systemctl status pm-a.service` shows its state');
    return true;
  });
});
