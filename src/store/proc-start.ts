import { readFile } from 'node:fs/promises';

/**
 * The kernel start time of a PID (field 22 of /proc/PID/stat), or null when no such process
 * exists. Outside Linux there is no /proc: returns null for any PID that does not answer signal 0.
 */
export async function readProcessStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: fields after the last ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    if (process.platform === 'linux') return null;
    try {
      process.kill(pid, 0);
      return 'unknown';
    } catch {
      return null;
    }
  }
}
