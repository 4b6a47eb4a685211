// Argument checks every bench script shares: a bad value ends the run with exit 2 and one line
// naming the bench and the option.

export interface BenchArgs {
  positiveInt(text: string, flag: string): number;
  nonNegativeInt(text: string, flag: string): number;
  usage(message: string): never;
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
  return { positiveInt: wholeAtLeast(1), nonNegativeInt: wholeAtLeast(0), usage };
}
