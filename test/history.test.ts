// The event pipeline end to end (PROTOCOL.md, history and sync API): every accepted message reaches the
// archive through the outbox and the event log exactly once, and reads back page by page.
import assert from './helpers/assert.ts';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { exportHistory } from '../cli/history.ts';
import { conversationOf } from '../common/envelope.ts';
import { connectDevice, PASSWORD, registerUser, sleep, startTestParley, type Backend, type TestParley } from './helpers/parley.ts';

async function token(p: TestParley, user: string): Promise<string> {
  return (await p.http('/v1/auth/login', { body: { username: user, password: PASSWORD } })).body.token;
}

/** Waits until the archiver has written `n` records in all. */
async function archived(p: TestParley, n: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await p.running.consumers!.archived()) < n) {
    if (Date.now() > deadline) throw new Error(`archive has ${(await p.running.consumers!.archived())} of ${n} records`);
    await sleep(100);
  }
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`history and sync, ${backend} adapters${backend === 'real' ? ' (Kafka, HBase)' : ''}`, () => {
    let p: TestParley;
    before(async () => {
      p = await startTestParley(backend, {}, { pipeline: backend === 'real' });
    });
    after(async () => p.stop());

    it('archives 10,000 messages across 100 conversations exactly once, paged newest first without gaps', async () => {
      const senders = await Promise.all(Array.from({ length: 10 }, () => registerUser(p)));
      const receivers = await Promise.all(Array.from({ length: 10 }, () => registerUser(p)));
      const acked = new Map<string, string[]>(); // conversation → ids in acceptance order
      await Promise.all(
        senders.map(async (s) => {
          const d = await connectDevice(p, 'tcp', s);
          const cids: [string, string][] = [];
          for (let i = 0; i < 100; i++) for (const r of receivers) cids.push([d.send(r, { body: `${s}→${r} #${i}` }), r]);
          await d.waitFor(() => d.received.filter((x) => x.body.kind === 'ack').length === cids.length, `${cids.length} acks`, 120_000);
          const ackByCid = new Map(d.received.filter((x) => x.body.kind === 'ack').map((x) => [x.body.cid, x.body.id]));
          for (const [cid, r] of cids) {
            const conv = conversationOf({ from: s, to: r });
            if (!acked.has(conv)) acked.set(conv, []);
            acked.get(conv)!.push(ackByCid.get(cid)!);
          }
          await d.close();
        }),
      );
      assert.equal(acked.size, 100);
      await archived(p, 10_000);

      let requests = 0;
      for (const s of senders) {
        const t = await token(p, s);
        for (const r of receivers) {
          const expected = acked.get(conversationOf({ from: s, to: r }))!;
          const seen: string[] = [];
          let before: string | null = null;
          do {
            const res = await p.http(`/v1/conversations/user/${r}/messages?limit=30${before ? `&before=${before}` : ''}`, { token: t });
            requests++;
            assert.equal(res.status, 200);
            for (const m of res.body.messages) {
              assert.equal(m.from, s);
              assert.equal(m.to, r);
              seen.push(m.id);
            }
            before = res.body.next;
          } while (before);
          assert.deepEqual(seen, [...expected].reverse(), 'newest first, every message once, none from elsewhere');
        }
        const convs = await p.http('/v1/conversations', { token: t });
        assert.equal(convs.body.conversations.length, 10);
        assert.ok(convs.body.conversations.every((c: any) => c.type === 'user' && receivers.includes(c.id)));
      }
      assert.ok(requests >= 400);

      // sync: everything to one receiver, oldest first, across 10 conversations
      const r0 = receivers[0];
      const t0 = await token(p, r0);
      const synced: string[] = [];
      let after: string | null = null;
      do {
        const res = await p.http(`/v1/sync?limit=200${after ? `&after=${after}` : ''}`, { token: t0 });
        assert.equal(res.status, 200);
        synced.push(...res.body.messages.map((m: any) => m.id));
        after = res.body.next;
      } while (after);
      const all = senders.flatMap((s) => acked.get(conversationOf({ from: s, to: r0 }))!);
      assert.equal(synced.length, 1000);
      assert.deepEqual(new Set(synced), new Set(all));
      const sorted = [...synced].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
      assert.deepEqual(synced, sorted, 'oldest first');

      // the analysts' export
      const out = new PassThrough();
      const lines: string[] = [];
      out.on('data', (chunk) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
      const n = await exportHistory(p.running.ports.archive, { user: senders[0], peer: receivers[0], from: 0, to: Date.now() + 1000 }, out, () => undefined);
      assert.equal(n, 100);
      assert.equal(lines.length, 100);
      assert.deepEqual(lines.map((l) => JSON.parse(l).id), acked.get(conversationOf({ from: senders[0], to: receivers[0] })));
    });

    it('records receipts as the message state, from its receiver only, gives them to sync; a receipt to a group is refused', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      const b = await connectDevice(p, 'tcp', ben);
      const before = (await p.running.consumers!.archived());
      const stateNow = async () => {
        const res = await p.http(`/v1/conversations/user/${ben}/messages`, { token: await token(p, ann) });
        assert.equal(res.body.messages.length, 1, 'receipts are state changes, not messages');
        return res.body.messages[0].state;
      };
      const ack = await a.sendAndAck(ben, { body: 'did you read this?' });
      await b.waitForInbox(1);
      // The sender marking its own message read records nothing; its receiver's receipts do.
      assert.equal((await a.sendAndAck(ben, { kind: 'receipt', ref: ack.id, state: 'read', body: undefined })).kind, 'ack');
      await b.sendAndAck(ann, { kind: 'receipt', ref: ack.id, state: 'delivered', body: undefined });
      await archived(p, before + 3);
      assert.equal(await stateNow(), 'delivered');
      await b.sendAndAck(ann, { kind: 'receipt', ref: ack.id, state: 'read', body: undefined });
      await archived(p, before + 4);
      assert.equal(await stateNow(), 'read');
      // Each user's other devices catch up on the receipts with sync, as sent, in order.
      for (const u of [ann, ben]) {
        const synced = await p.http(`/v1/sync?after=${ack.id}`, { token: await token(p, u) });
        assert.equal(synced.status, 200);
        assert.deepEqual(
          synced.body.messages.map((m: { kind: string; from: string; ref: string; state: string }) => [m.kind, m.from, m.ref, m.state]),
          [['receipt', ann, ack.id, 'read'], ['receipt', ben, ack.id, 'delivered'], ['receipt', ben, ack.id, 'read']],
          `${u}'s sync`,
        );
      }
      // The analysts' export of a user's history has the message, with its state, and no receipts.
      const out = new PassThrough();
      const lines: string[] = [];
      out.on('data', (chunk) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
      assert.equal(await exportHistory(p.running.ports.archive, { user: ben, from: 0, to: Date.now() + 1000 }, out, () => undefined), 1);
      assert.deepEqual(lines.map((l) => [JSON.parse(l).id, JSON.parse(l).state]), [[ack.id, 'read']]);

      const group = await p.http('/v1/groups', { body: { name: 'receipts', members: [ben] }, token: await token(p, ann) });
      assert.equal(group.status, 201);
      const from = b.received.length;
      const cid = b.send('', { kind: 'receipt', ref: ack.id, state: 'read', body: undefined }, `send/group/${group.body.id}`);
      const refused = await b.waitForAnswer(cid, undefined, from);
      assert.equal(refused.kind, 'error');
      assert.equal(refused.code, 'bad_request');
      assert.match(refused.message, /send\/user\/\{sender\}/);
      await sleep(300);
      assert.ok(!a.received.some((r) => r.body.cid === cid), 'the refused receipt reached no one');
      await Promise.all([a.close(), b.close()]);
    });

    it('shows a conversation only to its participants and refuses junk paging', async () => {
      const [ann, ben, eve] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      const before = (await p.running.consumers!.archived());
      await a.sendAndAck(ben, { body: 'secret' });
      await archived(p, before + 1);
      const eveT = await token(p, eve);
      const asEve = await p.http(`/v1/conversations/user/${ben}/messages`, { token: eveT });
      assert.equal(asEve.status, 200);
      assert.equal(asEve.body.messages.length, 0, "eve sees her own (empty) conversation with ben, never ann's");
      assert.equal((await p.http(`/v1/conversations/user/${ann}/messages`, { token: eveT })).body.messages.length, 0);
      assert.equal((await p.http('/v1/sync', { token: eveT })).body.messages.length, 0);
      assert.equal((await p.http(`/v1/conversations/user/${ben}/messages`)).status, 401);
      for (const q of ['before=abc', 'limit=0', 'limit=201', 'limit=1.5', 'limit=-1', 'before=99999999999999999999999', 'mine=1', 'before=1&before=2']) {
        const res = await p.http(`/v1/conversations/user/${ben}/messages?${q}`, { token: eveT });
        assert.equal(res.status, 400, q);
        assert.equal(res.body.error.code, 'bad_request');
      }
      assert.equal((await p.http('/v1/sync?after=x', { token: eveT })).status, 400);
      assert.equal((await p.http('/v1/conversations/user/NOT..VALID/messages', { token: eveT })).status, 400);
      assert.equal((await p.http('/v1/conversations/group/some-group/messages', { token: eveT })).status, 403);
      await a.close();
    });
  });
}
