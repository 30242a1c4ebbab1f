// Latency histogram with log-spaced buckets (about 1% wide), so workers can send their counts to the
// orchestrator as a plain array and the orchestrator can merge them before reading percentiles.
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** Values are microseconds; 2,000 buckets of 1% reach past 400 s. */
export const BUCKETS = 2000;

export function newHistogram(): number[] {
  return new Array<number>(BUCKETS).fill(0);
}

export function bucketOf(micros: number): number {
  if (micros < 1) return 0;
  const b = Math.floor(Math.log(micros) / LOG_GROWTH) + 1;
  return b >= BUCKETS ? BUCKETS - 1 : b;
}

/** The upper bound of a bucket, in microseconds (bucket 0 holds everything under 1 µs). */
export function upperOf(bucket: number): number {
  return bucket === 0 ? 1 : Math.pow(GROWTH, bucket);
}

export function record(h: number[], micros: number): void {
  h[bucketOf(micros)]++;
}

export function merge(into: number[], from: readonly number[]): number[] {
  for (let i = 0; i < BUCKETS; i++) into[i] += from[i] ?? 0;
  return into;
}

export function count(h: readonly number[]): number {
  let n = 0;
  for (const c of h) n += c;
  return n;
}

/** The value (ms) below which a fraction `q` of the samples fall; null for an empty histogram. */
export function quantileMs(h: readonly number[], q: number): number | null {
  const total = count(h);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(total * q));
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += h[i];
    if (seen >= rank) return upperOf(i) / 1000;
  }
  return upperOf(BUCKETS - 1) / 1000;
}

export function maxMs(h: readonly number[]): number | null {
  for (let i = BUCKETS - 1; i >= 0; i--) if (h[i] > 0) return upperOf(i) / 1000;
  return null;
}
