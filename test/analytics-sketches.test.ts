// The analytics summaries on their own: HyperLogLog accuracy and merging, the exact-then-HLL distinct set,
// exact-then-bucketed quantiles, top counts; each survives its JSON form unchanged.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { HyperLogLog } from '../analytics/hll.ts';
import { DistinctSet, EXACT_SAMPLES, Quantiles, TopCounts } from '../analytics/sketches.ts';

const within = (actual: number, expected: number, relative: number) =>
  assert.ok(Math.abs(actual - expected) <= expected * relative, `${actual} is not within ${relative * 100} % of ${expected}`);

describe('HyperLogLog', () => {
  it('estimates 100 000 distinct items within 5 % (standard error about 1.6 %) and ignores repeats', () => {
    const h = new HyperLogLog();
    for (let i = 0; i < 100_000; i++) h.add(`user-${i}`);
    const once = h.estimate();
    for (let i = 0; i < 100_000; i += 7) h.add(`user-${i}`);
    assert.equal(h.estimate(), once);
    within(once, 100_000, 0.05);
  });

  it('is close for small counts (linear counting) and merges to the union', () => {
    const a = new HyperLogLog();
    const b = new HyperLogLog();
    for (let i = 0; i < 20; i++) a.add(`u${i}`);
    assert.ok(Math.abs(a.estimate() - 20) < 1, `${a.estimate()}`);
    for (let i = 0; i < 30_000; i++) a.add(`x${i}`);
    for (let i = 15_000; i < 45_000; i++) b.add(`x${i}`);
    a.merge(b);
    within(a.estimate(), 45_020, 0.05);
  });

  it('reads back the same registers from its JSON', () => {
    const h = new HyperLogLog();
    for (let i = 0; i < 5000; i++) h.add(String(i));
    const back = HyperLogLog.fromJSON(JSON.parse(JSON.stringify(h)));
    assert.deepEqual(back.registers, h.registers);
    assert.throws(() => HyperLogLog.fromJSON('AAAA'), RangeError);
  });
});

describe('DistinctSet', () => {
  it('is exact up to its limit, then a HyperLogLog', () => {
    const s = new DistinctSet(100);
    for (let i = 0; i < 100; i++) s.add(`u${i % 100}`);
    for (let i = 0; i < 100; i++) s.add(`u${i}`);
    assert.equal(s.size(), 100);
    assert.ok(s.isExact);
    s.add('one more');
    assert.ok(!s.isExact);
    within(s.size(), 101, 0.05);
  });

  it('merges exactly while the union fits, and round-trips through JSON', () => {
    const a = new DistinctSet(10);
    const b = new DistinctSet(10);
    ['a', 'b', 'c'].forEach((x) => a.add(x));
    ['c', 'd'].forEach((x) => b.add(x));
    a.merge(b);
    assert.equal(a.size(), 4);
    assert.deepEqual(DistinctSet.fromJSON(JSON.parse(JSON.stringify(a)), 10).toJSON(), { exact: ['a', 'b', 'c', 'd'] });
    const big = new DistinctSet(10);
    for (let i = 0; i < 500; i++) big.add(`n${i}`);
    a.merge(big);
    assert.ok(!a.isExact);
    within(a.size(), 504, 0.05);
    assert.equal(DistinctSet.fromJSON(JSON.parse(JSON.stringify(a)), 10).size(), a.size());
  });
});

describe('Quantiles', () => {
  it('gives exact nearest-rank percentiles while small', () => {
    const q = new Quantiles();
    for (let v = 100; v >= 1; v--) q.add(v);
    assert.deepEqual([q.quantile(0.5), q.quantile(0.95), q.quantile(0.99), q.quantile(1), q.max, q.count], [50, 95, 99, 100, 100, 100]);
    assert.equal(new Quantiles().quantile(0.5), undefined);
    const one = new Quantiles();
    one.add(-5); // clock skew: a negative latency counts as 0
    assert.equal(one.quantile(0.99), 0);
  });

  it(`switches to 1 %-accurate buckets past ${EXACT_SAMPLES} samples; merging and JSON keep the answers`, () => {
    const q = new Quantiles();
    for (let v = 1; v <= 10_000; v++) q.add(v);
    within(q.quantile(0.5)!, 5000, 0.02);
    within(q.quantile(0.99)!, 9900, 0.02);
    assert.equal(q.max, 10_000);
    const other = new Quantiles();
    for (let v = 10_001; v <= 20_000; v++) other.add(v);
    q.merge(other);
    assert.equal(q.count, 20_000);
    within(q.quantile(0.5)!, 10_000, 0.02);
    const back = Quantiles.fromJSON(JSON.parse(JSON.stringify(q)));
    assert.equal(back.quantile(0.95), q.quantile(0.95));
    const small = new Quantiles();
    [3, 1, 2].forEach((v) => small.add(v));
    const small2 = Quantiles.fromJSON(JSON.parse(JSON.stringify(small)));
    small2.merge(small);
    assert.deepEqual([small2.count, small2.quantile(0.5), small2.quantile(1)], [6, 2, 3]);
  });
});

describe('TopCounts', () => {
  it('ranks by count, then by key, and keeps the largest when it outgrows its cap', () => {
    const t = new TopCounts(4);
    for (const [key, n] of [['b', 3], ['a', 3], ['c', 5], ['d', 1], ['e', 2]] as const) t.add(key, n);
    assert.deepEqual(t.top(3), [['c', 5], ['a', 3], ['b', 3]]);
    t.add('f'); // 6 keys > 4 × 1.25: the two smallest go
    assert.deepEqual(t.top(10), [['c', 5], ['a', 3], ['b', 3], ['e', 2]]);
    assert.deepEqual(TopCounts.fromJSON(JSON.parse(JSON.stringify(t)), 4).top(10), t.top(10));
  });
});
