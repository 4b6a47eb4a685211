// Summary statistics of latency samples, in milliseconds.

export interface Summary {
  runs: number;
  median: number;
  /** Nearest-rank 99th percentile: with 200 runs, the second largest. */
  p99: number;
  min: number;
  max: number;
  mean: number;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error('summarize: no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  const rank = Math.max(1, Math.ceil(0.99 * n));
  return {
    runs: n,
    median,
    p99: sorted[rank - 1] as number,
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    mean: sorted.reduce((a, b) => a + b, 0) / n,
  };
}

/** Milliseconds with the precision the figure deserves: 2 decimals below 10 ms, 1 below 100, none above. */
export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms).toLocaleString('en-US')} ms`;
}
