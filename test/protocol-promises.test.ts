// Promises of PROTOCOL.md and README.md no other test reaches end to end: the offline queue's cap
// (PARLEY_OFFLINE_MAX) with history keeping what left it, the dedupe window (PARLEY_DEDUPE_TTL_SECONDS)
// ending, wills never published, and MQTT 3.1 over the `mqttv3.1` WebSocket subprotocol (README).
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { WebSocket } from 'ws';
import { connectDevice, PASSWORD, registerUser, sleep, startTestParley, uniqueName, url, type Backend, type TestParley } from './helpers/parley.ts';

async function token(p: TestParley, user: string): Promise<string> {
  return (await p.http('/v1/auth/login', { body: { username: user, password: PASSWORD } })).body.token;
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`protocol promises, ${backend} adapters`, () => {
    let p: TestParley;
    before(async () => {
      p = await startTestParley(backend, { PARLEY_OFFLINE_MAX: '5', PARLEY_DEDUPE_TTL_SECONDS: '3' }, { pipeline: backend === 'real' });
    });
    after(async () => p.stop());

    it('keeps the newest PARLEY_OFFLINE_MAX messages queued for an offline user; history keeps them all', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      const acks = [];
      for (let i = 0; i < 8; i++) acks.push(await a.sendAndAck(ben, { body: `m${i}` }));
      assert.ok(acks.every((x) => x.kind === 'ack'));
      const b = await connectDevice(p, 'tcp', ben);
      const queued = await b.waitForInbox(5);
      await sleep(300);
      assert.deepEqual(b.inbox().map((m) => m.body), ['m3', 'm4', 'm5', 'm6', 'm7'], 'the oldest three left the queue');
      assert.deepEqual(queued.map((m) => m.id), acks.slice(3).map((x) => x.id));
      const annToken = await token(p, ann);
      const deadline = Date.now() + 60_000;
      let history: { body: string }[] = [];
      while (history.length < 8 && Date.now() < deadline) {
        history = (await p.http(`/v1/conversations/user/${ben}/messages?limit=50`, { token: annToken })).body.messages;
        if (history.length < 8) await sleep(100);
      }
      assert.deepEqual(history.map((m) => m.body).reverse(), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'], 'history has every message');
      await Promise.all([a.close(), b.close()]);
    });

    it('delivers a resend once the dedupe window has passed, under a new id', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const [a, b] = [await connectDevice(p, 'tcp', ann), await connectDevice(p, 'tcp', ben)];
      const first = await a.sendAndAck(ben, { cid: 'again', body: 'once' });
      const within = await a.sendAndAck(ben, { cid: 'again', body: 'once' });
      assert.equal(within.id, first.id, 'within the window: the first id, nothing delivered');
      await sleep(3500);
      const later = await a.sendAndAck(ben, { cid: 'again', body: 'once more' });
      assert.equal(later.kind, 'ack');
      assert.notEqual(later.id, first.id, 'past the window the cid is new again');
      await b.waitFor(() => b.inbox().length === 2, 'two deliveries');
      assert.deepEqual(b.inbox().map((m) => m.id), [first.id, later.id]);
      await Promise.all([a.close(), b.close()]);
    });

    it('never publishes a will, not even one on a chat topic', async () => {
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const b = await connectDevice(p, 'tcp', ben);
      const a = await mqtt.connectAsync(url(p, 'tcp'), {
        username: ann,
        password: PASSWORD,
        clientId: uniqueName('will-'),
        reconnectPeriod: 0,
        protocolVersion: 4,
        will: { topic: `send/user/${ben}`, payload: Buffer.from(JSON.stringify({ cid: 'will', body: 'I died' })), qos: 1, retain: false },
      });
      a.stream.destroy(); // gone without a DISCONNECT: a kept will would be published now
      const c = await connectDevice(p, 'tcp', ann);
      const marker = await c.sendAndAck(ben, { body: 'marker' });
      await b.waitFor(() => b.inbox().some((m) => m.id === marker.id), 'the marker');
      await sleep(500);
      assert.deepEqual(b.inbox().map((m) => m.body), ['marker']);
      await Promise.all([b.close(), c.close()]);
    });

    it('speaks MQTT 3.1 over the mqttv3.1 WebSocket subprotocol', async () => {
      const ws = new WebSocket(url(p, 'ws'), ['mqttv3.1']);
      const protocol = await new Promise<string>((resolve, reject) => ws.once('open', () => resolve(ws.protocol)).once('error', reject));
      ws.close();
      assert.equal(protocol, 'mqttv3.1');
      const [ann, ben] = [await registerUser(p), await registerUser(p)];
      const old = await mqtt.connectAsync(url(p, 'ws'), { username: ben, password: PASSWORD, clientId: uniqueName('v31-'), reconnectPeriod: 0, protocolId: 'MQIsdp', protocolVersion: 3 });
      const got = new Promise<Record<string, unknown>>((resolve) => old.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()))));
      assert.equal((await old.subscribeAsync(`inbox/${ben}`, { qos: 1 }))[0].qos, 1);
      const a = await connectDevice(p, 'tcp', ann);
      const ack = await a.sendAndAck(ben, { body: 'to an MQTT 3.1 client' });
      const m = await got;
      assert.equal(m.id, ack.id);
      assert.equal(m.body, 'to an MQTT 3.1 client');
      await Promise.all([a.close(), old.endAsync()]);
    });
  });
}
