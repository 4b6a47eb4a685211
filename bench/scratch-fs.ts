// What file system a bench's scratch folder is on, for its report: the managers that create files
// as they start processes (pm's logs and notify files, supervisord's and PM2's logs) are measured
// on it too. ext4 without a journal is named as such: there, inode allocation skips inodes freed in
// the last 60 s (360 s while their inode table block is unwritten; recently_deleted in
// fs/ext4/ialloc.c, checked only without a journal), so creates are slower for minutes after
// deletions nearby (node bench/file-create.mjs measures it).
import { execFileSync } from 'node:child_process';
import { readdirSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';

export interface ScratchFilesystem {
  /** "ext4 without a journal (/dev/vda)", "tmpfs", or "unknown" when findmnt could not tell. */
  description: string;
  /** ext4 without a journal: deleting many files slows the creates that follow. */
  slowAfterDeletes: boolean;
}

export function scratchFilesystem(dir: string): ScratchFilesystem {
  let source: string;
  let type: string;
  try {
    [source = '', type = ''] = execFileSync('findmnt', ['-n', '-o', 'SOURCE,FSTYPE', '--target', dir], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/);
  } catch {
    return { description: 'unknown (findmnt failed)', slowAfterDeletes: false };
  }
  if (type !== 'ext4') return { description: source === '' || source === type ? type : `${type} (${source})`, slowAfterDeletes: false };
  // A journalled ext4 has a jbd2 entry named after its device: vda-8, dm-0-8 (for /dev/mapper/vg-root).
  const device = basename(realpathOr(source));
  const journalled = listOr('/proc/fs/jbd2').some((entry) => entry.startsWith(`${device}-`));
  return { description: `ext4 ${journalled ? 'with' : 'without'} a journal (${source})`, slowAfterDeletes: !journalled };
}

function realpathOr(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function listOr(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
