// Offline queue across reconnects (PROTOCOL.md, guarantees 1, 2, 4): messages wait in the receiver's
// queue, arrive in order when a device subscribes, and leave only after a PUBACK.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { connectDevice, registerUser, sleep, startTestParley, type Backend, type TestParley, type Transport } from './helpers/parley.ts';

for (const backend of ['embedded', 'real'] as Backend[]) {
  for (const transport of ['tcp', 'ws'] as Transport[]) {
    describe(`offline delivery over ${transport}, ${backend} adapters`, () => {
      let p: TestParley;
      before(async () => {
        p = await startTestParley(backend);
      });
      after(async () => p.stop());

      it('queues 1000 messages for an offline user and delivers them in order, none twice, when it returns', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const cids = Array.from({ length: 1000 }, (_, i) => a.send(bob, { body: `queued ${i}` }));
        await a.waitFor(() => a.received.filter((r) => r.body.kind === 'ack').length === 1000, '1000 acks', 30_000);
        assert.equal(await p.running.ports.queue.length(bob), 1000);

        const b = await connectDevice(p, transport, bob);
        const got = await b.waitForInbox(1000, 30_000);
        assert.deepEqual(got.map((m) => m.cid), cids, 'in the order sent');
        assert.equal(new Set(got.map((m) => m.id)).size, 1000, 'no id twice');
        // Every PUBACK removes its message: the queue empties and a later device gets nothing again.
        for (let i = 0; i < 50 && (await p.running.ports.queue.length(bob)) > 0; i++) await sleep(100);
        assert.equal(await p.running.ports.queue.length(bob), 0);
        await b.close();
        const again = await connectDevice(p, transport, bob);
        await sleep(300);
        assert.equal(again.inbox().length, 0);
        await Promise.all([a.close(), again.close()]);
      });

      it('keeps a message that was delivered but not PUBACKed, and delivers it again with the same id', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        // A QoS 0 subscription never PUBACKs: what it sees stays queued.
        const b0 = await connectDevice(p, transport, bob, { qos: 0 });
        const ack = await a.sendAndAck(bob, { body: 'keep me' });
        await b0.waitForInbox(1);
        await b0.close();
        assert.equal(await p.running.ports.queue.length(bob), 1);
        const b1 = await connectDevice(p, transport, bob);
        const [m] = await b1.waitForInbox(1);
        assert.equal(m.id, ack.id);
        await Promise.all([a.close(), b1.close()]);
      });

      it('puts live messages that arrive while the queue drains after the queue, in order', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const first = Array.from({ length: 500 }, (_, i) => a.send(bob, { body: `early ${i}` }));
        await a.waitFor(() => a.received.filter((r) => r.body.kind === 'ack').length === 500, '500 acks', 30_000);
        const bPromise = connectDevice(p, transport, bob);
        const later = Array.from({ length: 200 }, (_, i) => a.send(bob, { body: `late ${i}` }));
        const b = await bPromise;
        const got = await b.waitForInbox(700, 30_000);
        const seen = new Set<string>();
        const unique = got.filter((m) => !seen.has(m.id) && seen.add(m.id));
        assert.deepEqual(unique.map((m) => m.cid), [...first, ...later]);
        await Promise.all([a.close(), b.close()]);
      });
    });
  }
}
