// The chat scenario of PROTOCOL.md end to end, with real mqtt.js clients over TCP and WebSocket, once
// on the embedded adapters and once on real Redis + OpenLDAP.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { connectDevice, registerUser, startTestParley, url, type Backend, type TestParley, type Transport } from './helpers/parley.ts';

for (const backend of ['embedded', 'real'] as Backend[]) {
  for (const transport of ['tcp', 'ws'] as Transport[]) {
    describe(`chat over ${transport}, ${backend} adapters`, () => {
      let p: TestParley;
      before(async () => {
        p = await startTestParley(backend);
      });
      after(async () => p.stop());

      it('delivers a 1:1 message with an ack, stamping id, from, to and ts from the session', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const b = await connectDevice(p, transport, bob);
        const before = Date.now();
        const ack = await a.sendAndAck(bob, { body: 'hi bob', from: 'mallory', id: '1', ts: 5, extra: 'x' });
        assert.equal(ack.kind, 'ack');
        assert.match(ack.id, /^[0-9]+$/);
        const [m] = await b.waitForInbox(1);
        assert.deepEqual(Object.keys(m).sort(), ['body', 'cid', 'from', 'id', 'kind', 'to', 'ts']);
        assert.equal(m.from, alice, 'from comes from the session, not the payload');
        assert.equal(m.to, bob);
        assert.equal(m.body, 'hi bob');
        assert.equal(m.id, ack.id);
        assert.equal(m.ts, ack.ts);
        assert.ok(m.ts >= before - 5 && m.ts <= Date.now() + 5);
        // The sending device gets only the ack, not a copy.
        assert.equal(a.inbox().length, 0);
        await Promise.all([a.close(), b.close()]);
      });

      it('delivers live to every device of the receiver and copies to the sender\'s other devices', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a1 = await connectDevice(p, transport, alice);
        const a2 = await connectDevice(p, transport, alice);
        const b1 = await connectDevice(p, transport, bob);
        const b2 = await connectDevice(p, transport, bob);
        const ack = await a1.sendAndAck(bob, { body: 'to both' });
        for (const d of [b1, b2, a2]) {
          const [m] = await d.waitForInbox(1);
          assert.equal(m.id, ack.id);
          assert.equal(m.body, 'to both');
        }
        assert.equal(a1.inbox().length, 0);
        await Promise.all([a1, a2, b1, b2].map((d) => d.close()));
      });

      it('keeps a burst in the order sent, numbered in that order', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const b = await connectDevice(p, transport, bob);
        const cids = Array.from({ length: 300 }, (_, i) => a.send(bob, { body: `n${i}` }));
        const got = await b.waitForInbox(300);
        assert.deepEqual(got.map((m) => m.cid), cids);
        const ids = got.map((m) => BigInt(m.id));
        for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], 'ids grow in the order sent');
        await a.waitFor(() => a.received.filter((r) => r.body.kind === 'ack').length === 300, '300 acks');
        assert.deepEqual(a.received.filter((r) => r.body.kind === 'ack').map((r) => r.body.cid), cids, 'acks come back in order');
        await Promise.all([a.close(), b.close()]);
      });

      it('acks a resend of the same cid again with the same id and does not deliver it twice', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const b = await connectDevice(p, transport, bob);
        const first = await a.sendAndAck(bob, { cid: 'same-cid', body: 'once' });
        a.received.length = 0;
        const second = await a.sendAndAck(bob, { cid: 'same-cid', body: 'once' });
        assert.equal(second.id, first.id);
        const marker = await a.sendAndAck(bob, { body: 'marker' });
        await b.waitFor(() => b.inbox().some((m) => m.id === marker.id), 'marker');
        assert.equal(b.inbox().filter((m) => m.cid === 'same-cid').length, 1);
        await Promise.all([a.close(), b.close()]);
      });

      it('passes typing live without an ack and receipts like messages', async () => {
        const [alice, bob] = [await registerUser(p), await registerUser(p)];
        const a = await connectDevice(p, transport, alice);
        const b = await connectDevice(p, transport, bob);
        a.send(bob, { kind: 'typing', body: undefined });
        const typing = await b.waitFor(() => b.received.find((r) => r.body.kind === 'typing')?.body, 'typing');
        assert.equal(typing.from, alice);
        const ack = await a.sendAndAck(bob, { body: 'read me' });
        const receiptAck = await b.sendAndAck(alice, { kind: 'receipt', ref: ack.id, state: 'read', body: undefined });
        assert.equal(receiptAck.kind, 'ack');
        const [r] = await a.waitFor(() => a.inbox(['receipt']).length > 0 && a.inbox(['receipt']), 'receipt');
        assert.equal(r.ref, ack.id);
        assert.equal(r.state, 'read');
        assert.equal(r.from, bob);
        assert.ok(!a.received.some((x) => x.body.kind === 'ack' && x.body.cid === typing.cid), 'typing gets no ack');
        await Promise.all([a.close(), b.close()]);
      });

      it('publishes presence online and offline, retained, while any device is connected', async () => {
        const [alice, watcher] = [await registerUser(p), await registerUser(p)];
        const w = await connectDevice(p, transport, watcher);
        await w.client.subscribeAsync(`presence/${alice}`, { qos: 0 });
        const a1 = await connectDevice(p, transport, alice);
        const a2 = await connectDevice(p, transport, alice);
        const presence = () => w.received.filter((r) => r.topic === `presence/${alice}`).map((r) => r.body);
        await w.waitFor(() => presence().some((m) => m.state === 'online'), 'online');
        await a1.close();
        await new Promise((r) => setTimeout(r, 300));
        assert.ok(!presence().some((m) => m.state === 'offline'), 'still online with one device left');
        const before = Date.now();
        await a2.close();
        const off = await w.waitFor(() => presence().find((m) => m.state === 'offline'), 'offline');
        assert.equal(off.user, alice);
        assert.ok(off.ts >= before - 50, 'offline carries the last-seen time');
        // Retained: a late subscriber learns the state at once.
        const late = await connectDevice(p, transport, watcher);
        await late.client.subscribeAsync(`presence/${alice}`, { qos: 0 });
        const retained = await late.waitFor(() => late.received.find((r) => r.topic === `presence/${alice}`)?.body, 'retained presence');
        assert.equal(retained.state, 'offline');
        await Promise.all([w.close(), late.close()]);
      });

      it('signs in with a token from /v1/auth/login and closes the session on logout', async () => {
        const alice = await registerUser(p);
        const login = await p.http('/v1/auth/login', { body: { username: alice, password: 'correct horse battery' } });
        assert.equal(login.status, 200);
        const client = await mqtt.connectAsync(url(p, transport), { username: alice, password: login.body.token, reconnectPeriod: 0 });
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        assert.equal((await p.http('/v1/auth/logout', { method: 'POST', token: login.body.token })).status, 204);
        await closed;
        await assert.rejects(
          mqtt.connectAsync(url(p, transport), { username: alice, password: login.body.token, reconnectPeriod: 0 }),
          (err: { code?: number }) => err.code === 4 || err.code === 5,
        );
        client.end(true);
      });
    });
  }
}

describe('publishes end at Parley', () => {
  it("skips Aedes's publish path for device publishes (readdressed to the void topic) and keeps it for presence and Aedes's own", async () => {
    const p = await startTestParley('embedded');
    try {
      const aedes = p.running.broker!.aedes;
      const seen: string[] = [];
      aedes.on('publish', (packet) => void seen.push(packet.topic));
      const [alice, bob] = [await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', alice);
      const b = await connectDevice(p, 'tcp', bob);
      // Sent and refused publishes, QoS 1 and 0, one after another: each is answered and the next one read.
      for (let i = 0; i < 20; i++) await a.sendAndAck(bob, { body: `n${i}` });
      await a.client.publishAsync('not/a/send/topic', 'x', { qos: 1 });
      await a.client.publishAsync('not/a/send/topic', 'x', { qos: 0 });
      assert.equal((await a.sendAndAck(bob, { body: 'last' })).kind, 'ack');
      await b.waitForInbox(21);
      assert.ok(!seen.some((t) => t.startsWith('$parley/')), `no device publish went through Aedes: ${seen.join(', ')}`);
      assert.ok(seen.some((t) => t.startsWith('$SYS/')), `Aedes's own events still published: ${seen.join(', ')}`);
      // Presence is published by Parley through Aedes, and still is.
      assert.ok(seen.some((t) => t.startsWith('presence/')), `presence still published: ${seen.join(', ')}`);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await p.stop();
    }
  });
});
