// The embedded adapters' ExpiringMap (dedupe, tokens, throttle): expiry on read, an incremental sweep that
// removes expired entries nobody reads without a pass over the whole map on one write, and a hard bound.
import assert from './helpers/assert.ts';
import { test } from 'node:test';
import { ExpiringMap } from '../common/expiring-map.ts';

test('an entry is there until its lifetime ends, then gone on read', () => {
  const m = new ExpiringMap<string>();
  m.set('a', '1', 1000, 0);
  assert.equal(m.get('a', 999), '1');
  assert.equal(m.ttl('a', 400), 600);
  assert.equal(m.get('a', 1000), undefined);
  assert.equal(m.size, 0);
  assert.equal(m.setIfAbsent('b', 'first', 1000, 0), undefined);
  assert.equal(m.setIfAbsent('b', 'second', 1000, 10), 'first', 'a live entry is kept and returned');
  assert.equal(m.setIfAbsent('b', 'third', 1000, 1000), undefined, 'an expired one is replaced');
  assert.equal(m.get('b', 1001), 'third');
});

test('the sweep goes on where it stopped and looks at twice the entries written since the last one', () => {
  const m = new ExpiringMap<number>({ sweepAtLeast: 10 });
  // 1,000 entries that expire at 5.5 s, written at t=0 (the first write sweeps the empty map).
  for (let i = 0; i < 1000; i++) m.set(`old${i}`, i, 5500, 0);
  // A write at 1 s: its sweep may look at 2 × 1,000 entries (the writes since paid for it): one whole pass.
  m.set('w1', 1, 600_000, 1000);
  assert.equal(m.size, 1001, 'nothing had expired');
  // From here one write a second, so each sweep looks at 10 entries.
  for (let t = 2000; t <= 5000; t += 1000) m.set(`w${t / 1000}`, t, 600_000, t);
  m.set('w6', 6, 600_000, 6000);
  assert.equal(m.size, 1006 - 10, 'at 6 s, when all 1,000 have expired, one sweep removed 10 of them, not all');
  m.set('w7', 7, 600_000, 7000);
  assert.equal(m.size, 1007 - 20, 'the next went on from there');
  let t = 7000;
  while (m.size > 7 + (t - 7000) / 1000 && t < 200_000) m.set(`w${(t += 1000) / 1000}`, 0, 600_000, t);
  assert.ok(t < 200_000, 'the sweeps got through every expired entry');
  for (let i = 0; i < 1000; i++) assert.equal(m.get(`old${i}`, 1), undefined, 'gone without being read');
  assert.equal(m.get('w1', t), 1, 'live entries stay');
  assert.equal(m.size, 7 + (t - 7000) / 1000);
});

test('past maxEntries the oldest entry written makes room; the newest stay', () => {
  const m = new ExpiringMap<number>({ maxEntries: 100 });
  for (let i = 0; i < 250; i++) m.set(`k${i}`, i, 60_000, 0);
  assert.equal(m.size, 100);
  assert.equal(m.get('k149', 1), undefined);
  for (let i = 150; i < 250; i++) assert.equal(m.get(`k${i}`, 1), i);
  // Deleted entries do not confuse the order: what is dropped next is still the oldest one left.
  m.delete('k150');
  m.delete('k151');
  m.set('x', -1, 60_000, 2);
  m.set('y', -2, 60_000, 2);
  m.set('z', -3, 60_000, 2);
  assert.equal(m.size, 100);
  assert.equal(m.get('k152', 3), undefined, 'the oldest left made room');
  assert.equal(m.get('k153', 3), 153);
  assert.equal(m.get('z', 3), -3);
  m.clear();
  assert.equal(m.size, 0);
  m.set('after-clear', 1, 1000, 5);
  assert.equal(m.get('after-clear', 6), 1);
});
