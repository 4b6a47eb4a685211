// The libpq password file (~/.pgpass, or PGPASSFILE): lines of host:port:database:username:password,
// `*` matching anything, `\:` and `\\` escaping. libpq ignores the file unless only its owner can
// read it; so does pm. node-postgres' own support for it is deprecated (pg 8 warns, pg 9 drops it),
// hence this reader.
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface PgpassEntry {
  host: string;
  port: string;
  database: string;
  user: string;
  password: string;
}

/** Parses the file's text; malformed lines (fewer than five fields) and comments are skipped, as libpq does. */
export function parsePgpass(text: string): PgpassEntry[] {
  const entries: PgpassEntry[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    // splitFields stops splitting after the fourth separator: a colon in the password is kept.
    const [host, port, database, user, password] = fields as [string, string, string, string, string];
    entries.push({ host, port, database, user, password });
  }
  return entries;
}

/** The first entry matching the connection, as libpq picks it. `localhost` also matches a socket connection. */
export function findPassword(entries: readonly PgpassEntry[], want: { host: string; port: number; database: string; user: string }): string | undefined {
  const host = want.host.startsWith('/') ? 'localhost' : want.host;
  const match = (pattern: string, value: string): boolean => pattern === '*' || pattern === value;
  return entries.find((e) => match(e.host, host) && match(e.port, String(want.port)) && match(e.database, want.database) && match(e.user, want.user))?.password;
}

/** Reads PGPASSFILE or ~/.pgpass; undefined when absent, or readable by others (libpq refuses it too). */
export async function readPgpass(env: NodeJS.ProcessEnv): Promise<{ file: string; entries: PgpassEntry[] } | undefined> {
  const file = env.PGPASSFILE || join(homedir(), '.pgpass');
  try {
    const info = await stat(file);
    if (!info.isFile() || (info.mode & 0o077) !== 0) return undefined;
    return { file, entries: parsePgpass(await readFile(file, 'utf8')) };
  } catch {
    return undefined;
  }
}

function splitFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else if (c === ':' && fields.length < 4) {
      fields.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  fields.push(current);
  return fields;
}
