// The config's one failure mode: it was refused, with every problem and where each came from.
import { ExitCode, PmError } from '../errors.js';

/** One problem with the configuration, located at its source. */
export interface ConfigIssue {
  /** Where the bad value came from: `file /etc/pm/config.yaml:3:5`, `env PM_PARALLEL`, `flag --parallel`. */
  where: string;
  message: string;
}

/** The configuration is invalid; nothing of it was applied. The message lists every issue. */
export class ConfigError extends PmError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], hint = 'fix the values above; `pm config show` prints the effective config and its sources') {
    const lines = issues.map((i) => `\n  ${i.where}: ${i.message}`).join('');
    super('E_CONFIG', `invalid configuration (${issues.length} problem${issues.length === 1 ? '' : 's'}); nothing was applied:${lines}`, {
      hint,
      exitCode: ExitCode.invalid,
    });
    this.issues = issues;
  }
}
