// Where pm's database is and how to log in, from a URL (config databaseUrl / PM_DATABASE_URL) with
// the gaps filled by the standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD,
// PGPASSFILE, PGSSLMODE, PGSSLROOTCERT), as psql would. `postgres://` alone means "all from the
// libpq variables". The password comes from the URL, else a password file (databasePasswordFile),
// else PGPASSWORD, else the libpq password file — and is never part of what is shown: `display`
// names the connection for messages, logs and `pm config show`.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { PmError, ExitCode } from '../errors.js';
import { findPassword, readPgpass } from './pgpass.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface DatabaseInput {
  url: string;
  passwordFile?: string;
  /** Overrides the URL's sslmode and PGSSLMODE. */
  sslMode?: SslMode;
  sslRootCert?: string;
}

export interface DatabaseSettings {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Absent: log in without one (trust, peer). */
  password?: string;
  sslMode: SslMode;
  /** PEM text of the CA certificate, for verify-ca / verify-full. */
  ca?: string;
  /** user@host:port/database: safe to show anywhere. */
  display: string;
}

const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export async function resolveDatabaseSettings(input: DatabaseInput, env: NodeJS.ProcessEnv): Promise<DatabaseSettings> {
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    // The text may hold a password: it is not repeated.
    throw invalid('databaseUrl is not a URL', 'write it as postgres://USER@HOST:PORT/DATABASE (the password is better kept in databasePasswordFile)');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw invalid(`databaseUrl must start with postgres://, not ${url.protocol}//`, 'write it as postgres://USER@HOST:PORT/DATABASE');

  const query = url.searchParams;
  // A socket folder may come as ?host=/run/postgresql (libpq's form), since a path cannot be a URL host.
  const host = decode(url.hostname.replace(/^\[(.*)\]$/, '$1')) || query.get('host') || env.PGHOST || 'localhost';
  const portText = url.port || query.get('port') || env.PGPORT || '5432';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`the database port "${portText}" is not a port number`, 'use 1–65535 in the URL or PGPORT');
  const user = decode(url.username) || env.PGUSER || userInfo().username;
  const database = decode(url.pathname.replace(/^\//, '')) || env.PGDATABASE || user;

  const sslText = input.sslMode ?? query.get('sslmode') ?? env.PGSSLMODE ?? 'prefer';
  if (!SSL_MODES.includes(sslText as SslMode)) throw invalid(`sslmode "${sslText}" is not one of ${SSL_MODES.join(', ')}`, 'set databaseSslMode, ?sslmode= or PGSSLMODE to one of them');
  const sslMode = sslText as SslMode;
  const caFile = input.sslRootCert ?? query.get('sslrootcert') ?? env.PGSSLROOTCERT;
  const ca = (sslMode === 'verify-ca' || sslMode === 'verify-full') && caFile ? await readSecretFile(caFile, 'databaseSslRootCert') : undefined;

  const password = decode(url.password) || (input.passwordFile ? await readSecretFile(input.passwordFile, 'databasePasswordFile') : undefined) || env.PGPASSWORD || (await pgpassPassword(env, { host, port, database, user }));
  const display = `${user}@${host}:${port}/${database}`;
  return { host, port, database, user, sslMode, display, ...(password && { password }), ...(ca && { ca }) };
}

/** The database the daemon's config names (databaseUrl, or `url` given instead), with its password file and TLS keys. */
export function databaseSettingsFromConfig(
  config: { databaseUrl?: string; databasePasswordFile?: string; databaseSslMode?: SslMode; databaseSslRootCert?: string },
  env: NodeJS.ProcessEnv,
  url = config.databaseUrl,
): Promise<DatabaseSettings> {
  return resolveDatabaseSettings(
    {
      url: url ?? '',
      ...(config.databasePasswordFile !== undefined && { passwordFile: config.databasePasswordFile }),
      ...(config.databaseSslMode !== undefined && { sslMode: config.databaseSslMode }),
      ...(config.databaseSslRootCert !== undefined && { sslRootCert: config.databaseSslRootCert }),
    },
    env,
  );
}

/** The settings as node-postgres takes them; TLS by sslmode, as libpq reads it. */
export function poolOptions(settings: DatabaseSettings): { host: string; port: number; database: string; user: string; password?: string; ssl: false | { rejectUnauthorized: boolean; ca?: string; checkServerIdentity?: () => undefined } } {
  return {
    host: settings.host,
    port: settings.port,
    database: settings.database,
    user: settings.user,
    ...(settings.password !== undefined && { password: settings.password }),
    ssl: tlsOptions(settings),
  };
}

function tlsOptions(settings: DatabaseSettings): false | { rejectUnauthorized: boolean; ca?: string; checkServerIdentity?: () => undefined } {
  switch (settings.sslMode) {
    // node-postgres cannot fall back between TLS and plain text as libpq's allow / prefer do: it
    // speaks plain text, which is what either ends with against a server without TLS.
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      // The certificate chain is checked, the host name is not.
      return { rejectUnauthorized: true, ...(settings.ca && { ca: settings.ca }), checkServerIdentity: () => undefined };
    case 'verify-full':
      return { rejectUnauthorized: true, ...(settings.ca && { ca: settings.ca }) };
  }
}

async function pgpassPassword(env: NodeJS.ProcessEnv, want: { host: string; port: number; database: string; user: string }): Promise<string | undefined> {
  const file = await readPgpass(env);
  return file ? findPassword(file.entries, want) : undefined;
}

async function readSecretFile(path: string, key: string): Promise<string> {
  try {
    // A trailing newline is how files are written, not part of the secret.
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (error) {
    throw invalid(`${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, `make ${path} readable by pm's user, or change ${key}`);
  }
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function invalid(message: string, hint: string): PmError {
  return new PmError('E_DB_CONFIG', message, { hint, exitCode: ExitCode.invalid });
}
