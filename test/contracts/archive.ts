// The Archive contract: every message once, under its conversation, newest first across page edges;
// time-range scans oldest first; receipt states only move forward; sync and the conversation list per
// participant; metric rows upserted; and ids built to collide (0x00, 0xff, prefixes, very long strings)
// never reach another conversation's rows. A backend with `reopen` must keep all of it across a restart.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Archive, ArchivedMessage, MetricPoint } from '../../consumers/archive.ts';
import { conversationOf } from '../../consumers/archive.ts';
import type { Envelope } from '../../common/envelope.ts';
import { IdGenerator, compareIds } from '../../common/ids.ts';
import { rand, type Fixture } from './support.ts';

export type ArchiveFactory = () => Promise<Fixture<Archive>>;

type Batch = { message: Envelope; participants: string[] }[];

const MAX_ID = '18446744073709551615';
const byIdDesc = (a: { id: string }, b: { id: string }) => compareIds(b.id, a.id);
const byIdAsc = (a: { id: string }, b: { id: string }) => compareIds(a.id, b.id);
const ids = (ms: readonly { id: string }[]) => ms.map((m) => m.id);

function shuffle<T>(items: readonly T[], seed = 7): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

export function archiveContract(name: string, make: ArchiveFactory): void {
  describe(`Archive contract: ${name}`, () => {
    let f: Fixture<Archive>;
    let archive: Archive;
    const gen = new IdGenerator(5);
    // Message times run ahead of the wall clock, so tests can place messages at chosen, distinct ms.
    let clock = Date.now() + 60_000;
    const tick = (ms = 1) => (clock += ms);
    const user = (label = 'u') => `${label}${rand()}`;
    let cids = 0;

    /** A message stamped as the broker does (id and ts from one generator); `at` fixes its ms. */
    const msg = (from: string, to: string, extra: Partial<Envelope> = {}, at = tick()): Envelope => {
      const { id, ts } = gen.next(at);
      return { id, from, to, ts, cid: `c${++cids}`, kind: 'text', body: `hello ${id}`, ...extra };
    };
    const groupMsg = (from: string, group: string, extra: Partial<Envelope> = {}, at = tick()) => msg(from, group, { group, ...extra }, at);
    const direct = (ms: Envelope[]): Batch => ms.map((message) => ({ message, participants: [message.from, message.to] }));
    const toGroup = (ms: Envelope[], members: string[]): Batch => ms.map((message) => ({ message, participants: members }));
    /** Everything a user can read, for before/after comparisons. */
    const snapshot = async (users: string[], conversations: string[]) => ({
      pages: await Promise.all(conversations.map((c) => archive.page(c, { limit: 1000 }))),
      syncs: await Promise.all(users.map((u) => archive.sync(u, { limit: 1000 }))),
      lists: await Promise.all(users.map((u) => archive.conversations(u, 100))),
    });

    before(async () => {
      f = await make();
      archive = f.adapter;
      await archive.ensureSchema();
    });
    after(async () => {
      await f?.cleanup();
    });

    it('creates its schema idempotently and answers ping', async () => {
      await archive.ensureSchema();
      assert.equal(await archive.ping(), true);
      assert.deepEqual(await archive.page(conversationOf({ from: user(), to: user() }), { limit: 10 }), []);
      assert.deepEqual(await archive.sync(user(), { limit: 10 }), []);
      assert.deepEqual(await archive.conversations(user(), 10), []);
    });

    it('reads back every field of text, attachment, group and reply messages', async () => {
      const [a, b, c] = [user(), user(), user()];
      const group = `grp-${rand()}`;
      const text = msg(a, b, { body: 'ünïcødé 🌸 李 \n line two \t "quoted" \\ \u0000 nul \u2028' });
      const file = msg(b, a, { kind: 'attachment', body: undefined, attachment: { key: `att/${rand()}`, name: 'photo (1).jpg', mime: 'image/jpeg', size: 123_456 } });
      const reply = msg(a, b, { body: 'yes', ref: text.id });
      delete file.body;
      const inGroup = groupMsg(c, group, { body: 'to all' });
      await archive.putMessages([...direct([text, file, reply]), ...toGroup([inGroup], [a, b, c])]);
      assert.deepEqual(await archive.page(conversationOf(text), { limit: 10 }), [reply, file, text]);
      assert.deepEqual(await archive.page(`g:${group}`, { limit: 10 }), [inGroup]);
      assert.equal((await archive.page(conversationOf(file), { limit: 10 }))[1].body, undefined, 'an absent field stays absent');
    });

    it('puts 1:1 messages of both directions in one conversation (conversationOf is symmetric)', async () => {
      const [a, b] = [user(), user()];
      const ms = [msg(a, b), msg(b, a), msg(a, b)];
      await archive.putMessages(direct(ms));
      assert.equal(conversationOf({ from: a, to: b }), conversationOf({ from: b, to: a }));
      assert.deepEqual(ids(await archive.page(conversationOf({ from: b, to: a }), { limit: 10 })), ids([...ms].reverse()));
    });

    it('pages 250 messages newest first, limit 50, with no gap or duplicate across page edges (equal ts included)', async () => {
      const [a, b] = [user(), user()];
      const start = tick(10);
      // Seven messages per ms: page edges fall inside runs of equal ts.
      const ms = Array.from({ length: 250 }, (_, i) => (i % 2 ? msg(a, b, {}, start + Math.floor(i / 7)) : msg(b, a, {}, start + Math.floor(i / 7))));
      tick(100);
      assert.ok(ms.some((m, i) => i > 0 && m.ts === ms[i - 1].ts), 'equal timestamps present');
      const batches = shuffle(ms);
      for (let i = 0; i < batches.length; i += 50) await archive.putMessages(direct(batches.slice(i, i + 50)));
      const conversation = conversationOf({ from: a, to: b });
      const expected = ids([...ms].sort(byIdDesc));

      const seen: string[] = [];
      let cursor: string | undefined;
      for (let pageNo = 0; pageNo < 5; pageNo++) {
        const page = await archive.page(conversation, { before: cursor, limit: 50 });
        assert.equal(page.length, 50, `page ${pageNo} is full`);
        if (cursor) assert.ok(page.every((m) => compareIds(m.id, cursor!) < 0), 'before is exclusive');
        seen.push(...ids(page));
        cursor = page[page.length - 1].id;
      }
      assert.deepEqual(seen, expected, 'five pages are the 250 messages newest first');
      assert.deepEqual(await archive.page(conversation, { before: cursor, limit: 50 }), [], 'nothing after the last page');

      assert.deepEqual(ids(await archive.page(conversation, { before: expected[100], limit: 3 })), expected.slice(101, 104));
      assert.deepEqual(ids(await archive.page(conversation, { limit: 1 })), expected.slice(0, 1));
      assert.deepEqual(ids(await archive.page(conversation, { limit: 500 })), expected, 'a limit above the count gives all');
      assert.deepEqual(ids(await archive.page(conversation, { before: '99999999999999999999999', limit: 2 })), expected.slice(0, 2), 'a cursor past every id');
      assert.deepEqual(await archive.page(conversation, { before: '0', limit: 10 }), []);
      assert.deepEqual(await archive.page(conversation, { limit: 0 }), []);
      // An id between two stored ones (not itself stored: ids jump at each new ms) is a valid cursor.
      const gap = expected.findIndex((id, i) => i > 0 && BigInt(expected[i - 1]) - BigInt(id) > 1n);
      const between = (BigInt(expected[gap - 1]) - 1n).toString();
      assert.ok(gap > 0 && compareIds(between, expected[gap]) > 0);
      assert.deepEqual(ids(await archive.page(conversation, { before: between, limit: 2 })), expected.slice(gap, gap + 2));
      await assert.rejects(archive.page(conversation, { before: '12ab', limit: 5 }), RangeError);
    });

    it('scans [from, to) oldest first, across its read chunks', async () => {
      const [a, b] = [user(), user()];
      const t0 = tick(1000);
      // Three messages in each of 300 ms.
      const ms = Array.from({ length: 900 }, (_, i) => msg(i % 3 ? a : b, i % 3 ? b : a, {}, t0 + Math.floor(i / 3)));
      tick(1000);
      await archive.putMessages(direct(shuffle(ms)));
      const conversation = conversationOf(ms[0]);
      const all = await collect(archive.scan(conversation, { from: t0, to: t0 + 300 }));
      assert.deepEqual(ids(all), ids(ms), 'everything, oldest first');
      const window = await collect(archive.scan(conversation, { from: t0 + 10, to: t0 + 250 }));
      assert.deepEqual(ids(window), ids(ms.filter((m) => m.ts >= t0 + 10 && m.ts < t0 + 250)), 'from inclusive, to exclusive');
      assert.equal(window.length, 240 * 3);
      assert.deepEqual(await collect(archive.scan(conversation, { from: t0 + 300, to: t0 + 400 })), []);
      assert.deepEqual(await collect(archive.scan(conversation, { from: t0 + 20, to: t0 + 20 })), [], 'an empty range');
      assert.deepEqual(ids(await collect(archive.scan(conversation, { from: 0, to: Number.MAX_SAFE_INTEGER }))), ids(ms), 'an open range');
      // A reader may stop early.
      const firstFive: ArchivedMessage[] = [];
      for await (const m of archive.scan(conversation, { from: t0, to: t0 + 300 })) {
        firstFive.push(m);
        if (firstFive.length === 5) break;
      }
      assert.deepEqual(ids(firstFive), ids(ms.slice(0, 5)));
    });

    it('is idempotent: replaying batches (whole, reordered, partial, overlapping) changes nothing', async () => {
      const [a, b, c] = [user(), user(), user()];
      const group = `grp-${rand()}`;
      const batch = [...direct([msg(a, b), msg(b, a), msg(a, c), msg(c, a)]), ...toGroup([groupMsg(b, group), groupMsg(c, group)], [a, b, c])];
      await archive.putMessages(batch);
      const convs = [conversationOf({ from: a, to: b }), conversationOf({ from: a, to: c }), `g:${group}`];
      const first = await snapshot([a, b, c], convs);
      await archive.putMessages(batch);
      await archive.putMessages([...batch].reverse());
      await archive.putMessages(batch.slice(1, 3));
      await archive.putMessages([...batch, ...batch]);
      assert.deepEqual(await snapshot([a, b, c], convs), first);
      assert.equal(first.syncs[0].length, 6);
      assert.equal(new Set(ids(first.syncs[0])).size, 6, 'no duplicates in sync');
      assert.equal(first.lists[0].length, 3, 'one entry per conversation');
    });

    it('moves a receipt state forward only, and page, sync and the conversation list show it', async () => {
      const [a, b] = [user(), user()];
      const [m1, m2] = [msg(a, b), msg(a, b)];
      await archive.putMessages(direct([m1, m2]));
      const conversation = conversationOf(m1);
      const stateOf = async (id: string) => (await archive.page(conversation, { limit: 10 })).find((m) => m.id === id)?.state;
      assert.equal(await stateOf(m1.id), undefined);
      await archive.setState({ conversation, id: m1.id, state: 'delivered', reader: m1.to });
      assert.equal(await stateOf(m1.id), 'delivered');
      await archive.setState({ conversation, id: m1.id, state: 'read', reader: m1.to });
      assert.equal(await stateOf(m1.id), 'read');
      await archive.setState({ conversation, id: m1.id, state: 'delivered', reader: m1.to });
      assert.equal(await stateOf(m1.id), 'read', 'read then delivered stays read');
      await archive.putMessages(direct([m1, m2]));
      assert.equal(await stateOf(m1.id), 'read', 'a replay keeps the state');
      assert.equal((await archive.sync(b, { limit: 10 })).find((m) => m.id === m1.id)?.state, 'read');
      assert.equal(await stateOf(m2.id), undefined, 'the other message is untouched');

      // Concurrent receipts of both kinds end at read, whichever lands last.
      await Promise.all([archive.setState({ conversation, id: m2.id, state: 'read', reader: m2.to }), archive.setState({ conversation: conversation, id: m2.id, state: 'delivered', reader: m2.to }), archive.setState({ conversation: conversation, id: m2.id, state: 'delivered', reader: m2.to })]);
      assert.equal(await stateOf(m2.id), 'read');
      const [summary] = await archive.conversations(a, 10);
      assert.equal(summary.lastMessage.id, m2.id);
      assert.equal(summary.lastMessage.state, 'read', 'the conversation list carries the last message state');

      // A receipt for a message not archived (or not an id at all) records nothing.
      const [x, y] = [user(), user()];
      const ghost = conversationOf({ from: x, to: y });
      await archive.setState({ conversation: ghost, id: m1.id, state: 'read', reader: m1.to });
      await archive.setState({ conversation, id: '12ab', state: 'read', reader: b });
      await archive.setState({ conversation, id: '99999999999999999999999', state: 'read', reader: b });
      assert.deepEqual(await archive.page(ghost, { limit: 10 }), []);
      assert.deepEqual(await archive.sync(x, { limit: 10 }), []);
      assert.equal((await archive.page(conversation, { limit: 10 })).length, 2);
    });

    it('takes a receipt only from the user the message was sent to', async () => {
      const [a, b, c] = [user(), user(), user()];
      const group = `grp${rand()}`;
      const toB = msg(a, b);
      const inGroup = groupMsg(a, group);
      await archive.putMessages([...direct([toB]), ...toGroup([inGroup], [a, b, c])]);
      const conversation = conversationOf(toB);
      const stateOf = async () => (await archive.page(conversation, { limit: 10 })).find((m) => m.id === toB.id)?.state;
      await archive.setState({ conversation, id: toB.id, state: 'read', reader: a });
      assert.equal(await stateOf(), undefined, 'the sender cannot mark their own message');
      await archive.setState({ conversation, id: toB.id, state: 'read', reader: c });
      assert.equal(await stateOf(), undefined, 'nor can a third user');
      await archive.setState({ conversation: conversationOf(inGroup), id: inGroup.id, state: 'read', reader: b });
      assert.equal((await archive.page(conversationOf(inGroup), { limit: 10 }))[0].state, undefined, 'group messages carry no receipt state');
      await archive.setState({ conversation, id: toB.id, state: 'delivered', reader: b });
      assert.equal(await stateOf(), 'delivered', 'the receiver can');
    });

    it('gives a receipt to its two users\' sync, as sent and in order, and to no page or conversation list', async () => {
      const [a, b, c] = [user(), user(), user()];
      const m1 = msg(a, b);
      const receipt = msg(b, a, { kind: 'receipt', body: undefined, ref: m1.id, state: 'read' });
      const m2 = msg(a, b);
      await archive.putMessages(direct([m1, receipt, m2]));
      await archive.putMessages(direct([receipt])); // a replay changes nothing
      const { body: _none, ...sent } = receipt;
      for (const u of [a, b]) {
        const synced = await archive.sync(u, { limit: 10 });
        assert.deepEqual(ids(synced), [m1.id, receipt.id, m2.id], `${u}'s sync`);
        assert.deepEqual(synced[1], sent, 'the receipt as sent');
        assert.deepEqual(ids(await archive.sync(u, { after: m1.id, limit: 1 })), [receipt.id], 'a page of sync may end on a receipt');
      }
      assert.deepEqual(await archive.sync(c, { limit: 10 }), []);
      const page = await archive.page(conversationOf(m1), { limit: 10 });
      assert.deepEqual(ids(page), [m2.id, m1.id], 'a conversation\'s page has its messages only');
      const [summary] = await archive.conversations(b, 10);
      assert.equal(summary.lastMessage.id, m2.id, 'a receipt is never a conversation\'s last message');
      assert.deepEqual(await collect(archive.scan(conversationOf(m1), { from: 0, to: Number.MAX_SAFE_INTEGER })).then(ids), [m1.id, m2.id]);
    });

    it('syncs every message to or from a user across conversations, oldest first, after a cursor, within a limit', async () => {
      const [a, b, c, d, e] = [user(), user(), user(), user(), user()];
      const group = `grp-${rand()}`;
      const members = [a, d, e];
      const mine: Envelope[] = [];
      const others: Envelope[] = [];
      const batch: Batch = [];
      for (let i = 0; i < 30; i++) {
        const pick = i % 5;
        if (pick === 0) batch.push(...direct([msg(a, b)]));
        if (pick === 1) batch.push(...direct([msg(c, a)]));
        if (pick === 2) batch.push(...toGroup([groupMsg(d, group)], members));
        if (pick === 3) batch.push(...direct([msg(d, e)]));
        if (pick === 4) batch.push(...direct([msg(b, c)]));
        const last = batch[batch.length - 1];
        (last.participants.includes(a) ? mine : others).push(last.message);
      }
      await archive.putMessages(shuffle(batch).slice(0, 15));
      await archive.putMessages(shuffle(batch).slice(15));
      await archive.putMessages(batch); // every message, some twice

      const all = await archive.sync(a, { limit: 1000 });
      assert.deepEqual(ids(all), ids([...mine].sort(byIdAsc)), 'exactly the user\'s messages, oldest first');
      assert.equal(all.length, 18);
      assert.deepEqual(ids(await archive.sync(a, { after: all[4].id, limit: 3 })), ids(all.slice(5, 8)), 'after is exclusive, limit respected');
      assert.deepEqual(await archive.sync(a, { after: all[all.length - 1].id, limit: 10 }), []);
      assert.deepEqual(await archive.sync(a, { after: MAX_ID, limit: 10 }), []);
      assert.deepEqual(await archive.sync(a, { limit: 0 }), []);
      // Walking with the cursor returns everything once.
      const walked: string[] = [];
      for (let cursor: string | undefined; ; ) {
        const batchOut = await archive.sync(a, { after: cursor, limit: 4 });
        walked.push(...ids(batchOut));
        if (batchOut.length < 4) break;
        cursor = batchOut[batchOut.length - 1].id;
      }
      assert.deepEqual(walked, ids(all));
      for (const u of [b, c, d, e]) {
        const got = await archive.sync(u, { limit: 1000 });
        const want = batch.filter((x) => x.participants.includes(u)).map((x) => x.message).sort(byIdAsc);
        assert.deepEqual(ids(got), ids(want), `${u} reads exactly their own`);
      }
      assert.ok(others.length > 0);
      await assert.rejects(archive.sync(a, { after: 'junk', limit: 5 }), RangeError);
    });

    it('lists a user\'s conversations newest activity first, one entry each, with the last message', async () => {
      const [a, b, c, d] = [user(), user(), user(), user()];
      const group = `grp-${rand()}`;
      const ab1 = msg(a, b);
      const ga = groupMsg(c, group);
      const ac = msg(c, a);
      const ab2 = msg(b, a);
      const ad = msg(a, d);
      await archive.putMessages([...direct([ab1, ac, ab2, ad]), ...toGroup([ga], [a, c])]);
      const list = await archive.conversations(a, 10);
      assert.deepEqual(
        list.map((s) => [s.type, s.id, s.lastMessage.id]),
        [
          ['user', d, ad.id],
          ['user', b, ab2.id],
          ['user', c, ac.id],
          ['group', group, ga.id],
        ],
      );
      assert.deepEqual(list[1].lastMessage, ab2);
      assert.deepEqual((await archive.conversations(a, 2)).map((s) => s.id), [d, b], 'limit');
      assert.deepEqual((await archive.conversations(c, 10)).map((s) => [s.type, s.id]), [['user', a], ['group', group]]);
      assert.deepEqual((await archive.conversations(b, 10)).map((s) => [s.type, s.id, s.lastMessage.id]), [['user', a, ab2.id]]);
    });

    it('keeps the newest last message when batches arrive out of order, also within one ms and concurrently', async () => {
      const [a, b] = [user(), user()];
      const conversation = conversationOf({ from: a, to: b });
      const at = tick(5);
      const [older, sameMsOld, sameMsNew] = [msg(a, b, {}, at - 3), msg(b, a, {}, at), msg(a, b, {}, at)];
      assert.equal(sameMsOld.ts, sameMsNew.ts);
      await archive.putMessages(direct([sameMsNew]));
      await archive.putMessages(direct([older]));
      await archive.putMessages(direct([sameMsOld]));
      const last = async (u: string) => (await archive.conversations(u, 10)).map((s) => s.lastMessage.id);
      assert.deepEqual(await last(a), [sameMsNew.id]);
      assert.deepEqual(await last(b), [sameMsNew.id]);
      assert.deepEqual(ids(await archive.page(conversation, { limit: 10 })), [sameMsNew.id, sameMsOld.id, older.id]);

      const [c, d] = [user(), user()];
      const burst = Array.from({ length: 40 }, (_, i) => msg(i % 2 ? c : d, i % 2 ? d : c, {}, tick(i % 3 === 0 ? 1 : 0)));
      await Promise.all(shuffle(burst).map((m) => archive.putMessages(direct([m]))));
      const newest = [...burst].sort(byIdDesc)[0].id;
      assert.deepEqual(await last(c), [newest]);
      assert.deepEqual(await last(d), [newest]);
    });

    it('shows a group message in every member\'s sync and conversation list, and to no one else', async () => {
      const members = [user(), user(), user()];
      const outsider = user();
      const group = `grp-${rand()}`;
      const ms = [groupMsg(members[0], group), groupMsg(members[1], group), groupMsg(members[2], group)];
      await archive.putMessages(toGroup(ms, members));
      for (const m of members) {
        assert.deepEqual(ids(await archive.sync(m, { limit: 10 })), ids(ms));
        const list = await archive.conversations(m, 10);
        assert.deepEqual(list.map((s) => [s.type, s.id, s.lastMessage.id]), [['group', group, ms[2].id]]);
      }
      assert.deepEqual(await archive.sync(outsider, { limit: 10 }), []);
      assert.deepEqual(await archive.conversations(outsider, 10), []);
      assert.deepEqual(ids(await archive.page(`g:${group}`, { limit: 10 })), ids([...ms].reverse()));
      assert.deepEqual(await archive.page(`g:${group}x`, { limit: 10 }), []);
      assert.deepEqual(await archive.page(`u:${members[0]}:${members[1]}`, { limit: 10 }), [], 'the group is not a 1:1 conversation');
    });

    it('never lets an id read another conversation: prefixes, 0x00, 0x01, 0xff and very long ids', async () => {
      const a = `a${rand()}`;
      const b = `${a}b`; // u:{a}:{b} vs u:{a}:{b}c
      const peers = [b, `${b}c`, `${b}\u0000`, `${b}\u0000c`, `${b}\u0001`, `${b}\xff`, `${b}\uffff`, `${b}:x`, `${b}\u0000${'9'.repeat(20)}`];
      const byPeer = new Map(peers.map((p) => [p, [msg(a, p, { body: `to ${JSON.stringify(p)}` }), msg(p, a)]]));
      await archive.putMessages(direct([...byPeer.values()].flat()));
      for (const [p, ms] of byPeer) {
        assert.deepEqual(ids(await archive.page(conversationOf({ from: a, to: p }), { limit: 100 })), ids([...ms].reverse()), `conversation with ${JSON.stringify(p)}`);
        assert.deepEqual(ids(await archive.sync(p, { limit: 100 })), ids(ms), `sync of ${JSON.stringify(p)}`);
        assert.deepEqual((await archive.conversations(p, 100)).map((s) => s.id), [a], `conversations of ${JSON.stringify(p)}`);
        assert.deepEqual(await collect(archive.scan(conversationOf({ from: a, to: p }), { from: 0, to: Number.MAX_SAFE_INTEGER })).then(ids), ids(ms));
      }
      assert.equal((await archive.sync(a, { limit: 100 })).length, peers.length * 2);
      assert.equal((await archive.conversations(a, 100)).length, peers.length);
      // Ids that are only key prefixes, or that name a key's tail, match nothing.
      for (const probe of [`u:${a}`, `u:${a}:`, `u:${a}:${b}\u0000\u0000`, `u:${a}:${b}\u0001\u0001`, `u:${a}:${b.slice(0, -1)}`, '', '\u0000', '\uffff', `g:`]) {
        assert.deepEqual(await archive.page(probe, { limit: 100 }), [], `page ${JSON.stringify(probe)}`);
        assert.deepEqual(await collect(archive.scan(probe, { from: 0, to: Number.MAX_SAFE_INTEGER })), [], `scan ${JSON.stringify(probe)}`);
      }
      for (const probe of [a.slice(0, -1), `${b}\u0000\u0000`, '', '\u0000', `${a}\u0000`]) {
        assert.deepEqual(await archive.sync(probe, { limit: 100 }), [], `sync ${JSON.stringify(probe)}`);
        assert.deepEqual(await archive.conversations(probe, 100), [], `conversations ${JSON.stringify(probe)}`);
      }
      // Very long ids: reads find nothing, a write is refused whole, before anything is stored.
      const long = 'x'.repeat(100_000);
      assert.deepEqual(await archive.page(`u:${a}:${long}`, { limit: 10 }), []);
      assert.deepEqual(await archive.sync(long, { limit: 10 }), []);
      assert.deepEqual(await archive.conversations(long, 10), []);
      assert.deepEqual(await collect(archive.scan(`g:${long}`, { from: 0, to: Number.MAX_SAFE_INTEGER })), []);
      const [c, d] = [user(), user()];
      const fine = msg(c, d);
      await assert.rejects(archive.putMessages(direct([fine, msg(c, long)])), RangeError);
      await assert.rejects(archive.putMessages([{ message: msg(c, d), participants: [c, d, long] }]), RangeError);
      await assert.rejects(archive.putMessages(direct([{ ...msg(c, d), id: 'not-an-id' }])), RangeError);
      assert.deepEqual(await archive.page(conversationOf(fine), { limit: 10 }), [], 'the refused batch wrote nothing');
      assert.deepEqual(await archive.sync(c, { limit: 10 }), []);
      await archive.setState({ conversation: `u:${c}:${long}`, id: fine.id, state: 'read', reader: fine.to });
      // Lone surrogates all encode as U+FFFD: such ids could share keys, so they are refused and find nothing.
      await assert.rejects(archive.putMessages(direct([msg(c, `${d}\uD800`)])), RangeError);
      await assert.rejects(archive.putMessages([{ message: msg(c, d), participants: [c, d, `${d}\uDC00`] }]), RangeError);
      assert.deepEqual(await archive.page(`u:${c}:${d}\uD800`, { limit: 10 }), []);
      assert.deepEqual(await archive.sync(`${d}\uDFFF`, { limit: 10 }), []);
      assert.deepEqual(await archive.conversations(`${d}\uD800`, 10), []);
    });

    it('orders ids by value, from 0 to 2^64 - 1', async () => {
      const [a, b] = [user(), user()];
      const ts = tick();
      const edge = ['0', '9', '10', '4294967296', '9007199254740993', '9999999999999999999', MAX_ID].map((id, i) => ({ ...msg(a, b), id, cid: `edge${i}` }));
      await archive.putMessages(direct(shuffle(edge)));
      const conversation = conversationOf({ from: a, to: b });
      assert.deepEqual(ids(await archive.page(conversation, { limit: 10 })), ids([...edge].reverse()));
      assert.deepEqual(ids(await archive.page(conversation, { before: MAX_ID, limit: 2 })), ['9999999999999999999', '9007199254740993']);
      assert.deepEqual(ids(await archive.sync(a, { limit: 10 })), ids(edge));
      assert.deepEqual(ids(await archive.sync(a, { after: '9', limit: 2 })), ['10', '4294967296']);
      assert.deepEqual(ids(await archive.sync(a, { after: '9999999999999999999', limit: 10 })), [MAX_ID]);
      assert.equal((await archive.conversations(a, 1))[0].lastMessage.id, MAX_ID);
      assert.ok(ts > 0);
    });

    it('upserts metric rows by (metric, labels, window) and reads a range of windows', async () => {
      const metric = `messages_${rand()}`;
      const w0 = Date.UTC(2030, 0, 1);
      const minute = 60_000;
      const point = (k: number, value: number, labels?: Record<string, string>): MetricPoint => ({
        metric,
        windowStart: w0 + k * minute,
        windowMs: minute,
        value,
        ...(labels ? { labels } : {}),
      });
      await archive.putMetrics([
        point(0, 1),
        point(1, 2),
        point(2, 3),
        point(1, 10, { kind: 'text' }),
        point(1, 20, { kind: 'attachment', transport: 'ws' }),
        point(3, 4),
        point(2, 30, { kind: 'text' }),
      ]);
      // Other metrics sharing a prefix must not show.
      await archive.putMetrics([{ ...point(1, 99), metric: `${metric}x` }, { ...point(1, 98), metric: metric.slice(0, -1) }]);
      // Upserts: a later write of the same window wins, also within one batch, and label order is no matter.
      await archive.putMetrics([point(1, 5), point(1, 6), point(1, 21, { transport: 'ws', kind: 'attachment' })]);

      const got = await archive.metrics(metric, { from: w0 + minute, to: w0 + 3 * minute });
      // Window by window; within a window by the label set's canonical JSON.
      assert.deepEqual(got, [
        point(1, 21, { kind: 'attachment', transport: 'ws' }),
        point(1, 10, { kind: 'text' }),
        point(1, 6),
        point(2, 30, { kind: 'text' }),
        point(2, 3),
      ]);
      assert.deepEqual((await archive.metrics(metric, { from: 0, to: Number.MAX_SAFE_INTEGER })).length, 7);
      assert.deepEqual(await archive.metrics(metric, { from: w0 + 4 * minute, to: w0 + 9 * minute }), []);
      assert.deepEqual(await archive.metrics(`${metric}y`, { from: 0, to: Number.MAX_SAFE_INTEGER }), []);
      await assert.rejects(archive.putMetrics([{ ...point(0, 1), windowStart: -5 }]), RangeError);
    });

    it('keeps everything across a reopen', async (t) => {
      if (!f.reopen) return t.skip('this backend has no reopen');
      const [a, b] = [user(), user()];
      const ms = [msg(a, b), msg(b, a)];
      await archive.putMessages(direct(ms));
      await archive.setState({ conversation: conversationOf(ms[0]), id: ms[0].id, state: 'read', reader: ms[0].to });
      archive = await f.reopen();
      const page = await archive.page(conversationOf(ms[0]), { limit: 10 });
      assert.deepEqual(ids(page), ids([...ms].reverse()));
      assert.equal(page[1].state, 'read');
      assert.deepEqual(ids(await archive.sync(b, { limit: 10 })), ids(ms));
      assert.equal((await archive.conversations(a, 10))[0].lastMessage.id, ms[1].id);
    });

    it('archives 10,000 messages over 100 conversations in one call, each exactly once', async (t) => {
      const pairs = Array.from({ length: 100 }, () => [user(), user()] as const);
      const ms = Array.from({ length: 10_000 }, (_, i) => {
        const [x, y] = pairs[i % 100];
        return i % 2 ? msg(x, y) : msg(y, x);
      });
      const started = performance.now();
      await archive.putMessages(direct(ms));
      const ms10k = performance.now() - started;
      t.diagnostic(`${name}: putMessages of 10,000 messages took ${ms10k.toFixed(0)} ms (${Math.round(10_000 / (ms10k / 1000))} messages/s)`);
      for (const [x, y] of pairs) {
        const conversation = conversationOf({ from: x, to: y });
        const want = ids(ms.filter((m) => conversationOf(m) === conversation).sort(byIdDesc));
        const got = [...ids(await archive.page(conversation, { limit: 60 }))];
        got.push(...ids(await archive.page(conversation, { before: got[got.length - 1], limit: 60 })));
        assert.deepEqual(got, want);
      }
      assert.equal((await archive.sync(pairs[0][0], { limit: 1000 })).length, 100);
    });
  });
}
