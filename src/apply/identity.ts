// User and group switching for exec processes: names resolved from the system databases, and a
// switch pm cannot perform refused before anything is touched.
import { readFile } from 'node:fs/promises';
import { runtimeOf } from '../manifest/runtime.js';
import type { ProcessManifest } from '../manifest/types.js';
import { StartError } from '../errors.js';

export interface RunAs {
  uid?: number;
  gid?: number;
  /**
   * Set when spec.exec.user is given: HOME, USER and LOGNAME of that user, from /etc/passwd (a
   * numeric user with no entry gets HOME=/ and no names). resolveEnvironment applies them in place
   * of the HOME inherited from pm; the manifest's env can still override them.
   */
  identityEnv?: IdentityEnv;
}

export interface IdentityEnv {
  HOME: string;
  USER?: string;
  LOGNAME?: string;
}

interface Entry {
  name: string;
  id: number;
  /** /etc/passwd only: the primary group and home folder. */
  primaryGid?: number;
  home?: string;
}

async function readDatabase(path: string): Promise<Entry[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'))
    .flatMap((f) => {
      const id = toId(f[2]);
      if (!f[0] || id === undefined) return [];
      return [{ name: f[0], id, primaryGid: toId(f[3]), home: f[5] || undefined }];
    });
}

function toId(field: string | undefined): number | undefined {
  return field !== undefined && /^\d+$/.test(field) ? Number(field) : undefined;
}

/** The entry named `nameOrId`, or for a number, the entry with that id. */
function lookup(entries: Entry[], nameOrId: string): Entry | undefined {
  if (/^\d+$/.test(nameOrId)) return entries.find((e) => e.id === Number(nameOrId));
  return entries.find((e) => e.name === nameOrId);
}

export async function resolveRunAs(name: string, manifest: ProcessManifest): Promise<RunAs> {
  const { user, group } = runtimeOf(manifest);
  if (user === undefined && group === undefined) return {};
  const runAs: RunAs = {};
  if (user !== undefined) {
    const entry = lookup(await readDatabase('/etc/passwd'), user);
    if (entry) {
      runAs.uid = entry.id;
      runAs.gid = entry.primaryGid;
      runAs.identityEnv = { HOME: entry.home ?? '/', USER: entry.name, LOGNAME: entry.name };
    } else if (/^\d+$/.test(user)) {
      // A uid nobody registered has no primary group: without `group:` it would keep pm's (root).
      if (group === undefined) {
        throw new StartError(
          name,
          `user ${user} has no entry in /etc/passwd, so it has no primary group (the process would run with pm's group, gid ${process.getgid?.() ?? '?'})`,
          `add spec.exec.group (e.g. group: "${user}"), or create the user`,
        );
      }
      runAs.uid = Number(user);
      runAs.identityEnv = { HOME: '/' };
    } else {
      throw new StartError(name, `user "${user}" does not exist`, 'create the user or change spec.exec.user');
    }
  }
  if (group !== undefined) {
    const entry = lookup(await readDatabase('/etc/group'), group);
    if (entry) runAs.gid = entry.id;
    else if (/^\d+$/.test(group)) runAs.gid = Number(group);
    else throw new StartError(name, `group "${group}" does not exist`, 'create the group or change spec.exec.group');
  }
  if (runAs.uid !== undefined && runAs.gid === undefined) {
    throw new StartError(name, `user "${user}" has no primary group in /etc/passwd`, 'add spec.exec.group, or fix the entry in /etc/passwd');
  }
  const myUid = process.getuid?.();
  const myGid = process.getgid?.();
  const switching = (runAs.uid !== undefined && runAs.uid !== myUid) || (runAs.gid !== undefined && runAs.gid !== myGid);
  if (switching && myUid !== 0) {
    throw new StartError(
      name,
      `pm runs as uid ${myUid} and cannot switch to ${user ? `user "${user}"` : ''}${user && group ? ' / ' : ''}${group ? `group "${group}"` : ''}`,
      'run pm as root, or remove spec.exec.user / spec.exec.group',
    );
  }
  return runAs;
}
