// Memory per supervised process: the slope of a least-squares line through (processes, KiB).

export interface Line {
  /** KiB per process. */
  slope: number;
  /** KiB at zero processes: the manager's own baseline, as the line puts it. */
  intercept: number;
  /** How many points the line was fitted to. */
  points: number;
}

/** Ordinary least squares; undefined with fewer than two distinct x. */
export function fitLine(points: ReadonlyArray<readonly [x: number, y: number]>): Line | undefined {
  const n = points.length;
  if (new Set(points.map(([x]) => x)).size < 2) return undefined;
  const meanX = points.reduce((s, [x]) => s + x, 0) / n;
  const meanY = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  }
  const slope = sxy / sxx;
  return { slope, intercept: meanY - slope * meanX, points: n };
}
