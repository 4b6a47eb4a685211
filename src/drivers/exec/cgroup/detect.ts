// Which cgroup hierarchies this machine has, and where pm itself sits in each: read from
// /proc/self/cgroup and /proc/self/mountinfo, so nothing is assumed about /sys/fs/cgroup (a
// hybrid host mounts v1 controllers and an empty v2 side by side; a container sees its own root).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** cgroup v2 only: pm moves itself into this leaf of its cgroup (see v2.ts), which stays pm's place. */
export const SELF_LEAF = 'pm-main';

/** The texts detection reads; a test hands in its own, naming a temp dir as the mount. */
export interface CgroupSource {
  /** /proc/self/cgroup */
  selfCgroup: string;
  /** /proc/self/mountinfo */
  mountinfo: string;
}

/** One hierarchy pm can reach, with pm's cgroup in it. */
export interface Hierarchy {
  version: 1 | 2;
  /** v1: the controllers bound to it (from the mount options). v2: empty (they are per cgroup, see v2.ts). */
  controllers: readonly string[];
  /** pm's cgroup as the hierarchy names it (/proc/self/cgroup); for v2 without the SELF_LEAF pm may sit in. */
  path: string;
  /** The same cgroup as a directory here (mount point + path below the mount's root). */
  dir: string;
  /** The mount it is seen through. */
  mount: CgroupMount;
}

/** Reads the live texts; undefined off Linux (no /proc). */
export async function readCgroupSource(): Promise<CgroupSource | undefined> {
  try {
    const [selfCgroup, mountinfo] = await Promise.all([readFile('/proc/self/cgroup', 'utf8'), readFile('/proc/self/mountinfo', 'utf8')]);
    return { selfCgroup, mountinfo };
  } catch {
    return undefined;
  }
}

/** The hierarchies of `source` whose pm cgroup is visible through a mount (v1 named ones such as name=systemd left out). */
export function hierarchiesOf(source: CgroupSource): Hierarchy[] {
  const mounts = parseMountinfo(source.mountinfo);
  const found: Hierarchy[] = [];
  for (const entry of parseProcCgroup(source.selfCgroup)) {
    if (entry.id === 0 && entry.controllers.length === 0) {
      const path = withoutSelfLeaf(entry.path);
      const mount = mounts.find((m) => m.fstype === 'cgroup2' && shows(m, path));
      if (mount) found.push({ version: 2, controllers: [], path, dir: dirIn(mount, path), mount });
      continue;
    }
    const controllers = entry.controllers.filter((c) => !c.startsWith('name='));
    if (controllers.length === 0) continue;
    const mount = mounts.find((m) => m.fstype === 'cgroup' && controllers.every((c) => m.superOptions.includes(c)) && shows(m, entry.path));
    if (mount) found.push({ version: 1, controllers, path: entry.path, dir: dirIn(mount, entry.path), mount });
  }
  return found;
}

interface ProcCgroupEntry {
  id: number;
  controllers: string[];
  path: string;
}

/** `4:memory:/a/b` per line; v2's line is `0::/a/b`. */
export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const entries: ProcCgroupEntry[] = [];
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    entries.push({ id: Number(line.slice(0, first)), controllers: controllers === '' ? [] : controllers.split(','), path: line.slice(second + 1) });
  }
  return entries;
}

export interface CgroupMount {
  /** The directory of the hierarchy mounted (a cgroup path; '/' unless a sub-tree is bind-mounted). */
  root: string;
  mountPoint: string;
  fstype: string;
  superOptions: string[];
}

/**
 * The cgroup mounts of /proc/self/mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] -
 * FSTYPE SOURCE SUPEROPTIONS`, with spaces and the like in paths escaped as octal (\040).
 */
export function parseMountinfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6) continue;
    const fstype = fields[dash + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    mounts.push({ root: unescapeOctal(fields[3] ?? ''), mountPoint: unescapeOctal(fields[4] ?? ''), fstype, superOptions: (fields[dash + 3] ?? '').split(',') });
  }
  return mounts;
}

function unescapeOctal(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Whether cgroup `path` lies within what `mount` shows (all of it unless a sub-tree is bind-mounted). */
function shows(mount: CgroupMount, path: string): boolean {
  return mount.root === '/' || path === mount.root || path.startsWith(`${mount.root}/`);
}

/** The directory of cgroup `path` (of the mount's hierarchy) here. */
export function dirIn(mount: CgroupMount, path: string): string {
  const dir = join(mount.mountPoint, mount.root === '/' ? path : path.slice(mount.root.length));
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

function withoutSelfLeaf(path: string): string {
  if (!path.endsWith(`/${SELF_LEAF}`)) return path;
  const parent = path.slice(0, -SELF_LEAF.length - 1);
  return parent === '' ? '/' : parent;
}
