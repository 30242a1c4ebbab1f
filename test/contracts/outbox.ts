// The Outbox contract: every accepted message's event-log record is kept, in acceptance order, until the
// shipper drops it; peek reads from the head, drop removes from the head. A backend with `reopen` must also
// keep every record appended and not dropped across a restart, and only those.
//
// What goes in is what callers make (broker/accept.ts, eventRecord): a key that is a conversation id
// (`u:{a}:{b}` or `g:{groupId}`, ids of PROTOCOL.md's character sets) and a value that is an event as JSON
// (common/event-log.ts, LogRecord), which never holds a raw newline or tab. Both adapters store a record
// as `key<TAB>value`, one per line in the embedded file, so the suite checks the records the port is given,
// not arbitrary strings.
import assert from '../helpers/assert.ts';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { LogRecord } from '../../common/event-log.ts';
import type { Outbox } from '../../broker/outbox.ts';
import { IdGenerator } from '../../common/ids.ts';
import { rand, sleep, type Fixture } from './support.ts';

export type OutboxFactory = () => Promise<Fixture<Outbox>>;

const ALL = 1_000_000;
/** What the shipper peeks and drops at a time (broker/outbox-shipper.ts). */
const BATCH = 1000;

/** Event values as hard as a caller can make them: bodies that JSON escapes, and text JSON leaves raw. */
export const hardBodies: readonly string[] = [
  'line one\nline two\r\n\ttabbed "quoted" \\ backslash \u0000 nul \u001f',
  'ünïcødé 🌸 李小龍 עברית e\u0301 \u2028 \u2029 \u0085 \ufeff',
  '\n+ u:alice:bob\t{"a record-looking body"}\n- 5\n',
  '- 3',
  '  leading, inner   and trailing spaces  ',
  '{"json":"inside","n":[1,2,3]}',
];

export function outboxContract(name: string, make: OutboxFactory): void {
  describe(`Outbox contract: ${name}`, () => {
    let f: Fixture<Outbox>;
    let outbox: Outbox;
    const ids = new IdGenerator(11);
    const users = ['alice', 'bob', 'carol.b', 'd-4_x', '0z'];
    let seq = 0;

    /** A record as eventRecord() builds it, for a 1:1 conversation or a group. */
    const record = (body = `hello ${rand()}`, group?: string): LogRecord => {
      const { id, ts } = ids.next();
      seq++;
      // Two different users, varying from record to record.
      const [from, to] = [users[seq % users.length], users[(seq + 1 + (seq % 3)) % users.length]];
      const key = group ? `g:${group}` : from < to ? `u:${from}:${to}` : `u:${to}:${from}`;
      const message = JSON.stringify({ id, from, to: group ?? to, ...(group ? { group } : {}), ts, cid: `c-${rand()}`, kind: 'text', body });
      const head = JSON.stringify({ v: 1, type: 'message', transport: 'tcp', participants: [from, to] });
      return { key, value: `${head.slice(0, -1)},"message":${message}}` };
    };
    const records = (n: number) => Array.from({ length: n }, () => record());

    // One outbox per test: the port is a single queue, so tests would otherwise see each other's records.
    beforeEach(async () => {
      f = await make();
      outbox = f.adapter;
    });
    afterEach(async () => {
      await f?.cleanup();
    });

    it('starts empty', async () => {
      assert.equal(await outbox.length(), 0);
      assert.deepEqual(await outbox.peek(10), []);
    });

    it('peeks appended records oldest first, across several appends, and counts them', async () => {
      const first = records(3);
      await outbox.append(first);
      assert.deepEqual(await outbox.peek(100), first);
      assert.equal(await outbox.length(), 3);
      const second = records(2);
      await outbox.append(second);
      const third = [record()];
      await outbox.append(third);
      assert.deepEqual(await outbox.peek(100), [...first, ...second, ...third], 'a later append goes after');
      assert.equal(await outbox.length(), 6);
    });

    it('keeps the order of the calls for appends made without waiting, as the accept pipeline makes them', async () => {
      // storeForRecipients hands a message over and lets the next one hand over before the first is durable.
      const rs = records(300);
      const pending = rs.map((r) => outbox.append([r]));
      await Promise.all(pending);
      assert.deepEqual(await outbox.peek(ALL), rs);
      assert.equal(await outbox.length(), 300);
    });

    // Embedded: AppendLog.append queues a waiter even for no records, and commit() returns early when nothing
    // is pending (common/append-log.ts), so the promise waits for the next non-empty append. Redis returns.
    it('resolves an append of no records, and adds nothing', async () => {
      const before = records(2);
      await outbox.append(before);
      const outcome = await Promise.race([outbox.append([]).then(() => 'resolved'), sleep(2000).then(() => 'still pending after 2 s')]);
      assert.equal(outcome, 'resolved');
      assert.equal(await outbox.length(), 2);
      assert.deepEqual(await outbox.peek(10), before);
    });

    it('peeks at most `limit` from the head, removing nothing', async () => {
      const rs = records(5);
      await outbox.append(rs);
      assert.deepEqual(await outbox.peek(1), rs.slice(0, 1));
      assert.deepEqual(await outbox.peek(3), rs.slice(0, 3));
      assert.deepEqual(await outbox.peek(5), rs, 'exactly the length');
      assert.deepEqual(await outbox.peek(6), rs, 'more than the length gives all there is');
      assert.deepEqual(await outbox.peek(ALL), rs);
      assert.deepEqual(await outbox.peek(0), [], 'limit 0 gives nothing');
      assert.deepEqual(await outbox.peek(-1), [], 'a negative limit gives nothing');
      assert.deepEqual(await outbox.peek(-100), []);
      assert.equal(await outbox.length(), 5, 'peeking removes nothing');
      assert.deepEqual(await outbox.peek(2), rs.slice(0, 2), 'a second peek sees the same head');
    });

    it('drops the oldest `count`; the next peek starts after them', async () => {
      const rs = records(6);
      await outbox.append(rs);
      await outbox.drop(2);
      assert.equal(await outbox.length(), 4);
      assert.deepEqual(await outbox.peek(ALL), rs.slice(2));
      assert.deepEqual(await outbox.peek(1), [rs[2]]);
      await outbox.drop(1);
      assert.deepEqual(await outbox.peek(ALL), rs.slice(3));
      await outbox.drop(3);
      assert.equal(await outbox.length(), 0);
      assert.deepEqual(await outbox.peek(ALL), []);
    });

    it('drops nothing for a count of 0 or less', async () => {
      const rs = records(3);
      await outbox.append(rs);
      await outbox.drop(0);
      await outbox.drop(-1);
      await outbox.drop(-50);
      assert.equal(await outbox.length(), 3);
      assert.deepEqual(await outbox.peek(ALL), rs);
    });

    it('drops everything for a count past the length, and later appends start the outbox afresh', async () => {
      await outbox.append(records(4));
      await outbox.drop(10);
      assert.equal(await outbox.length(), 0);
      assert.deepEqual(await outbox.peek(ALL), []);
      await outbox.drop(5); // a drop of an empty outbox is fine
      const later = records(3);
      await outbox.append(later);
      assert.equal(await outbox.length(), 3, 'the surplus of the drop does not eat later records');
      assert.deepEqual(await outbox.peek(ALL), later);
    });

    it('drops only what was peeked, never records appended after the peek', async () => {
      // The shipper's cycle while messages keep arriving: peek a batch, ship it, drop that many.
      const shippedFirst = records(4);
      await outbox.append(shippedFirst);
      const batch = await outbox.peek(BATCH);
      const arrived = records(3);
      await outbox.append(arrived);
      await outbox.drop(batch.length);
      assert.deepEqual(batch, shippedFirst);
      assert.deepEqual(await outbox.peek(BATCH), arrived);
      assert.equal(await outbox.length(), 3);
    });

    it('keeps keys and values byte-exact: escaped control characters, unicode, record-like text, group keys', async () => {
      const longGroup = 'Aa0_-'.repeat(12) + 'zZ9_'; // 64 characters, GROUP_ID's limit
      const rs = [
        ...hardBodies.map((b) => record(b)),
        record('to a group', longGroup),
        record('🌸 to a short group', 'g'),
        record('x'.repeat(1000), 'Mixed_Case-Group'),
      ];
      await outbox.append(rs);
      const peeked = await outbox.peek(ALL);
      assert.equal(peeked.length, rs.length);
      for (const [i, r] of rs.entries()) {
        assert.equal(peeked[i].key, r.key, `key #${i}`);
        assert.ok(Buffer.from(peeked[i].value).equals(Buffer.from(r.value)), `value #${i} ${JSON.stringify(r.value.slice(0, 60))}`);
        assert.deepEqual(JSON.parse(peeked[i].value), JSON.parse(r.value));
      }
      await outbox.drop(1);
      assert.deepEqual(await outbox.peek(ALL), rs.slice(1));
    });

    it('keeps a 100 KB value whole, and its neighbours intact', async () => {
      const big = record('🌸'.repeat(12_500) + 'b'.repeat(50_000)); // 100 KB of body
      assert.ok(Buffer.byteLength(big.value) > 100_000);
      const rs = [record(), big, record()];
      await outbox.append(rs);
      assert.deepEqual(await outbox.peek(ALL), rs);
      await outbox.drop(1);
      const [head] = await outbox.peek(1);
      assert.equal(head.value.length, big.value.length);
      assert.equal(head.value, big.value);
    });

    it('ships 5,000 records in order through the shipper cycle, with appends in between', async () => {
      const rs = records(5000);
      const shipped: LogRecord[] = [];
      let next = 0;
      while (shipped.length < rs.length) {
        // Messages keep arriving in small bursts while the shipper works.
        if (next < rs.length) {
          await outbox.append(rs.slice(next, next + 700));
          next += 700;
        }
        const batch = await outbox.peek(BATCH);
        shipped.push(...batch);
        await outbox.drop(batch.length);
      }
      assert.equal(shipped.length, rs.length);
      assert.deepEqual(shipped, rs);
      assert.equal(await outbox.length(), 0);
    });

    describe('across a reopen', () => {
      it('keeps what was appended and not dropped, in order, and forgets what was dropped', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const rs = [...records(4), ...hardBodies.map((b) => record(b)), record('🌸'.repeat(25_000))];
        await outbox.append(rs.slice(0, 6));
        await outbox.drop(2);
        await outbox.append(rs.slice(6));
        await outbox.drop(1);
        outbox = await f.reopen();
        assert.equal(await outbox.length(), rs.length - 3);
        assert.deepEqual(await outbox.peek(ALL), rs.slice(3));
        const next = records(2);
        await outbox.append(next);
        assert.deepEqual(await outbox.peek(ALL), [...rs.slice(3), ...next], 'appends after the reopen go after the old records');
        await outbox.drop(4);
        outbox = await f.reopen();
        assert.deepEqual(await outbox.peek(ALL), [...rs.slice(7), ...next], 'a drop after the reopen also lasts');
      });

      it('is empty after a reopen once everything was dropped, and stays usable', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        await outbox.append(records(10));
        await outbox.drop(10);
        outbox = await f.reopen();
        assert.equal(await outbox.length(), 0);
        assert.deepEqual(await outbox.peek(ALL), []);
        const rs = records(2);
        await outbox.append(rs);
        outbox = await f.reopen();
        assert.deepEqual(await outbox.peek(ALL), rs);
      });

      it('keeps exactly the last 5,000 of 25,000 records after 20,000 drops in shipper batches', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const rs = records(25_000);
        for (let i = 0; i < rs.length; i += 2500) await outbox.append(rs.slice(i, i + 2500));
        for (let dropped = 0; dropped < 20_000; dropped += BATCH) {
          assert.deepEqual(await outbox.peek(BATCH), rs.slice(dropped, dropped + BATCH), `the head after ${dropped} drops`);
          await outbox.drop(BATCH);
        }
        const live = rs.slice(20_000);
        assert.deepEqual(await outbox.peek(ALL), live, 'before the reopen');
        outbox = await f.reopen();
        assert.equal(await outbox.length(), live.length);
        assert.deepEqual(await outbox.peek(ALL), live, 'after the reopen');
        await outbox.drop(1500);
        const more = records(3);
        await outbox.append(more);
        outbox = await f.reopen();
        assert.deepEqual(await outbox.peek(ALL), [...live.slice(1500), ...more], 'drops and appends after the reopen last too');
      });
    });
  });
}
