// Nothing acked is lost: SIGKILL the broker process while a burst is in flight, start it again on the
// same data, and the offline receiver gets every message whose sender saw an ack (PROTOCOL.md, guarantee 1).
// Nothing delivered is taken back either: a live delivery may reach the receiver before its sender's ack
// (it waits for the write, the ack for the disk's sync), and a kill in between keeps it, under its id.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { startParleyProcess, type ParleyProcess } from './helpers/child.ts';
import { connectDevice, PASSWORD, registerUser, testEnv, type Backend } from './helpers/parley.ts';


for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`no loss when the broker is killed, ${backend} adapters`, () => {
    const env = testEnv(backend, {}, { pipeline: backend === 'real' });
    const children: ParleyProcess[] = [];
    after(async () => {
      for (const c of children) await c.kill();
      if (backend === 'embedded') fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
    });

    it('delivers every acked message after a SIGKILL in the middle of a burst', async (t) => {
      const first = await startParleyProcess(env);
      children.push(first);
      const [alice, bob] = [await registerUser(first.parley), await registerUser(first.parley)];
      const a = await connectDevice(first.parley, 'tcp', alice);
      const total = 3000;
      const cids = Array.from({ length: total }, (_, i) => a.send(bob, { body: `m${i}` }));
      // Kill the broker once some acks are in, while the rest of the burst is still in flight.
      const acks = () => a.received.filter((r) => r.body.kind === 'ack');
      await a.waitFor(() => acks().length >= 500, '500 acks', 60_000);
      await first.kill();
      const acked = new Set(acks().map((r) => r.body.cid as string));
      a.client.end(true);
      assert.ok(acked.size >= 500 && acked.size <= total);
      t.diagnostic(`${acked.size} of ${total} acked before the kill`);

      const second = await startParleyProcess(env);
      children.push(second);
      // Like a real client, the sender sends again, in order, every message it has no ack for. Whether each
      // was stored before the kill or not, it is acked now (with its first id if it was), and nothing is
      // lost: a resend must never be acked for a message that was claimed but not stored.
      const a2 = await connectDevice(second.parley, 'tcp', alice);
      const unacked = cids.map((cid, i) => ({ cid, i })).filter(({ cid }) => !acked.has(cid));
      for (const { cid, i } of unacked) a2.send(bob, { cid, body: `m${i}` });
      const answers = await a2.waitFor(() => {
        const got = a2.received.filter((r) => r.body.kind === 'ack' || r.body.kind === 'error');
        return got.length >= unacked.length && got.map((r) => r.body);
      }, `answers to ${unacked.length} resends`, 60_000);
      assert.deepEqual(answers.filter((x) => x.kind !== 'ack'), [], 'every resend is acked');
      const b = await connectDevice(second.parley, 'tcp', bob);
      const got = await b.waitFor(() => {
        const have = new Set(b.inbox().map((m) => m.cid));
        return cids.every((c) => have.has(c)) && b.inbox();
      }, `all ${total} messages, ${acked.size} acked before the kill and the rest after their resend`, 60_000).catch((err) => {
        const have = new Set(b.inbox().map((m) => m.cid));
        const missing = cids.filter((c) => !have.has(c));
        throw new Error(`${err.message}: ${missing.length} missing, ${missing.filter((c) => acked.has(c)).length} of them acked before the kill`);
      });
      const idsOf = new Map<string, string[]>();
      for (const m of got) idsOf.set(m.cid, [...(idsOf.get(m.cid) ?? []), m.id]);
      for (const x of answers) assert.ok(idsOf.get(x.cid)?.includes(x.id), `the resend of ${x.cid} is acked with an id it is delivered under`);
      const twice = [...idsOf].filter(([, ids]) => ids.length > 1).map(([cid]) => cid);
      // The claim and the store are one write, and both survive the kill: a message stored before it is
      // acked under its first id when it is sent again.
      assert.deepEqual(twice, [], 'no cid delivered under two ids');
      // Order is kept: what arrives (each cid's first delivery) follows the order sent.
      const order = got.filter((m, i) => idsOf.get(m.cid)![0] === m.id && got.findIndex((g) => g.id === m.id) === i).map((m) => cids.indexOf(m.cid));
      for (let i = 1; i < order.length; i++) assert.ok(order[i] > order[i - 1], 'delivered in the order sent');
      assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'no id twice');

      // The archive (outbox → event log → archiver, all killed with the broker) catches up with every acked
      // message, once each.
      const ackedIds = new Set(got.map((m) => m.id as string));
      const login = await second.parley.http('/v1/auth/login', { body: { username: bob, password: PASSWORD } });
      const history = async () => {
        const ids: string[] = [];
        let before: string | null = null;
        do {
          const res: { messages: { id: string }[]; next: string | null } = await fetch(`http://127.0.0.1:${second.parley.running.httpPort}/v1/conversations/user/${alice}/messages?limit=200${before ? `&before=${before}` : ''}`, {
            headers: { authorization: `Bearer ${login.body.token}` },
          }).then((r) => r.json());
          ids.push(...res.messages.map((m: { id: string }) => m.id));
          before = res.next;
        } while (before);
        return ids;
      };
      let ids: string[] = [];
      for (let i = 0; i < 300; i++) {
        ids = await history();
        if ([...ackedIds].every((id) => ids.includes(id))) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok([...ackedIds].every((id) => ids.includes(id)), `archive has ${ids.length} messages; every message must be there`);
      assert.equal(new Set(ids).size, ids.length, 'archived once each');
      await b.close();
      await a2.close();
      await second.kill();
    });

    it('keeps every message a live receiver got, acked or not, after a SIGKILL: a resend is acked under the id delivered', async (t) => {
      const first = await startParleyProcess(env);
      children.push(first);
      const [alice, bob] = [await registerUser(first.parley), await registerUser(first.parley)];
      const b = await connectDevice(first.parley, 'tcp', bob);
      const a = await connectDevice(first.parley, 'tcp', alice);
      const total = 3000;
      const cids = Array.from({ length: total }, (_, i) => a.send(bob, { body: `m${i}` }));
      await b.waitFor(() => b.inbox().length >= 500, '500 live deliveries', 60_000);
      await first.kill();
      // What each side had seen when the broker died (the sockets are gone, nothing more arrives).
      const seen = new Map(b.inbox().map((m) => [m.cid as string, m.id as string]));
      const acked = new Map(a.received.filter((r) => r.body.kind === 'ack').map((r) => [r.body.cid as string, r.body.id as string]));
      a.client.end(true);
      b.client.end(true);
      for (const [cid, id] of acked) if (seen.has(cid)) assert.equal(seen.get(cid), id, 'delivered under the id acked');
      const deliveredUnacked = [...seen.keys()].filter((c) => !acked.has(c));
      // As far as the clients had read their sockets when the broker died (the sender's reads come in 64 KB
      // chunks, ~426 acks each), so the last count is an upper bound of what the broker had not acked.
      t.diagnostic(`${seen.size} delivered and ${acked.size} acked of ${total} as read before the kill; ${deliveredUnacked.length} of the delivered without an ack read yet`);

      const second = await startParleyProcess(env);
      children.push(second);
      const a2 = await connectDevice(second.parley, 'tcp', alice);
      const unacked = cids.filter((cid) => !acked.has(cid));
      for (const cid of unacked) a2.send(bob, { cid, body: `m${cids.indexOf(cid)}` });
      const answers = await a2.waitFor(() => {
        const got = a2.received.filter((r) => r.body.kind === 'ack' || r.body.kind === 'error');
        return got.length >= unacked.length && got.map((r) => r.body);
      }, `answers to ${unacked.length} resends`, 60_000);
      assert.deepEqual(answers.filter((x) => x.kind !== 'ack'), [], 'every resend is acked');
      // A message the receiver was shown before the kill is acked under the id it was shown with: it was
      // stored (claim and all) before it was delivered, so the resend finds it and stores nothing new.
      for (const x of answers) if (seen.has(x.cid)) assert.equal(x.id, seen.get(x.cid), `the resend of ${x.cid}, delivered before the kill, keeps its id`);

      const b2 = await connectDevice(second.parley, 'tcp', bob);
      const got = await b2.waitFor(() => {
        const have = new Set([...seen.keys(), ...b2.inbox().map((m) => m.cid)]);
        return cids.every((c) => have.has(c)) && b2.inbox();
      }, `the ${total - seen.size} messages not delivered before the kill`, 60_000);
      // Redelivered copies of what was shown before keep their ids (the client drops them); nothing comes
      // under a second id.
      for (const m of got) if (seen.has(m.cid)) assert.equal(m.id, seen.get(m.cid), `${m.cid} comes again under the id it was shown with`);
      const idsOf = new Map<string, Set<string>>();
      for (const m of got) idsOf.set(m.cid, (idsOf.get(m.cid) ?? new Set()).add(m.id));
      assert.deepEqual([...idsOf].filter(([, ids]) => ids.size > 1).map(([cid]) => cid), [], 'no cid under two ids');
      await b2.close();
      await a2.close();
      await second.kill();
    });
  });
}
