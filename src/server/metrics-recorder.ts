// The daemon's own counters and its reconcile histogram, kept as plain numbers. They are written
// from the first reconcile on, but prom-client is only loaded at the first scrape (server/metrics.ts
// says why), so they cannot live in prom-client objects: these do, and hand prom-client their
// samples when it asks.
//
// get() answers in the shape prom-client's Registry formats (lib/registry.js, getMetricsAsString:
// name, help, type, and values of { metricName?, labels, value }), the shape its own Counter and
// Histogram return. prom-client still writes the text, so the exposition is what it was when these
// were prom-client metrics: same escaping, same number formatting, same label order.

/** One sample as prom-client's Registry formats it; metricName defaults to the metric's name. */
export interface Sample {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}

export interface MetricSamples {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  /** How prom-client's AggregatorRegistry (cluster mode) would merge workers; its own metrics say 'sum' too. */
  aggregator: 'sum';
  values: Sample[];
}

/** A series per label set, in the order the label sets were first seen (the order they are exposed in). */
abstract class Recorded<L extends string, S> {
  private readonly series = new Map<string, { labels: Record<L, string>; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
  ) {}

  protected abstract fresh(): S;

  /** The series exists from now on, at 0 if new: a rate over it is 0 rather than absent. */
  zero(labels: Readonly<Record<L, string>>): void {
    this.at(labels);
  }

  /** The series of these labels, created empty if new; its labels are stored in labelNames order, the order they are written in. */
  protected at(labels: Readonly<Record<L, string>>): S {
    const values = this.labelNames.map((n) => labels[n]);
    const key = JSON.stringify(values);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]])) as Record<L, string>, state: this.fresh() };
      this.series.set(key, entry);
    }
    return entry.state;
  }

  protected entries(): IterableIterator<{ labels: Record<L, string>; state: S }> {
    return this.series.values();
  }

  protected samples(type: MetricSamples['type'], values: Sample[]): MetricSamples {
    return { name: this.name, help: this.help, type, aggregator: 'sum', values };
  }
}

export class RecordedCounter<L extends string> extends Recorded<L, { value: number }> {
  protected fresh(): { value: number } {
    return { value: 0 };
  }

  inc(labels: Readonly<Record<L, string>>): void {
    this.at(labels).value += 1;
  }

  get(): Promise<MetricSamples> {
    const values = [...this.entries()].map(({ labels, state }) => ({ labels, value: state.value }));
    return Promise.resolve(this.samples('counter', values));
  }
}

interface HistogramSeries {
  /** Observations per bucket, not cumulative: inBucket[i] fell in (bounds[i-1], bounds[i]]. Those above the last bound are only in count. */
  inBucket: number[];
  sum: number;
  count: number;
}

export class RecordedHistogram<L extends string> extends Recorded<L, HistogramSeries> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly L[],
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
  }

  protected fresh(): HistogramSeries {
    return { inBucket: this.bounds.map(() => 0), sum: 0, count: 0 };
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    // prom-client refused these too: one NaN would make the sum NaN for the life of the daemon.
    if (!Number.isFinite(value)) throw new TypeError(`${this.name}: not a finite number: ${value}`);
    const series = this.at(labels);
    const bucket = this.bounds.findIndex((bound) => value <= bound);
    if (bucket >= 0) series.inBucket[bucket]! += 1;
    series.sum += value;
    series.count += 1;
  }

  /** Per series: the cumulative buckets, le="+Inf" (the count), _sum and _count, as prom-client's Histogram writes them. */
  get(): Promise<MetricSamples> {
    const values: Sample[] = [];
    for (const { labels, state } of this.entries()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += state.inBucket[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
      });
      values.push(
        { metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: state.count },
        { metricName: `${this.name}_sum`, labels, value: state.sum },
        { metricName: `${this.name}_count`, labels, value: state.count },
      );
    }
    return Promise.resolve(this.samples('histogram', values));
  }
}
