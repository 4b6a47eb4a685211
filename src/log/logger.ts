// The daemon's logger: pino, one JSON object a line on stdout (what journald and docker collect),
// or human text on a terminal. Secrets are kept out of it twice: by the names of the fields that
// hold them, and by their values wherever they turn up.
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const logLevels = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof logLevels)[number];

export const logFormats = ['json', 'pretty', 'auto'] as const;
/** auto: pretty when the destination is a terminal, JSON otherwise. */
export type LogFormat = (typeof logFormats)[number];

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Default process.stdout: a daemon's output is collected from there by journald and docker. */
  destination?: NodeJS.WritableStream;
  /** Literal secret values known now (the API token, resolved secret env values). */
  secrets?: readonly string[];
  /**
   * Keep a reference to add secrets learned later (a process's secrets resolved at its start);
   * default a new one. `secrets` are added to it.
   */
  redactor?: SecretRedactor;
}

/**
 * Fields whose value is a secret whatever it is, at the top level and one level down. A process's
 * `env` is censored whole: pm has no reason to log one, so one that is logged is a bug leaking it.
 */
const REDACT_PATHS = [
  'token',
  'apiToken',
  'password',
  'env',
  'headers.authorization',
  '*.token',
  '*.apiToken',
  '*.password',
  '*.env',
  '*.headers.authorization',
];

/**
 * Async because pino-pretty is loaded only when pretty output is chosen: JSON logging, the
 * daemon's normal case, never pays for it.
 */
export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const { level, format, destination = process.stdout } = checkOptions(options);
  const redactor = options.redactor ?? new SecretRedactor();
  for (const secret of options.secrets ?? []) redactor.add(secret);

  const pretty = format === 'pretty' || (format === 'auto' && isTerminal(destination));
  const stream: DestinationStream = pretty ? await prettyStream(destination) : destination;
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      hooks: {
        // The finished line, not the arguments: this one place sees the message after
        // interpolation, every field at any depth, child bindings and error stacks alike.
        streamWrite: (line) => redactor.redactJsonLine(line),
      },
    },
    stream,
  );
}

/** A logger for one managed process: every line it writes names the process. */
export function processLogger(logger: Logger, name: string): Logger {
  return logger.child({ process: name });
}

function checkOptions(options: LoggerOptions): LoggerOptions {
  if (!logLevels.includes(options.level)) {
    throw new TypeError(`log level ${JSON.stringify(options.level)} is not one of ${logLevels.join(', ')}`);
  }
  if (!logFormats.includes(options.format)) {
    throw new TypeError(`log format ${JSON.stringify(options.format)} is not one of ${logFormats.join(', ')}`);
  }
  return options;
}

function isTerminal(stream: NodeJS.WritableStream): boolean {
  return (stream as Partial<Pick<NodeJS.WriteStream, 'isTTY'>>).isTTY === true;
}

/**
 * pino-pretty's formatter called inline, rather than its transport stream: each line is written
 * before the log call returns, so nothing is lost when the daemon exits right after logging, and
 * the destination is never ended or destroyed by a stream pipeline.
 */
async function prettyStream(destination: NodeJS.WritableStream): Promise<DestinationStream> {
  const { prettyFactory } = await import('pino-pretty');
  const format = prettyFactory({
    colorize: isTerminal(destination),
    // The daemon is one process on one host: its pid and hostname are noise on a terminal, and
    // the managed process a line is about reads best in front of the message.
    // event: the message already starts with it (see Supervisor#event).
    ignore: 'pid,hostname,process,event',
    messageFormat: '{if process}[{process}] {end}{msg}',
    translateTime: 'SYS:standard',
  });
  return {
    write(line: string): void {
      destination.write(format(line));
    },
  };
}

/** What replaces a secret, found by field name or by value. */
export const REDACTED = '[redacted]';

/**
 * Values shorter than this are not searched for: one of one to three characters ("1", "on", "abc")
 * turns up inside timestamps, pids and ordinary words, and replacing it would wreck every line to
 * hide a value that guessing finds anyway.
 */
const MIN_SECRET_LENGTH = 4;

/** One JSON string literal, keys included: outside of strings, a JSON line has no quotes. */
const JSON_STRING = /"(?:[^"\\]|\\.)*"/g;

/**
 * Replaces known secret values wherever they appear. Shared by the logger and the daemon, which
 * adds secrets as it learns them (a process's secret env values, resolved at its start) and can
 * redact other text it shows (a hook's output in an event) the same way.
 */
export class SecretRedactor {
  readonly #secrets = new Set<string>();
  /** Any secret, in plain text; undefined while there is none. */
  #plain: RegExp | undefined;
  /** Any secret, as JSON escapes it inside a string: a cheap test before a line is taken apart. */
  #escaped: RegExp | undefined;

  constructor(secrets: Iterable<string> = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Secret values being redacted (those long enough to be, see MIN_SECRET_LENGTH). */
  get size(): number {
    return this.#secrets.size;
  }

  add(value: string): void {
    if (value.length < MIN_SECRET_LENGTH || this.#secrets.has(value)) return;
    this.#secrets.add(value);
    // Longest first: a secret containing another is replaced whole, not with its rest left showing.
    const ordered = [...this.#secrets].sort((a, b) => b.length - a.length);
    this.#plain = new RegExp(ordered.map(escapeRegExp).join('|'), 'g');
    this.#escaped = new RegExp(ordered.map((s) => escapeRegExp(JSON.stringify(s).slice(1, -1))).join('|'));
  }

  redact(text: string): string {
    return this.#plain === undefined ? text : text.replace(this.#plain, REDACTED);
  }

  /**
   * Redacts inside the string values (and keys) of one serialized JSON line. Each string is
   * decoded, redacted and encoded again, so the line stays valid JSON of the same shape: a secret
   * such as "5432" never touches a number, and a match never splits an escape sequence.
   */
  redactJsonLine(line: string): string {
    const escaped = this.#escaped;
    if (escaped === undefined || !escaped.test(line)) return line;
    return line.replace(JSON_STRING, (literal) => {
      if (!escaped.test(literal)) return literal;
      const value = JSON.parse(literal) as string;
      const redacted = this.redact(value);
      return redacted === value ? literal : JSON.stringify(redacted);
    });
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
