// Keeping a unit's last exit visible after it ends.
//
// systemd garbage-collects a unit that is inactive (not failed) and that no loaded unit refers to:
// its runtime state goes, and `systemctl show` then reports a fresh unit (InvocationID empty,
// ExecMainCode 0). An owned unit whose program exits 0, or dies of SIGTERM/SIGINT/SIGHUP/SIGPIPE
// (clean to systemd), would lose its exit status at once, and pm must see every exit. Measured on
// systemd 252: a unit referenced by an active target keeps it.
//
// So pm keeps one inert target, pm.target, started (active) and never stopped, and gives it one
// drop-in per owned unit, pm.target.d/<unit>.conf, holding `After=<unit>`: a pure ordering
// reference that starts nothing. One file per unit, so installs never rewrite a shared list.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../../store/atomic.js';

export const ANCHOR_TARGET = 'pm.target';
export const ANCHOR_MARKER = '# Written by pm: keeps the last state of the units pm owns visible after they exit (see each drop-in in pm.target.d).';

const ANCHOR_TEXT = `${ANCHOR_MARKER}\n[Unit]\nDescription=pm: references the units pm owns so systemd keeps their exit status\n`;

/**
 * Writes pm.target (when missing or different) and the unit's drop-in; true when a file was
 * written. Daemon-reload and `start pm.target` are the caller's.
 */
export async function writeAnchor(unitDir: string, unit: string): Promise<boolean> {
  let wrote = false;
  const target = join(unitDir, ANCHOR_TARGET);
  if ((await readFile(target, 'utf8').catch(() => undefined)) !== ANCHOR_TEXT) {
    await writeAtomically(target, ANCHOR_TEXT, 0o644);
    wrote = true;
  }
  const dropIn = dropInPath(unitDir, unit);
  const text = `${ANCHOR_MARKER}\n[Unit]\nAfter=${unit}\n`;
  if ((await readFile(dropIn, 'utf8').catch(() => undefined)) !== text) {
    await writeAtomically(dropIn, text, 0o644);
    wrote = true;
  }
  return wrote;
}

/** Removes the unit's drop-in (pm.target itself stays: it is inert, and removing it could race an install). */
export async function removeAnchor(unitDir: string, unit: string): Promise<boolean> {
  const dropIn = dropInPath(unitDir, unit);
  const existed = (await readFile(dropIn, 'utf8').catch(() => undefined)) !== undefined;
  await rm(dropIn, { force: true });
  return existed;
}

export function dropInPath(unitDir: string, unit: string): string {
  return join(unitDir, `${ANCHOR_TARGET}.d`, `${unit}.conf`);
}

/**
 * Atomic (systemd never reads a half-written file), in a folder made if missing. The temp file's
 * leading dot and .tmp suffix are no unit name: systemd never takes it for a unit.
 */
export async function writeAtomically(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, text, mode);
}
