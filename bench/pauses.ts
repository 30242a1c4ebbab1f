// What Parley's own /metrics says about one bench step: how long its garbage collector paused it, how long
// the journal's fdatasyncs took until the event loop ran their callbacks (every ack waits for one) and its
// compactions (they hold the event loop), and the longest event-loop delay. Read before and after each step
// (prom-client resets its event-loop histogram at every read), so that a slow step can be told apart: GC, the
// disk, or neither (a neighbour, the scheduler). The relays have no /metrics.

/** A Prometheus histogram as read: cumulative bucket counts by upper bound (s), count, and sum (s). */
export interface HistogramSample {
  buckets: Map<number, number>;
  count: number;
  sum: number;
}

export interface MetricsSample {
  /** Sum and count of GC pauses by kind (minor, major, incremental, weakcb). */
  gc: Map<string, { sum: number; count: number }>;
  /** The journal's group-commit fdatasyncs. */
  fsync: HistogramSample;
  /** The journal's compactions. */
  compaction: HistogramSample;
  /** prom-client's event-loop delay max since the last read, in seconds. */
  loopMax: number;
}

const HISTOGRAMS = { parley_journal_fsync_seconds: 'fsync', parley_journal_compaction_seconds: 'compaction' } as const;
const emptyHistogram = (): HistogramSample => ({ buckets: new Map(), count: 0, sum: 0 });
const emptySample = (): MetricsSample => ({ gc: new Map(), fsync: emptyHistogram(), compaction: emptyHistogram(), loopMax: 0 });

export interface StepPauses {
  /** Total GC pause time in the step, ms. */
  gcMs: number;
  minorGcs: number;
  majorGcs: number;
  /** Journal fdatasyncs in the step (0 with Redis), and the bucket bound (ms) under which 99 % / all of them ended. */
  fsyncs: number;
  /** Their mean duration, ms (the histogram's sum over its count): finer than the bucket bounds. */
  fsyncMeanMs?: number | null;
  fsyncP99Ms: number | null;
  fsyncMaxMs: number | null;
  /** Journal compactions in the step, and the bucket bound (ms) under which all of them ended. */
  compactions: number;
  compactionMaxMs: number | null;
  /** Longest event-loop delay in the step, ms (prom-client samples every 10 ms, so ~10 ms is "none"). */
  loopMaxMs: number;
}

const SAMPLE = /^([a-z_]+)(?:\{([^}]*)\})? ([0-9.e+-]+|\+Inf|NaN)$/;

function labels(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of (text ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) out[m[1]] = m[2];
  return out;
}

/** The samples this module reads, from Prometheus text. */
export function parseMetrics(text: string): MetricsSample {
  const s = emptySample();
  for (const line of text.split('\n')) {
    const m = SAMPLE.exec(line);
    if (!m) continue;
    const [, name, rawLabels, rawValue] = m;
    const value = Number(rawValue);
    if (name === 'parley_process_nodejs_gc_duration_seconds_sum' || name === 'parley_process_nodejs_gc_duration_seconds_count') {
      const kind = labels(rawLabels).kind ?? 'unknown';
      const entry = s.gc.get(kind) ?? { sum: 0, count: 0 };
      if (name.endsWith('_sum')) entry.sum = value;
      else entry.count = value;
      s.gc.set(kind, entry);
    } else if (/_(bucket|count|sum)$/.test(name) && name.slice(0, name.lastIndexOf('_')) in HISTOGRAMS) {
      const h = s[HISTOGRAMS[name.slice(0, name.lastIndexOf('_')) as keyof typeof HISTOGRAMS]];
      if (name.endsWith('_bucket')) {
        const le = labels(rawLabels).le;
        h.buckets.set(le === '+Inf' ? Infinity : Number(le), value);
      } else if (name.endsWith('_count')) h.count = value;
      else h.sum = value;
    } else if (name === 'parley_process_nodejs_eventloop_lag_max_seconds') {
      s.loopMax = value;
    }
  }
  return s;
}

/**
 * Several processes' samples as one (a cluster's nodes): GC pauses and fdatasyncs added up, bucket by
 * bucket, so the quantiles are over all of them; the longest event-loop delay of any.
 */
export function mergeMetrics(samples: MetricsSample[]): MetricsSample {
  const out = emptySample();
  for (const s of samples) {
    for (const [kind, v] of s.gc) {
      const e = out.gc.get(kind) ?? { sum: 0, count: 0 };
      out.gc.set(kind, { sum: e.sum + v.sum, count: e.count + v.count });
    }
    for (const key of Object.values(HISTOGRAMS)) {
      const [into, from] = [out[key], s[key]];
      for (const [le, n] of from.buckets) into.buckets.set(le, (into.buckets.get(le) ?? 0) + n);
      into.count += from.count;
      into.sum += from.sum;
    }
    out.loopMax = Math.max(out.loopMax, s.loopMax);
  }
  return out;
}

/** The smallest bucket bound (ms) holding `q` of what the histogram counted in the step, from two cumulative snapshots. */
function bucketQuantileMs(before: HistogramSample, after: HistogramSample, q: number): number | null {
  const n = after.count - before.count;
  if (n <= 0) return null;
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  for (const le of bounds) {
    const inStep = (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0);
    if (inStep >= q * n) return le === Infinity ? Infinity : Math.round(le * 1e6) / 1e3;
  }
  return null;
}

export function pausesBetween(before: MetricsSample, after: MetricsSample): StepPauses {
  const gc = (kind: string, field: 'sum' | 'count') => (after.gc.get(kind)?.[field] ?? 0) - (before.gc.get(kind)?.[field] ?? 0);
  let gcSeconds = 0;
  for (const kind of after.gc.keys()) gcSeconds += gc(kind, 'sum');
  return {
    gcMs: Math.round(gcSeconds * 1e4) / 10,
    minorGcs: gc('minor', 'count'),
    majorGcs: gc('major', 'count'),
    fsyncs: after.fsync.count - before.fsync.count,
    fsyncMeanMs: after.fsync.count > before.fsync.count ? Math.round(((after.fsync.sum - before.fsync.sum) / (after.fsync.count - before.fsync.count)) * 1e6) / 1e3 : null,
    fsyncP99Ms: bucketQuantileMs(before.fsync, after.fsync, 0.99),
    fsyncMaxMs: bucketQuantileMs(before.fsync, after.fsync, 1),
    compactions: after.compaction.count - before.compaction.count,
    compactionMaxMs: bucketQuantileMs(before.compaction, after.compaction, 1),
    loopMaxMs: Math.round(after.loopMax * 1e4) / 10,
  };
}

/** Reads the broker's /metrics; null when it does not answer within a second (the step is measured anyway). */
export async function readMetrics(url: string): Promise<MetricsSample | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return null;
    return parseMetrics(await res.text());
  } catch {
    return null;
  }
}

const ms = (v: number | null) => (v === null ? '–' : v === Infinity ? '>1 s' : v < 1 ? v.toFixed(2) : String(v));

export function pausesText(p: StepPauses): string {
  const mean = p.fsyncMeanMs != null ? ` mean ${ms(p.fsyncMeanMs)}` : '';
  const fsync = p.fsyncs > 0 ? `  fsync ${p.fsyncs}${mean} p99≤${ms(p.fsyncP99Ms)} max≤${ms(p.fsyncMaxMs)} ms` : '';
  const compact = p.compactions > 0 ? `  compactions ${p.compactions} max≤${ms(p.compactionMaxMs)} ms` : '';
  return `gc ${p.gcMs} ms (${p.minorGcs} minor, ${p.majorGcs} major)${fsync}${compact}  loop max ${p.loopMaxMs} ms`;
}
