// Nothing acked is lost: SIGKILL the broker process while a burst is in flight, start it again on the
// same data, and the offline receiver gets every message whose sender saw an ack (PROTOCOL.md, guarantee 1).
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
      const b = await connectDevice(second.parley, 'tcp', bob);
      const got = await b.waitFor(() => {
        const have = new Set(b.inbox().map((m) => m.cid));
        return [...acked].every((c) => have.has(c)) && b.inbox();
      }, `all ${acked.size} acked messages`, 60_000);
      // Order is kept: what arrives follows the order sent.
      const order = got.map((m) => cids.indexOf(m.cid));
      for (let i = 1; i < order.length; i++) assert.ok(order[i] > order[i - 1], 'delivered in the order sent');
      assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'no id twice');

      // The archive (outbox → event log → archiver, all killed with the broker) catches up with every acked
      // message, once each.
      const ackedIds = new Set(got.filter((m) => acked.has(m.cid)).map((m) => m.id as string));
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
      assert.ok([...ackedIds].every((id) => ids.includes(id)), `archive has ${ids.length} messages; every acked one must be there`);
      assert.equal(new Set(ids).size, ids.length, 'archived once each');
      await b.close();
      await second.kill();
    });
  });
}
