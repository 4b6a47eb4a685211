// Database failures an operator can act on, each with its own message and fix. Whatever the
// driver said is kept as the cause; credentials never appear: messages name the connection by
// its masked description (user@host:port/database).
import { PmError } from '../errors.js';

export type DatabaseProblem = 'auth-failed' | 'no-database' | 'no-schema' | 'refused' | 'timeout' | 'host-unknown' | 'permission-denied' | 'tls' | 'other';

export class DatabaseError extends PmError {
  readonly problem: DatabaseProblem;
  constructor(problem: DatabaseProblem, message: string, hint: string, cause: unknown) {
    super(`E_DB_${problem.toUpperCase().replace(/-/g, '_')}`, message, { hint, cause });
    this.problem = problem;
  }
}

/** The fields of a pg / socket error this needs; both kinds carry `code`. */
interface DriverError {
  code?: string;
  message?: string;
}

/**
 * Turns a driver or socket error into a DatabaseError naming the problem and the fix. `where` is
 * the masked connection (see describeConnection); the driver's message is included only for
 * errors that cannot carry a password (SQLSTATE messages and socket errors do not).
 */
export function classifyDatabaseError(error: unknown, where: string): DatabaseError {
  if (error instanceof DatabaseError) return error;
  const { code, message = String(error) } = (error ?? {}) as DriverError;
  switch (code) {
    case '28P01':
    case '28000':
      return new DatabaseError('auth-failed', `PostgreSQL refused the login of ${where}: ${message}`, 'check the user and password (the URL, databasePasswordFile, PGPASSWORD or ~/.pgpass) and the server\'s pg_hba.conf', error);
    case '3D000':
      return new DatabaseError('no-database', `the database named in ${where} does not exist`, 'create it (createdb NAME, or CREATE DATABASE) or name another one in the URL / PGDATABASE', error);
    case '42P01':
    case '3F000':
      return new DatabaseError('no-schema', `pm's tables are not in ${where}: ${message}`, 'run pm db migrate against this database (it creates schema pm)', error);
    case '42501':
      return new DatabaseError('permission-denied', `${where} may not use pm's schema: ${message}`, "grant the role what pm needs: GRANT USAGE, CREATE ON SCHEMA pm TO ROLE (or run pm db migrate as the schema's owner)", error);
    case 'ECONNREFUSED':
      return new DatabaseError('refused', `nothing accepts connections at ${where} (connection refused)`, 'is PostgreSQL running, and listening on that host and port (listen_addresses, port)?', error);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new DatabaseError('host-unknown', `the host in ${where} cannot be resolved`, 'check the host name in the URL / PGHOST', error);
    case 'ETIMEDOUT':
    case 'ECONNRESET':
      return new DatabaseError('timeout', `${where} did not answer in time`, 'check the network path to the server and its load; databaseConnectTimeoutMs sets how long pm waits', error);
    default:
      break;
  }
  if (/timeout/i.test(message)) return new DatabaseError('timeout', `${where} did not answer in time`, 'check the network path to the server and its load; databaseConnectTimeoutMs sets how long pm waits', error);
  if (/ssl|tls|certificate/i.test(message)) return new DatabaseError('tls', `the TLS handshake with ${where} failed: ${message}`, 'check sslmode and the CA certificate (databaseSslRootCert), or the server\'s ssl settings', error);
  return new DatabaseError('other', `PostgreSQL at ${where}: ${message}`, 'see the PostgreSQL server log', error);
}
