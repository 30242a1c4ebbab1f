// Bad input gets the contract's answer, changes nothing, and the broker keeps serving everyone else.
import assert from './helpers/assert.ts';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connackCode, connectDevice, PASSWORD, registerUser, sleep, startTestParley, url, type Backend, type TestDevice, type TestParley } from './helpers/parley.ts';

const until = (t: number) => sleep(Math.max(0, t - Date.now()));

/** CONNECT bytes built by hand: mqtt-packet itself refuses to write an empty client id with clean=false. */
function rawConnect(clientId: string, username: string, clean: boolean): Buffer {
  const str = (v: string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc0 | (clean ? 0x02 : 0), 0, 30]), str(clientId), str(username), str(PASSWORD)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`bad input, ${backend} adapters`, () => {
    let p: TestParley;
    let alice: string;
    let bob: string;
    let a: TestDevice;
    let b: TestDevice;
    // A bystander pair that must keep chatting whatever the others do.
    let c: TestDevice;
    let dUser: string;
    let d: TestDevice;

    before(async () => {
      p = await startTestParley(backend, { PARLEY_MAX_BODY_BYTES: '1024', PARLEY_LOGIN_MAX_FAILURES: '3', PARLEY_TOKEN_TTL_SECONDS: '1' });
      [alice, bob, dUser] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const cUser = await registerUser(p);
      [a, b, c, d] = await Promise.all([connectDevice(p, 'tcp', alice), connectDevice(p, 'tcp', bob), connectDevice(p, 'ws', cUser), connectDevice(p, 'tcp', dUser)]);
    });
    after(async () => {
      await Promise.all([a, b, c, d].map((x) => x.close()));
      await p.stop();
    });

    async function bystandersStillChat(): Promise<void> {
      const ack = await c.sendAndAck(dUser, { body: 'still here?' });
      assert.equal(ack.kind, 'ack', JSON.stringify(ack));
      await d.waitFor(() => d.inbox().some((m) => m.id === ack.id), 'bystander message');
    }

    async function publishRaw(device: TestDevice, topic: string, payload: string | Buffer): Promise<void> {
      await device.client.publishAsync(topic, payload, { qos: 1 });
    }

    async function errorFor(device: TestDevice, match: (e: any) => boolean): Promise<any> {
      return device.waitFor(() => device.received.find((r) => r.body.kind === 'error' && match(r.body))?.body, 'an error envelope');
    }

    it('answers invalid JSON, missing or oversized cid and oversized body with error envelopes, keeping the connection', async () => {
      a.received.length = 0;
      await publishRaw(a, `send/user/${bob}`, '{not json');
      const e1 = await errorFor(a, (e) => e.code === 'bad_request' && /JSON/.test(e.message));
      assert.equal(e1.cid, undefined);
      await publishRaw(a, `send/user/${bob}`, JSON.stringify({ kind: 'text', body: 'no cid' }));
      await errorFor(a, (e) => e.code === 'bad_request' && /cid/.test(e.message));
      await publishRaw(a, `send/user/${bob}`, JSON.stringify({ cid: 'x'.repeat(65), body: 'long cid' }));
      await errorFor(a, (e) => e.code === 'bad_request' && e.cid === undefined && /cid/.test(e.message));
      await publishRaw(a, `send/user/${bob}`, JSON.stringify({ cid: 'big-body', body: 'é'.repeat(513) }));
      const big = await errorFor(a, (e) => e.code === 'too_large');
      assert.equal(big.cid, 'big-body', 'a valid cid is echoed');
      await publishRaw(a, `send/user/${bob}`, JSON.stringify({ cid: 'bad-kind', kind: 'shout', body: 'x' }));
      await errorFor(a, (e) => e.cid === 'bad-kind' && e.code === 'bad_request');
      await publishRaw(a, `send/user/${bob}`, JSON.stringify([1, 2]));
      await errorFor(a, (e) => /object/.test(e.message));
      // Nothing of that reached bob, and the refused cid is not used up.
      const ok = await a.sendAndAck(bob, { cid: 'big-body', body: 'small now' });
      assert.equal(ok.kind, 'ack');
      const got = await b.waitFor(() => b.inbox().find((m) => m.cid === 'big-body'), 'the resent message');
      assert.equal(got.body, 'small now');
      assert.equal(b.inbox().length, 1);
      assert.ok(a.client.connected);
      await bystandersStillChat();
    });

    it('accepts a body at the size limit however its JSON escapes it, over TCP and WebSocket', async () => {
      // 1,024 control characters: a 1,024-byte body that JSON writes as \u0001 each, six times its size.
      const body = '\u0001'.repeat(1024);
      for (const [device, to, peer] of [[a, bob, b], [c, dUser, d]] as const) {
        const payload = JSON.stringify({ cid: `escaped-${device === a ? 'tcp' : 'ws'}`, body });
        assert.ok(payload.length > 6 * 1024, `${payload.length} bytes on the wire`);
        const from = device.received.length;
        await publishRaw(device, `send/user/${to}`, payload);
        const ack = await device.waitForAnswer(JSON.parse(payload).cid, undefined, from);
        assert.equal(ack.kind, 'ack', JSON.stringify(ack));
        const got = await peer.waitFor(() => peer.inbox().find((m) => m.id === ack.id), 'the escaped body');
        assert.equal(got.body, body);
        assert.ok(device.client.connected);
      }
      // One byte more is too large, however it is written.
      const from = c.received.length;
      await publishRaw(c, `send/user/${dUser}`, JSON.stringify({ cid: 'escaped-over', body: body + '\u0001' }));
      const over = await c.waitForAnswer('escaped-over', undefined, from);
      assert.equal(over.code, 'too_large');
      assert.ok(c.client.connected);
      await bystandersStillChat();
    });

    it('answers an unknown receiver with unknown_recipient and does not use up the cid', async () => {
      const err = await a.sendAndAck('nobody-here', { cid: 'to-nobody' });
      assert.equal(err.kind, 'error');
      assert.equal(err.code, 'unknown_recipient');
      const ack = await a.sendAndAck(bob, { cid: 'to-nobody', body: 'now to bob' });
      assert.equal(ack.kind, 'ack');
      await bystandersStillChat();
    });

    it('refuses publishing outside send/ with forbidden, delivers nothing, and keeps the connection', async () => {
      b.received.length = 0;
      a.received.length = 0;
      await publishRaw(a, `inbox/${bob}`, JSON.stringify({ cid: 'direct', kind: 'text', body: 'sneaky', from: 'admin' }));
      await errorFor(a, (e) => e.code === 'forbidden');
      await publishRaw(a, `presence/${bob}`, JSON.stringify({ kind: 'presence', user: bob, state: 'offline', ts: 1 }));
      await publishRaw(a, 'send/user/Bad..ID', JSON.stringify({ cid: 'x', body: 'y' }));
      await publishRaw(a, 'send/channel/x', JSON.stringify({ cid: 'x', body: 'y' }));
      await a.waitFor(() => a.received.filter((r) => r.body.code === 'forbidden').length >= 4, 'four forbidden');
      await publishRaw(a, 'send/group/nogroup', JSON.stringify({ cid: 'g', body: 'y' }));
      await errorFor(a, (e) => e.cid === 'g' && e.code === 'forbidden');
      await sleep(200);
      assert.equal(b.received.filter((r) => r.topic === `inbox/${bob}` && r.body.body === 'sneaky').length, 0);
      assert.ok(a.client.connected);
      await bystandersStillChat();
    });

    it('refuses subscriptions to other inboxes and wildcards with 0x80', async () => {
      const topics = [`inbox/${bob}`, '#', 'inbox/+', 'inbox/#', 'presence/+', 'presence/#', '+/+', '$SYS/#', 'send/user/' + bob, `presence/${bob}/x`];
      for (const t of topics) {
        const granted = await a.client.subscribeAsync(t, { qos: 1 }).then((g) => g[0].qos, (err: { packet?: { granted?: number[] } }) => err.packet?.granted?.[0]);
        assert.equal(granted, 128, `subscribe ${t} must be refused`);
      }
      const [ok] = await a.client.subscribeAsync(`presence/${bob}`, { qos: 0 });
      assert.equal(ok.qos, 0, 'one user\'s presence is allowed');
      // A message to bob does not leak to alice.
      const ack = await c.sendAndAck(bob, { body: 'private' });
      await b.waitFor(() => b.inbox().some((m) => m.id === ack.id), 'bob gets it');
      assert.ok(!a.received.some((r) => r.body.id === ack.id));
      await bystandersStillChat();
    });

    it('closes a connection that sends malformed MQTT, and serves the others', async () => {
      for (const bytes of [
        Buffer.from('GET / HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n'),
        Buffer.from([0x30, 0x03, 0x00, 0x01, 0x61]), // PUBLISH before CONNECT [MQTT-3.1.0-1]
        Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]), // remaining length over 4 bytes
        // After a good CONNECT: a PUBLISH whose topic length runs past the packet, and a reserved packet type 0.
        Buffer.concat([rawConnect('raw1', alice, true), Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])]),
        Buffer.concat([rawConnect('raw2', alice, true), Buffer.from([0x00, 0x00])]),
      ]) {
        const closed = await new Promise<boolean>((resolve) => {
          const s = net.connect(p.running.mqttPort, '127.0.0.1', () => s.write(bytes));
          s.on('data', () => undefined);
          s.on('close', () => resolve(true));
          s.on('error', () => undefined);
          setTimeout(() => {
            s.destroy();
            resolve(false);
          }, 5000);
        });
        assert.ok(closed, 'the broker closes a malformed connection');
      }
      await bystandersStillChat();
    });

    it('survives 20,000 PUBLISHes in one write (invalid JSON, forbidden topics, typing, QoS 1 messages), and serves the others', async () => {
      // A bare Aedes relay overflows its stack when a socket's packets keep completing synchronously (its
      // nextBatch reads the socket again from inside the last packet's callback): Parley's accept path must not.
      const gen = (packet: mqttPacket.Packet) => mqttPacket.generate(packet);
      const packets: Buffer[] = [gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `flood-${alice}`, keepalive: 30, username: alice, password: Buffer.from(PASSWORD) })];
      for (let i = 0; i < 20_000; i++) {
        const kind = i % 4;
        const topic = kind === 1 ? 'elsewhere/x' : `send/user/${bob}`;
        const payload = kind === 0 ? '{nope' : kind === 2 ? JSON.stringify({ cid: `t${i}`, kind: 'typing' }) : JSON.stringify({ cid: `flood${i}`, body: 'hi' });
        const qos = kind === 3 ? 1 : 0;
        packets.push(gen({ cmd: 'publish', topic, payload, qos, messageId: qos ? (i % 60_000) + 1 : undefined, retain: false, dup: false }));
      }
      const s = net.connect(p.running.mqttPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
      s.write(Buffer.concat(packets));
      await sleep(1000);
      await bystandersStillChat();
      s.destroy();
    });

    it('refuses bad credentials with the right CONNACK codes, including LDAP-filter usernames', async () => {
      assert.equal(await connackCode(p, 'tcp', bob, 'wrong password'), 4);
      assert.equal(await connackCode(p, 'tcp', 'nobody-at-all', 'whatever1'), 5);
      for (const hostile of ['*', '*)(uid=*', `${bob})(|(uid=*`, 'admin\\2a', 'cn=admin,dc=parley,dc=test', '']) {
        const code = await connackCode(p, 'ws', hostile, PASSWORD);
        assert.ok(code === 4 || code === 5, `${JSON.stringify(hostile)} got CONNACK ${code}`);
        const reg = await p.http('/v1/auth/register', { body: { username: hostile, password: PASSWORD } });
        assert.equal(reg.status, 400);
        assert.equal((await p.http('/v1/auth/login', { body: { username: hostile, password: PASSWORD } })).status, 401);
      }
      // Empty client id with a persistent session is refused [MQTT-3.1.3-8] (mqtt.js will not send it: raw bytes).
      const connack = await new Promise<{ returnCode: number }>((resolve, reject) => {
        const s = net.connect(p.running.mqttPort, '127.0.0.1', () =>
          s.write(rawConnect('', bob, false)),
        );
        const parser = mqttPacket.parser();
        parser.on('packet', (packet) => {
          s.destroy();
          resolve(packet as unknown as { returnCode: number });
        });
        s.on('data', (chunk) => parser.parse(chunk));
        s.on('error', reject);
      });
      assert.equal(connack.returnCode, 2);
      await bystandersStillChat();
    });

    it('refuses expired and revoked tokens', async () => {
      const login = await p.http('/v1/auth/login', { body: { username: alice, password: PASSWORD } });
      assert.equal(login.status, 200);
      await sleep(1500);
      assert.equal(await connackCode(p, 'tcp', alice, login.body.token), 4);
      assert.equal((await p.http('/v1/me', { token: login.body.token })).status, 401);
      const fresh = await p.http('/v1/auth/login', { body: { username: alice, password: PASSWORD } });
      assert.equal((await p.http('/v1/auth/logout', { method: 'POST', token: fresh.body.token })).status, 204);
      assert.equal(await connackCode(p, 'tcp', alice, fresh.body.token), 4);
      // A token is bound to its user.
      const bobs = await p.http('/v1/auth/login', { body: { username: bob, password: PASSWORD } });
      assert.equal(await connackCode(p, 'tcp', alice, bobs.body.token), 4);
    });

    it('locks an account after repeated failures, even with the right password, over HTTP and MQTT', async () => {
      const victim = await registerUser(p);
      for (let i = 0; i < 3; i++) assert.equal((await p.http('/v1/auth/login', { body: { username: victim, password: 'nope-nope' } })).status, 401);
      const locked = await p.http('/v1/auth/login', { body: { username: victim, password: PASSWORD } });
      assert.equal(locked.status, 429);
      assert.equal(locked.body.error.code, 'rate_limited');
      assert.equal(await connackCode(p, 'tcp', victim, PASSWORD), 5);
      // Others are not affected.
      assert.equal((await p.http('/v1/auth/login', { body: { username: bob, password: PASSWORD } })).status, 200);
      await bystandersStillChat();
    });
  });

  describe(`login lock over time, ${backend} adapters`, () => {
    let p: TestParley;
    before(async () => {
      p = await startTestParley(backend, { PARLEY_LOGIN_MAX_FAILURES: '3', PARLEY_LOGIN_WINDOW_SECONDS: '2' });
    });
    after(async () => p.stop());

    it('locks on failures within any window and keeps the account locked for the window from the one that reached the limit', async () => {
      const victim = await registerUser(p);
      const login = async (password: string) => (await p.http('/v1/auth/login', { body: { username: victim, password } })).status;
      const t0 = Date.now();
      assert.equal(await login('nope-nope'), 401);
      await until(t0 + 1200);
      assert.equal(await login('nope-nope'), 401);
      assert.equal(await login('nope-nope'), 401, 'the third failure within 2 s reaches the limit');
      const lockedAt = Date.now();
      assert.equal(await login(PASSWORD), 429);
      // 2.5 s after the first failure, which has aged out (as has a window fixed at it); the lock has 700 ms to go.
      await until(t0 + 2500);
      assert.equal(await login(PASSWORD), 429, 'still locked: the lock runs from the third failure');
      assert.equal(await connackCode(p, 'tcp', victim, PASSWORD), 5);
      await until(lockedAt + 2300);
      assert.equal(await login(PASSWORD), 200, 'the lock is over');
    });
  });
}
