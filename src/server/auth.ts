// The API's bearer token. By default the daemon makes one on first start and keeps it in the state
// directory, readable by its own user only: whoever can read the file may drive the daemon, so the
// file's permissions are the access control, and a file others can read is refused, as ssh does.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, open, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PmError, ExitCode } from '../errors.js';

/** Where the token comes from, in the order tried: the config (apiToken), a file (apiTokenFile), the state directory. */
export interface TokenConfig {
  token?: string;
  tokenFile?: string;
}

export interface ApiToken {
  token: string;
  /** The file it was read from or written to; undefined when it came from the config itself. */
  file: string | undefined;
}

export const TOKEN_FILE_NAME = 'api-token';

/** Returns the token the API requires, creating `<stateDir>/api-token` (0600) if none is configured and none exists yet. */
export async function loadOrCreateToken(stateDir: string, configured: TokenConfig = {}): Promise<ApiToken> {
  if (configured.token !== undefined) {
    if (configured.token.trim() === '') throw tokenError(`the configured API token (apiToken / PM_API_TOKEN) is empty`, 'set a non-empty token, or unset it to let pm make one');
    return { token: configured.token, file: undefined };
  }
  if (configured.tokenFile !== undefined) return { token: await readTokenFile(configured.tokenFile), file: configured.tokenFile };
  const path = join(stateDir, TOKEN_FILE_NAME);
  await createTokenFile(path);
  return { token: await readTokenFile(path), file: path };
}

/** True when `header` is `Bearer <token>`. Compares digests, so the time taken says nothing about the token, not even its length. */
export function checkBearer(header: string | undefined, token: string): boolean {
  if (header === undefined || token === '') return false;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match?.[1]) return false;
  return timingSafeEqual(sha256(match[1]), sha256(token));
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Reads a token file after checking that only its owner can read it. */
async function readTokenFile(path: string): Promise<string> {
  let mode: number;
  let text: string;
  try {
    mode = (await stat(path)).mode;
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw tokenError(`cannot read the API token file ${path}: ${code ?? (error as Error).message}`, code === 'ENOENT' ? 'create it, or unset apiTokenFile / PM_API_TOKEN_FILE / --api-token-file to let pm make one' : 'the file must be readable by the user pm runs as', error);
  }
  if ((mode & 0o077) !== 0) {
    throw tokenError(`the API token file ${path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); refusing to use it`, `run \`chmod 600 ${path}\``);
  }
  const token = text.trim();
  if (token === '') throw tokenError(`the API token file ${path} is empty`, 'write a token into it, or remove it to let pm make a new one');
  return token;
}

/**
 * Creates the token file if absent. The token is written to a private temp file first and then
 * hard-linked into place: link(2) never replaces an existing file, so two daemons starting at once
 * never overwrite each other's token, and nobody ever reads a half-written one.
 */
async function createTokenFile(path: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(tmp, 'wx', 0o600);
  try {
    await file.writeFile(`${randomBytes(32).toString('hex')}\n`);
    await file.sync();
    await file.close();
    await link(tmp, path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  } finally {
    await file.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
  }
}

function tokenError(message: string, hint: string, cause?: unknown): PmError {
  return new PmError('E_TOKEN', message, { hint, exitCode: ExitCode.invalid, cause });
}
