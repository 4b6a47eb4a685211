// One class per failure mode a user can act on. Each carries a stable code (for scripts and
// logs) and the exit code the CLI should end with, so errors are reported once, at the top.

export const ExitCode = {
  ok: 0,
  /** Changes pending (diff), an action failed, or apply did not converge. */
  failed: 1,
  /** Invalid manifests, flags or arguments: nothing was changed. */
  invalid: 2,
  /** Another pm command holds the state lock: nothing was changed. */
  busy: 3,
  /** Interrupted (Ctrl-C / SIGTERM), as shells report a death by SIGINT. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class PmError extends Error {
  readonly code: string;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(code: string, message: string, options: { hint?: string; exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failed;
  }
}

/** Bad input on the command line: unknown flag, missing argument. */
export class UsageError extends PmError {
  constructor(message: string, hint?: string) {
    super('E_USAGE', message, { hint, exitCode: ExitCode.invalid });
  }
}

/** The manifest set is invalid; `issues` holds every problem found, each with its location. */
export class ManifestError extends PmError {
  readonly issues: readonly ManifestIssue[];
  constructor(issues: readonly ManifestIssue[]) {
    super('E_MANIFEST', `${issues.length} problem${issues.length === 1 ? '' : 's'} in the manifests; nothing was changed`, {
      exitCode: ExitCode.invalid,
    });
    this.issues = issues;
  }
}

/** A problem found in a manifest, located at file:line:col (1-based). */
export interface ManifestIssue {
  /** Stable identifier, e.g. `schema.required`, `dependency.cycle`. */
  code: string;
  /** Path as the user gave it (relative to the working directory where possible), or `-` for stdin. */
  file: string;
  line: number;
  col: number;
  message: string;
  /** One line telling the user what to do. */
  hint: string;
}

/** Another pm command is acting on the same state directory. */
export class LockBusyError extends PmError {
  constructor(message: string, hint: string) {
    super('E_LOCK_BUSY', message, { hint, exitCode: ExitCode.busy });
  }
}

/** A process pm was asked about does not exist in the state. */
export class NotFoundError extends PmError {
  constructor(name: string) {
    super('E_NOT_FOUND', `no process named "${name}" is managed here`, {
      hint: 'run `pm get` to list the processes pm manages',
      exitCode: ExitCode.failed,
    });
  }
}

/** Starting a process failed before it ran (bad command, cwd, user, missing secret). */
export class StartError extends PmError {
  /** What went wrong, without the process name (for places that already show it). */
  readonly problem: string;
  constructor(process: string, problem: string, hint?: string, cause?: unknown) {
    super('E_START', `${process}: ${problem}`, { hint, cause });
    this.problem = problem;
  }
}

/** `problem (hint)` for a start failure, shown next to the process's name. */
export function describeStartFailure(error: unknown): string {
  if (error instanceof StartError) return error.hint ? `${error.problem} (${error.hint})` : error.problem;
  return (error as Error).message;
}

export function formatManifestIssue(issue: ManifestIssue): string {
  return `${issue.file}:${issue.line}:${issue.col}: ${issue.message}\n  hint: ${issue.hint}`;
}
