// The OfflineQueue contract: every message a receiver has not acked is kept, per user, oldest first,
// byte-exact, until its removal; past `max` the oldest go. A backend with `reopen` must also keep all of
// it across a restart.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { OfflineQueue, QueuedMessage } from '../../broker/offline-queue.ts';
import { IdGenerator } from '../../common/ids.ts';
import { rand, type Fixture } from './support.ts';

export type OfflineQueueFactory = (opts: { max: number }) => Promise<Fixture<OfflineQueue>>;

/** The max of the main fixture: above the compaction test's 12,000 messages for one user. */
const MAX = 20_000;
const ALL = 1_000_000;

export const hardPayloads: readonly string[] = [
  '  leading,  inner   and trailing spaces  ',
  JSON.stringify({ kind: 'text', body: 'line one\nline two\r\n\ttabbed "quoted" \\ backslash \u0000 nul' }),
  'ünïcødé 🌸 李小龍 עברית e\u0301 \u2028 \u2029 \u0085 \ufeff',
  '+ someone 123 a record-looking payload',
  '- someone 123',
  '123 456 starts like an id',
  '',
  'x'.repeat(64 * 1024),
];

export function offlineQueueContract(name: string, make: OfflineQueueFactory): void {
  describe(`OfflineQueue contract: ${name}`, () => {
    let f: Fixture<OfflineQueue>;
    let q: OfflineQueue;
    const ids = new IdGenerator(7);
    const user = () => `u${rand()}`;
    const msg = (payload?: string): QueuedMessage => {
      const { id, ts } = ids.next();
      return { id, payload: payload ?? JSON.stringify({ id, from: 'alice', to: 'bob', ts, kind: 'text', body: `hello ${id}` }) };
    };
    const batchFor = (userId: string, messages: QueuedMessage[]) => messages.map((message) => ({ userId, message }));

    before(async () => {
      f = await make({ max: MAX });
      q = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('lists a pushed batch oldest first, and its length', async () => {
      const u = user();
      const ms = [msg(), msg(), msg()];
      await q.push(batchFor(u, ms));
      assert.deepEqual(await q.list(u, 100), ms);
      assert.equal(await q.length(u), 3);
      const more = [msg(), msg()];
      await q.push(batchFor(u, more));
      assert.deepEqual(await q.list(u, 100), [...ms, ...more], 'a later push goes after');
    });

    it('lists at most `limit`, taking the oldest', async () => {
      const u = user();
      const ms = [msg(), msg(), msg(), msg()];
      await q.push(batchFor(u, ms));
      assert.deepEqual(await q.list(u, 2), ms.slice(0, 2));
      assert.deepEqual(await q.list(u, 1), ms.slice(0, 1));
      assert.deepEqual(await q.list(u, 0), [], 'limit 0 lists nothing');
      assert.equal(await q.length(u), 4, 'listing removes nothing');
    });

    it('keeps users apart, even within one batch', async () => {
      const [a, b, c] = [user(), user(), user()];
      const [a1, b1, a2, b2] = [msg(), msg(), msg(), msg()];
      await q.push([
        { userId: a, message: a1 },
        { userId: b, message: b1 },
        { userId: a, message: a2 },
        { userId: b, message: b2 },
      ]);
      assert.deepEqual(await q.list(a, 100), [a1, a2]);
      assert.deepEqual(await q.list(b, 100), [b1, b2]);
      await q.remove(a, a1);
      await q.remove(b, a2); // a's message removed from b's queue: nothing happens to either
      assert.deepEqual(await q.list(a, 100), [a2]);
      assert.deepEqual(await q.list(b, 100), [b1, b2]);
      assert.deepEqual(await q.list(c, 100), []);
      assert.equal(await q.length(c), 0);
    });

    it('pushes the same message to every recipient of a group in one batch', async () => {
      const members = [user(), user(), user()];
      const m = msg();
      await q.push(members.map((userId) => ({ userId, message: m })));
      for (const u of members) assert.deepEqual(await q.list(u, 10), [m]);
      await q.remove(members[1], m);
      assert.deepEqual(await q.list(members[0], 10), [m]);
      assert.deepEqual(await q.list(members[1], 10), []);
      assert.deepEqual(await q.list(members[2], 10), [m]);
    });

    it('removes one from the middle and keeps the order of the rest', async () => {
      const u = user();
      const ms = [msg(), msg(), msg(), msg(), msg()];
      await q.push(batchFor(u, ms));
      await q.remove(u, ms[2]);
      assert.deepEqual(await q.list(u, 100), [ms[0], ms[1], ms[3], ms[4]]);
      await q.remove(u, ms[0]);
      await q.remove(u, ms[4]);
      assert.deepEqual(await q.list(u, 100), [ms[1], ms[3]]);
      assert.equal(await q.length(u), 2);
    });

    it('removes many at once, not waiting for each: repeated, missing and across users, each settled', async () => {
      const [a, b] = [user(), user()];
      const ms = [msg(), msg(), msg(), msg()];
      await q.push([...batchFor(a, ms), ...batchFor(b, ms)]);
      // Issued together, as the PUBACKs of one socket read are.
      await Promise.all([q.remove(a, ms[1]), q.remove(b, ms[0]), q.remove(a, ms[1]), q.remove(a, msg()), q.remove(user(), ms[2]), q.remove(b, ms[3]), q.remove(a, ms[3])]);
      assert.deepEqual(await q.list(a, 100), [ms[0], ms[2]]);
      assert.deepEqual(await q.list(b, 100), [ms[1], ms[2]]);
    });

    it('accepts removing what is not there', async () => {
      const u = user();
      const ms = [msg(), msg()];
      await q.push(batchFor(u, ms));
      await q.remove(u, ms[0]);
      await q.remove(u, ms[0]); // an ack that arrives twice
      await q.remove(u, msg()); // never queued
      await q.remove(user(), ms[1]); // a user with no queue
      assert.deepEqual(await q.list(u, 100), [ms[1]]);
      assert.equal(await q.length(u), 1);
    });

    it('keeps payloads byte-exact: spaces, escaped newlines, unicode, record-like text, 64 KiB', async () => {
      const u = user();
      const ms = hardPayloads.map((p) => msg(p));
      await q.push(batchFor(u, ms));
      const listed = await q.list(u, 100);
      assert.equal(listed.length, ms.length);
      for (const [i, m] of ms.entries()) {
        assert.equal(listed[i].id, m.id);
        assert.ok(Buffer.from(listed[i].payload).equals(Buffer.from(m.payload)), `payload #${i} ${JSON.stringify(m.payload.slice(0, 40))}`);
      }
      await q.remove(u, ms[1]);
      assert.deepEqual(await q.list(u, 100), [ms[0], ...ms.slice(2)]);
    });

    it('round-trips 1000 messages in order, pushed in one batch and one by one', async () => {
      const u = user();
      const ms = Array.from({ length: 1000 }, () => msg());
      await q.push(batchFor(u, ms.slice(0, 500)));
      // Concurrent single pushes are still queued in call order.
      await Promise.all(ms.slice(500).map((m) => q.push([{ userId: u, message: m }])));
      assert.equal(await q.length(u), 1000);
      assert.deepEqual(await q.list(u, ALL), ms);
      assert.deepEqual(await q.list(u, 10), ms.slice(0, 10));
      await Promise.all(ms.filter((_, i) => i % 2 === 0).map((m) => q.remove(u, m)));
      assert.deepEqual(await q.list(u, ALL), ms.filter((_, i) => i % 2 === 1));
      await Promise.all(ms.map((m) => q.remove(u, m)));
      assert.equal(await q.length(u), 0);
      assert.deepEqual(await q.list(u, ALL), []);
    });

    it('drops the oldest past max, whether pushed in one batch or many', async () => {
      const small = await make({ max: 3 });
      try {
        let sq = small.adapter;
        const [a, b] = [user(), user()];
        const ms = [msg(), msg(), msg(), msg(), msg()];
        await sq.push(batchFor(a, ms));
        assert.deepEqual(await sq.list(a, 100), ms.slice(2));
        assert.equal(await sq.length(a), 3);
        for (const m of ms) await sq.push([{ userId: b, message: m }]);
        assert.deepEqual(await sq.list(b, 100), ms.slice(2));
        const m6 = msg();
        await sq.push([{ userId: a, message: m6 }]);
        assert.deepEqual(await sq.list(a, 100), [ms[3], ms[4], m6]);
        await sq.remove(a, ms[3]);
        assert.deepEqual(await sq.list(a, 100), [ms[4], m6], 'a removal makes room without dropping more');
        if (small.reopen) {
          sq = await small.reopen();
          assert.deepEqual(await sq.list(a, 100), [ms[4], m6], 'the cap holds after a reopen');
          assert.deepEqual(await sq.list(b, 100), ms.slice(2));
        }
      } finally {
        await small.cleanup();
      }
    });

    describe('across a reopen', () => {
      it('keeps everything pushed and forgets everything removed', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const [a, b] = [user(), user()];
        const ms = hardPayloads.map((p) => msg(p));
        const bs = [msg(), msg(), msg()];
        await q.push(batchFor(a, ms));
        await q.push(batchFor(b, bs));
        await q.remove(a, ms[0]);
        await q.remove(b, bs[1]);
        await q.remove(b, bs[2]);
        q = await f.reopen();
        assert.deepEqual(await q.list(a, 100), ms.slice(1));
        assert.deepEqual(await q.list(b, 100), [bs[0]]);
        assert.equal(await q.length(a), ms.length - 1);
        const next = msg();
        await q.push([{ userId: b, message: next }]);
        assert.deepEqual(await q.list(b, 100), [bs[0], next], 'new pushes go after the old ones');
      });

      it('keeps exactly the live set after 12,000 pushes and 11,000 removals', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const [u, other] = [user(), user()];
        const ms = Array.from({ length: 12_000 }, () => msg());
        for (let i = 0; i < ms.length; i += 2000) await q.push(batchFor(u, ms.slice(i, i + 2000)));
        const untouched = [msg(), msg()];
        await q.push(batchFor(other, untouched));
        const live = ms.filter((_, i) => i % 12 === 5);
        await Promise.all(ms.filter((_, i) => i % 12 !== 5).map((m) => q.remove(u, m)));
        assert.deepEqual(await q.list(u, ALL), live, 'before the reopen');
        q = await f.reopen();
        assert.equal(await q.length(u), live.length);
        assert.deepEqual(await q.list(u, ALL), live, 'after the reopen');
        assert.deepEqual(await q.list(other, ALL), untouched);
        await q.remove(u, live[0]);
        q = await f.reopen();
        assert.deepEqual(await q.list(u, ALL), live.slice(1), 'a removal after the reopen also lasts');
      });
    });
  });
}
