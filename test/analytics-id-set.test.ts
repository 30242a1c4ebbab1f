// The analytics jobs' set of message ids (duplicate filter, backlog): kept against a Set<string> of the same
// strings through random adds, lookups and deletes, across growth and the ids that do not fit 64 bits.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { IdSet } from '../analytics/id-set.ts';
import { IdGenerator } from '../common/ids.ts';

/** A deterministic generator (mulberry32), so a failure repeats. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('IdSet', () => {
  for (const [ids, note] of [
    [20_000, 'across growth'],
    [600, 'in a full first table, where probe runs wrap around its end'],
  ] as const) {
    it(`answers as a Set<string> would through 200,000 random adds, lookups and deletes of ${ids} Snowflake ids, ${note}`, () => {
      const rnd = random(ids);
      const generator = new IdGenerator(5);
      const pool: string[] = [];
      // Ids of a few seconds, as a minute window holds them: many share their high half.
      let now = Date.UTC(2026, 11, 5, 12);
      for (let i = 0; i < ids; i++) {
        if (rnd() < 0.01) now += 1;
        pool.push(generator.next(now).id);
      }
      const set = new IdSet();
      const model = new Set<string>();
      for (let op = 0; op < 200_000; op++) {
        const id = pool[Math.floor(rnd() * pool.length)];
        const r = rnd();
        if (r < 0.5) assert.equal(set.add(id), model.size !== model.add(id).size, `add ${id}`);
        else if (r < 0.75) assert.equal(set.delete(id), model.delete(id), `delete ${id}`);
        else assert.equal(set.has(id), model.has(id), `has ${id}`);
        assert.equal(set.size, model.size);
      }
      for (const id of pool) assert.equal(set.has(id), model.has(id), `has ${id} at the end`);
    });
  }

  it('keeps every id through growth, and finds all of them after deletes in long probe runs', () => {
    const set = new IdSet();
    // Consecutive sequence numbers of one ms and node: the low halves differ in the last bits only.
    const base = 123_456_789n << 22n;
    const all = Array.from({ length: 100_000 }, (_, i) => (base + BigInt(i)).toString());
    for (const id of all) assert.equal(set.add(id), true);
    assert.equal(set.size, all.length);
    for (const id of all) assert.equal(set.add(id), false, `${id} again`);
    for (let i = 0; i < all.length; i += 3) assert.equal(set.delete(all[i]), true);
    for (let i = 0; i < all.length; i++) assert.equal(set.has(all[i]), i % 3 !== 0, `${all[i]}`);
    assert.equal(set.size, all.length - Math.ceil(all.length / 3));
  });

  it('tells apart strings that are one number and keeps ids outside 64 bits exactly', () => {
    const set = new IdSet(['7', '0', '9223372036854775807', '4294967296', '4294967295']);
    // A leading zero is another string; 2^63 and above, and 20 digits, do not fit the table and still count.
    for (const id of ['07', '00', '9223372036854775808', '18446744073709551616', '99999999999999999999', '', 'x1', '1x', '-1', '１']) {
      assert.equal(set.has(id), false, id);
      assert.equal(set.add(id), true, id);
      assert.equal(set.has(id), true, id);
      assert.equal(set.add(id), false, id);
    }
    assert.equal(set.size, 15);
    for (const id of ['7', '0', '9223372036854775807', '4294967296', '4294967295']) assert.equal(set.has(id), true, id);
    // 2^32 and 2^32 - 1 differ only across the halves.
    assert.equal(set.delete('4294967296'), true);
    assert.equal(set.has('4294967295'), true);
    assert.equal(set.has('4294967296'), false);
    assert.equal(set.delete('07'), true);
    assert.equal(set.has('7'), true);
    assert.equal(set.delete('07'), false);
    assert.equal(set.size, 13);
  });
});
