// Argument checks every bench script shares: a bad value ends the run with exit 2 and one line
// naming the bench and the option.

export interface BenchArgs {
  positiveInt(text: string, flag: string): number;
  nonNegativeInt(text: string, flag: string): number;
  usage(message: string): never;
  /**
   * --pm-daemon-args: flags added to `pm daemon`'s command line (`--memory-mode fast`), split at
   * spaces, for an A/B of the daemon's settings that a reader can re-run. No value: none.
   */
  daemonArgs(text: string | undefined): string[];
}

export function benchArgs(bench: string): BenchArgs {
  const usage = (message: string): never => {
    console.error(`${bench}: ${message}`);
    process.exit(2);
  };
  const wholeAtLeast = (min: number) => (text: string, flag: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) usage(`${flag} must be a whole number ≥ ${min}, got "${text}"`);
    return n;
  };
  const daemonArgs = (text: string | undefined): string[] => {
    const args = (text ?? '').split(/\s+/).filter((arg) => arg !== '');
    if (args.length > 0 && !args[0]?.startsWith('--')) usage(`--pm-daemon-args must begin with a flag of pm daemon, got "${text}"`);
    return args;
  };
  return { positiveInt: wholeAtLeast(1), nonNegativeInt: wholeAtLeast(0), usage, daemonArgs };
}
