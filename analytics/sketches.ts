// The summaries the jobs keep per window: exact while small, bounded beyond a size, always mergeable (the
// partitions' partial windows are merged into one result) and serialisable (checkpoints, partial rows).
// Each is deterministic: the same events in the same order give the same bytes, which is what makes a
// re-run after a crash rewrite identical rows.
import { HyperLogLog } from './hll.ts';

export type DistinctJSON = { exact: string[] } | { hll: string };

/** Distinct strings: an exact set up to `limit`, then a HyperLogLog (about 1.6 % error). */
export class DistinctSet {
  private exact: Set<string> | null = new Set();
  private hll: HyperLogLog | null = null;

  constructor(readonly limit: number) {}

  add(item: string): void {
    if (this.hll) return this.hll.add(item);
    this.exact!.add(item);
    if (this.exact!.size > this.limit) this.toHll();
  }

  merge(other: DistinctSet): void {
    if (other.hll) {
      this.toHll();
      this.hll!.merge(other.hll);
    } else for (const item of other.exact!) this.add(item);
  }

  private toHll(): void {
    if (this.hll) return;
    this.hll = new HyperLogLog();
    for (const item of this.exact!) this.hll.add(item);
    this.exact = null;
  }

  get isExact(): boolean {
    return this.hll === null;
  }

  size(): number {
    return this.exact ? this.exact.size : Math.round(this.hll!.estimate());
  }

  toJSON(): DistinctJSON {
    return this.exact ? { exact: [...this.exact] } : { hll: this.hll!.toJSON() };
  }

  static fromJSON(json: DistinctJSON, limit: number): DistinctSet {
    const set = new DistinctSet(limit);
    if ('hll' in json) {
      set.exact = null;
      set.hll = HyperLogLog.fromJSON(json.hll);
    } else for (const item of json.exact) set.add(item);
    return set;
  }
}

/** Past this many samples a Quantiles switches from exact samples to log buckets. */
export const EXACT_SAMPLES = 2048;
/** Bucket growth factor: a bucket's representative is within 1 % of every value in it (as in DDSketch). */
const GAMMA = 1.02;
const LOG_GAMMA = Math.log(GAMMA);

export interface QuantilesJSON {
  n: number;
  max: number;
  samples?: number[];
  /** [bucket index, count], ascending; values ≤ 0 are counted in `zeros`. */
  buckets?: [number, number][];
  zeros?: number;
}

/**
 * Quantiles of non-negative numbers (latencies in ms): exact (nearest rank over every sample) up to
 * EXACT_SAMPLES, then log buckets with 1 % relative error. The maximum is always exact.
 */
export class Quantiles {
  count = 0;
  max = 0;
  private samples: number[] | null = [];
  private buckets: Map<number, number> | null = null;
  private zeros = 0;

  add(value: number): void {
    const v = Math.max(0, value);
    this.count++;
    if (v > this.max) this.max = v;
    if (this.samples) {
      this.samples.push(v);
      if (this.samples.length > EXACT_SAMPLES) this.toBuckets();
    } else this.bucket(v, 1);
  }

  private bucket(v: number, n: number): void {
    if (v <= 0) {
      this.zeros += n;
      return;
    }
    const i = Math.ceil(Math.log(v) / LOG_GAMMA);
    this.buckets!.set(i, (this.buckets!.get(i) ?? 0) + n);
  }

  private toBuckets(): void {
    if (this.buckets) return;
    this.buckets = new Map();
    for (const v of this.samples!) this.bucket(v, 1);
    this.samples = null;
  }

  merge(other: Quantiles): void {
    if (other.count === 0) return;
    this.max = Math.max(this.max, other.max);
    if (this.samples && other.samples && this.samples.length + other.samples.length <= EXACT_SAMPLES) {
      this.samples.push(...other.samples);
      this.count += other.count;
      return;
    }
    this.toBuckets();
    if (other.samples) for (const v of other.samples) this.bucket(v, 1);
    else {
      this.zeros += other.zeros;
      for (const [i, n] of other.buckets!) this.buckets!.set(i, (this.buckets!.get(i) ?? 0) + n);
    }
    this.count += other.count;
  }

  /** The q-quantile (0 < q ≤ 1) by nearest rank; undefined when empty. */
  quantile(q: number): number | undefined {
    if (this.count === 0) return undefined;
    const rank = Math.max(1, Math.ceil(q * this.count));
    if (this.samples) return [...this.samples].sort((a, b) => a - b)[rank - 1];
    if (rank <= this.zeros) return 0;
    let seen = this.zeros;
    for (const i of [...this.buckets!.keys()].sort((a, b) => a - b)) {
      seen += this.buckets!.get(i)!;
      if (seen >= rank) return Math.min(this.max, (2 * GAMMA ** i) / (GAMMA + 1));
    }
    return this.max;
  }

  toJSON(): QuantilesJSON {
    if (this.samples) return { n: this.count, max: this.max, samples: this.samples };
    return { n: this.count, max: this.max, zeros: this.zeros, buckets: [...this.buckets!.entries()].sort((a, b) => a[0] - b[0]) };
  }

  static fromJSON(json: QuantilesJSON): Quantiles {
    const q = new Quantiles();
    q.count = json.n;
    q.max = json.max;
    if (json.samples) q.samples = [...json.samples];
    else {
      q.samples = null;
      q.zeros = json.zeros ?? 0;
      q.buckets = new Map(json.buckets ?? []);
    }
    return q;
  }
}

/**
 * Counts per key, exact up to `cap` keys. Past cap × 1.25 keys the smallest counts are dropped down to
 * `cap` (ties broken by key, so the result is deterministic); a dropped key that comes back starts again
 * from zero, so beyond `cap` distinct keys the top entries are exact only if they stayed above the cut.
 */
export class TopCounts {
  readonly counts = new Map<string, number>();

  constructor(readonly cap: number) {}

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
    if (this.counts.size > this.cap * 1.25) {
      const keep = this.top(this.cap);
      this.counts.clear();
      for (const [k, v] of keep) this.counts.set(k, v);
    }
  }

  /** The `k` largest, count descending then key ascending. */
  top(k: number): [string, number][] {
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).slice(0, k);
  }

  toJSON(): [string, number][] {
    return [...this.counts.entries()];
  }

  static fromJSON(entries: [string, number][], cap: number): TopCounts {
    const t = new TopCounts(cap);
    for (const [k, v] of entries) t.counts.set(k, v);
    return t;
  }
}
