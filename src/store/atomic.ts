// Crash-safe file writes: a reader sees the old content or the new, never a torn file.
import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { coalesced } from '../util/coalesce.js';

/** Writes via a temp file in the same folder, fsyncs it, renames it over the target, then fsyncs the folder. */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const file = await open(tmp, 'wx', mode);
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (error) {
    await file.close();
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await file.close();
  try {
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
  await fsyncDir(dirname(path));
}

/** Per folder, the coalesced fsync of it. A state directory has a handful of folders. */
const folderSyncs = new Map<string, () => Promise<void>>();

/**
 * Makes a rename or unlink in `dir` durable. Calls for the same folder are coalesced: one made while
 * an fsync runs waits for the next one (the running one may have begun before its rename), which
 * serves every call made in between — a wave of record writes costs two folder fsyncs, not one each.
 */
export function fsyncDir(dir: string): Promise<void> {
  let sync = folderSyncs.get(dir);
  if (!sync) {
    sync = coalesced(() => syncFolder(dir));
    folderSyncs.set(dir, sync);
  }
  return sync();
}

async function syncFolder(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
