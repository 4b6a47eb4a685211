// User and group switching for exec processes: names resolved from the system databases, and a
// switch pm cannot perform refused before anything is touched.
import { readFile } from 'node:fs/promises';
import type { ProcessManifest } from '../manifest/types.js';
import { StartError } from '../errors.js';

export interface RunAs {
  uid?: number;
  gid?: number;
}

interface Entry {
  name: string;
  id: number;
  primaryGid?: number;
}

async function readDatabase(path: string): Promise<Entry[]> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'))
    .map((f) => ({ name: f[0] ?? '', id: Number(f[2]), primaryGid: f[3] === undefined ? undefined : Number(f[3]) }));
}

function lookup(entries: Entry[], nameOrId: string): Entry | undefined {
  if (/^\d+$/.test(nameOrId)) return entries.find((e) => e.id === Number(nameOrId)) ?? { name: nameOrId, id: Number(nameOrId) };
  return entries.find((e) => e.name === nameOrId);
}

export async function resolveRunAs(name: string, manifest: ProcessManifest): Promise<RunAs> {
  const { user, group } = manifest.spec.exec;
  if (user === undefined && group === undefined) return {};
  const runAs: RunAs = {};
  if (user !== undefined) {
    const entry = lookup(await readDatabase('/etc/passwd'), user);
    if (!entry) throw new StartError(name, `user "${user}" does not exist`, 'create the user or change spec.exec.user');
    runAs.uid = entry.id;
    runAs.gid = entry.primaryGid;
  }
  if (group !== undefined) {
    const entry = lookup(await readDatabase('/etc/group'), group);
    if (!entry) throw new StartError(name, `group "${group}" does not exist`, 'create the group or change spec.exec.group');
    runAs.gid = entry.id;
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
