// The AcceptStore contract: one store claims a message's (sender, cid) and puts it in every recipient's queue
// and the outbox; a later store of the same (sender, cid) gets the first claim back and writes nothing.
// The queue and outbox of the fixture read what the store wrote.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { AcceptStore, AcceptWrite, Stored } from '../../broker/accept-store.ts';
import type { OfflineQueue } from '../../broker/offline-queue.ts';
import type { Outbox } from '../../broker/outbox.ts';
import { IdGenerator } from '../../common/ids.ts';
import { hardPayloads } from './offline-queue.ts';
import { rand, sleep, type Fixture } from './support.ts';

export interface AcceptStoreFixture extends Fixture<AcceptStore> {
  queue: OfflineQueue;
  outbox: Outbox;
}

/** Each queue keeps at most this many messages in the fixture. */
export const ACCEPT_STORE_MAX = 50;
const DAY = 86_400;

/** A store's answer once it is written and durable both; `durable` must not settle before `written`. */
export async function both(s: Stored): Promise<string | null> {
  let written = false;
  let inOrder = false;
  const claim = s.written.then((c) => ((written = true), c));
  const durable = s.durable.then(() => {
    inOrder = written;
  });
  durable.catch(() => undefined); // awaited below unless `written` rejects first
  const answer = await claim;
  await durable;
  assert.ok(inOrder, 'durable settled before written');
  return answer;
}

export function acceptStoreContract(name: string, make: (opts: { max: number }) => Promise<AcceptStoreFixture>): void {
  describe(`AcceptStore contract: ${name}`, () => {
    let f: AcceptStoreFixture;
    let store: AcceptStore;
    const ids = new IdGenerator(9);
    const user = () => `u${rand()}`;
    const cid = () => `c-${rand()}`;
    /** A message from `sender` to `to`, with its claim value `{id}:{ts}` as the broker makes it. */
    const write = (sender: string, c: string, to: string[], payload?: (userId: string) => string, ttlSeconds = DAY): AcceptWrite => {
      const { id, ts } = ids.next();
      return {
        sender,
        cid: c,
        claim: `${id}:${ts}`,
        ttlSeconds,
        queue: to.map((userId) => ({ userId, message: { id, payload: payload?.(userId) ?? JSON.stringify({ id, from: sender, to: userId, ts, cid: c }) } })),
        outbox: [{ key: `${sender}:${to.join(',')}`, value: JSON.stringify({ v: 1, id, cid: c }) }],
      };
    };
    const outboxValues = async () => (await f.outbox.peek(1_000_000)).map((r) => r.value);

    before(async () => {
      f = await make({ max: ACCEPT_STORE_MAX });
      store = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('stores a message in every recipient queue and its record in the outbox', async () => {
      const [alice, bob, carol] = [user(), user(), user()];
      const before = await f.outbox.length();
      const w = write(alice, cid(), [bob, carol]);
      assert.equal(await both(store.store(w)), null, 'a new (sender, cid) is claimed');
      assert.deepEqual(await f.queue.list(bob, 10), [w.queue[0].message]);
      assert.deepEqual(await f.queue.list(carol, 10), [w.queue[1].message]);
      assert.equal(await f.queue.length(alice), 0, 'the sender is not a recipient');
      assert.equal(await f.outbox.length(), before + 1);
      assert.deepEqual((await outboxValues()).at(-1), w.outbox[0].value);
    });

    it('answers a repeated (sender, cid) with the first claim and writes nothing, whatever it carries', async () => {
      const [alice, bob, carol, c] = [user(), user(), user(), cid()];
      const first = write(alice, c, [bob]);
      assert.equal(await both(store.store(first)), null);
      const outboxBefore = await f.outbox.length();
      assert.equal(await both(store.store(write(alice, c, [bob]))), first.claim);
      assert.equal(await both(store.store(write(alice, c, [carol], () => 'another body'))), first.claim, 'another recipient and body');
      assert.deepEqual(await f.queue.list(bob, 10), [first.queue[0].message], 'one copy in the queue');
      assert.equal(await f.queue.length(carol), 0, 'nothing for the resend’s other recipient');
      assert.equal(await f.outbox.length(), outboxBefore, 'no second outbox record');
    });

    it('keeps different cids of one sender, and one cid of different senders, apart', async () => {
      const [alice, bob, carol, c] = [user(), user(), user(), cid()];
      const w = write(alice, c, [carol]);
      assert.equal(await both(store.store(w)), null);
      assert.equal(await both(store.store(write(alice, cid(), [carol]))), null, 'another cid of the same sender');
      assert.equal(await both(store.store(write(bob, c, [carol]))), null, 'the same cid from another sender');
      assert.equal(await both(store.store(write(alice, c, [carol]))), w.claim);
      assert.equal(await f.queue.length(carol), 3);
    });

    it('lets exactly one of concurrent stores of a cid win; only its message is stored', async () => {
      const [alice, bob, c] = [user(), user(), cid()];
      const writes = Array.from({ length: 10 }, () => write(alice, c, [bob]));
      const results = await Promise.all(writes.map((w) => both(store.store(w))));
      const winners = writes.filter((_, i) => results[i] === null);
      assert.equal(winners.length, 1, 'exactly one store wins');
      for (const r of results) if (r !== null) assert.equal(r, winners[0].claim);
      assert.deepEqual(await f.queue.list(bob, 100), [winners[0].queue[0].message]);
    });

    it('applies stores in the order they were called, without waiting for each', async () => {
      const [alice, bob] = [user(), user()];
      const writes = Array.from({ length: 200 }, () => write(alice, cid(), [bob]));
      const outboxBefore = await f.outbox.length();
      assert.deepEqual(await Promise.all(writes.map((w) => both(store.store(w)))), writes.map(() => null));
      assert.deepEqual(
        (await f.queue.list(bob, 1000)).map((m) => m.id),
        writes.slice(-ACCEPT_STORE_MAX).map((w) => w.queue[0].message.id),
        'the queue keeps the newest, in call order',
      );
      assert.deepEqual((await outboxValues()).slice(outboxBefore), writes.map((w) => w.outbox[0].value), 'the outbox in call order');
    });

    it('answers each of many stores issued at once on its own, a repeat within them included', async () => {
      const [alice, bob, carol, c1, c2] = [user(), user(), user(), cid(), cid()];
      const first = write(alice, c1, [bob]);
      const repeat = write(alice, c1, [carol]);
      const other = write(bob, c1, [alice, carol], undefined, 60);
      const second = write(alice, c2, [bob, carol]);
      // Issued in one turn, as the messages of one socket read are.
      const answers = await Promise.all([first, repeat, other, second].map((w) => both(store.store(w))));
      assert.deepEqual(answers, [null, first.claim, null, null]);
      assert.deepEqual(await f.queue.list(bob, 10), [first.queue[0].message, second.queue[0].message]);
      assert.deepEqual(await f.queue.list(carol, 10), [other.queue[1].message, second.queue[1].message], 'the repeat wrote nothing');
      assert.deepEqual(await f.queue.list(alice, 10), [other.queue[0].message]);
    });

    it('keeps each queue at its maximum, the oldest leaving, and the outbox whole', async () => {
      const [alice, bob] = [user(), user()];
      const writes = Array.from({ length: ACCEPT_STORE_MAX + 7 }, () => write(alice, cid(), [bob]));
      const outboxBefore = await f.outbox.length();
      for (const w of writes) await both(store.store(w));
      const kept = await f.queue.list(bob, 1000);
      assert.equal(kept.length, ACCEPT_STORE_MAX);
      assert.equal(kept[0].id, writes[7].queue[0].message.id, 'the 7 oldest left');
      assert.equal(await f.outbox.length(), outboxBefore + writes.length);
    });

    it('stores a group message for 150 members in one store', async () => {
      const sender = user();
      const members = Array.from({ length: 150 }, user);
      const w = write(sender, cid(), members, (userId) => JSON.stringify({ to: userId, group: 'g1' }));
      assert.equal(await both(store.store(w)), null);
      for (const [i, m] of members.entries()) assert.deepEqual(await f.queue.list(m, 10), [w.queue[i].message], `member ${i}`);
    });

    it('keeps payloads and claims byte-exact', async () => {
      const [alice, bob] = [user(), user()];
      const writes = hardPayloads.map((p) => write(alice, cid(), [bob], () => p));
      for (const w of writes) assert.equal(await both(store.store(w)), null);
      assert.deepEqual(await f.queue.list(bob, 100), writes.map((w) => w.queue[0].message));
      const odd = { ...write(alice, cid(), [bob]), claim: '7193846519238656 1718000000000 ünï 🌸 "quoted" \\ :' };
      await both(store.store(odd));
      assert.equal(await both(store.store({ ...write(alice, odd.cid, [bob]) })), odd.claim);
    });

    it('forgets a claim after its ttl: the cid can be stored again', async () => {
      const [alice, bob, c, c2] = [user(), user(), cid(), cid()];
      assert.equal(await both(store.store(write(alice, c, [bob], undefined, 1))), null);
      const kept = write(alice, c2, [bob], undefined, 60);
      await both(store.store(kept));
      await sleep(1200);
      assert.equal(await both(store.store(write(alice, c, [bob]))), null, 'stored again after the ttl');
      assert.equal(await both(store.store(write(alice, c2, [bob]))), kept.claim, 'a longer ttl is unaffected');
      assert.equal(await f.queue.length(bob), 3);
    });
  });
}
