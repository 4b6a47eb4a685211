// Every failure of the docker driver is a DockerError: a stable code for scripts and logs, a message
// naming the container or image, and a hint a user can act on. Engine and socket errors are turned
// into one here, once. Messages never carry environment values: the engine's own text is passed
// through `redact` with the values of the request that failed.
import { PmError } from '../../errors.js';

export const DockerErrorCode = {
  /** No socket file (ENOENT), or nothing listening on it (ECONNREFUSED). */
  unreachable: 'E_DOCKER_UNREACHABLE',
  /** The socket exists and pm's user may not open it (EACCES). */
  permission: 'E_DOCKER_PERMISSION',
  imageNotFound: 'E_DOCKER_IMAGE_NOT_FOUND',
  /** A container of that name exists and is not this pm's. */
  nameConflict: 'E_DOCKER_NAME_CONFLICT',
  /** This pm's container of that name still runs: stop it before starting another. */
  stillRunning: 'E_DOCKER_STILL_RUNNING',
  /** A handle names a container that carries another owner's pm.owner label. */
  notOwned: 'E_DOCKER_NOT_OWNED',
  /** The engine dropped a resource limit it was given (a "… discarded" warning). */
  limitUnsupported: 'E_DOCKER_LIMIT_UNSUPPORTED',
  /** The ContainerSpec is invalid before anything is sent (reserved label, bad name, bad limit). */
  invalidSpec: 'E_DOCKER_SPEC_INVALID',
  timeout: 'E_DOCKER_TIMEOUT',
  other: 'E_DOCKER_OTHER',
} as const;
export type DockerErrorCode = (typeof DockerErrorCode)[keyof typeof DockerErrorCode];

export class DockerError extends PmError {
  declare readonly code: DockerErrorCode;
  /** The engine's HTTP status when it answered (404, 409 …); undefined for socket errors and timeouts. */
  readonly status: number | undefined;
  /** The engine's own message (json.message), redacted; undefined when it did not answer. */
  readonly engineMessage: string | undefined;
  constructor(code: DockerErrorCode, message: string, options: { hint: string; status?: number; engineMessage?: string; cause?: unknown }) {
    super(code, message, { hint: options.hint, cause: options.cause });
    this.status = options.status;
    this.engineMessage = options.engineMessage;
  }
}

/** The fields of a docker-modem or Node socket error this reads. */
interface RawEngineError {
  code?: unknown;
  statusCode?: unknown;
  json?: unknown;
  message?: unknown;
}

/**
 * Turns what a dockerode call threw into a DockerError. `what` names the operation for the message
 * ("create container pm-api"); `secrets` are values that must not appear in it (the environment).
 * Branches on the HTTP status and the socket error code, never on dockerode's `reason` label (it
 * calls a missing image on create "no such container").
 */
export function classifyEngineError(error: unknown, what: string, socketPath: string, secrets: readonly string[] = []): DockerError {
  if (error instanceof DockerError) return error;
  const raw = (error ?? {}) as RawEngineError;
  if (typeof raw.statusCode === 'number') {
    const engineMessage = redact(engineText(raw), secrets);
    // The raw error is not kept as the cause: its text and JSON may echo the request.
    return new DockerError(DockerErrorCode.other, `${what}: the engine answered ${raw.statusCode}: ${engineMessage}`, {
      hint: raw.statusCode >= 500 ? 'see the engine log (journalctl -u docker, or dockerd\'s output)' : 'check the container settings named in the message',
      status: raw.statusCode,
      engineMessage,
    });
  }
  switch (raw.code) {
    case 'ENOENT':
      return unreachable(what, socketPath, 'no socket there', error);
    case 'ECONNREFUSED':
      return unreachable(what, socketPath, 'nothing listens on it', error);
    case 'EACCES':
    case 'EPERM':
      return new DockerError(DockerErrorCode.permission, `${what}: permission denied on the Docker socket ${socketPath}`, {
        hint: 'add pm\'s user to the docker group (then log in again), run pm with sudo, or point pm at a socket it may use',
        cause: error,
      });
    case 'ECONNRESET':
    case 'EPIPE':
      return new DockerError(DockerErrorCode.other, `${what}: the engine closed the connection on ${socketPath}`, {
        hint: 'the engine may be restarting; see its log',
        cause: error,
      });
    default:
      break;
  }
  const message = redact(typeof raw.message === 'string' ? raw.message : String(error), secrets);
  return new DockerError(DockerErrorCode.other, `${what}: ${message}`, { hint: 'see the engine log (journalctl -u docker, or dockerd\'s output)' });
}

export function timedOut(what: string, timeoutMs: number): DockerError {
  return new DockerError(DockerErrorCode.timeout, `${what}: the engine did not answer within ${timeoutMs} ms`, {
    hint: 'the engine may be overloaded or stuck: check `docker info` and its log; timeoutMs sets how long pm waits',
  });
}

export function imageNotFound(image: string, cause?: unknown): DockerError {
  return new DockerError(DockerErrorCode.imageNotFound, `image ${image} is not on the engine`, {
    hint: `build it (docker build -t ${image} .) or pull it (docker pull ${image}): pm never pulls`,
    status: 404,
    cause,
  });
}

export function invalidSpec(process: string, problem: string): DockerError {
  return new DockerError(DockerErrorCode.invalidSpec, `${process}: ${problem}`, { hint: 'fix the container spec; nothing was sent to the engine' });
}

function unreachable(what: string, socketPath: string, why: string, cause: unknown): DockerError {
  return new DockerError(DockerErrorCode.unreachable, `${what}: cannot reach the Docker engine at ${socketPath} (${why})`, {
    hint: 'is dockerd running? start it (systemctl start docker, or dockerd &) or point pm at the right socket',
    cause,
  });
}

/** json.message as Docker writes it, else docker-modem's message. Trimmed, single line. */
function engineText(raw: RawEngineError): string {
  const json = raw.json as { message?: unknown } | null | undefined;
  const text = json && typeof json === 'object' && typeof json.message === 'string' ? json.message : typeof raw.message === 'string' ? raw.message : 'no message';
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * Replaces every secret in `text` by `***`. Values shorter than 4 characters are left alone: they
 * would mangle ordinary words and numbers, and are not secrets anyone should rely on.
 */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
