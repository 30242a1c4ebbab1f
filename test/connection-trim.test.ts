// What broker/connection-trim.ts takes off an idle connection, on a real Aedes and real sockets: the
// null-prototype maps it replaces still inherit nothing (a key from the wire like `constructor` or
// `__proto__` reads back as absent, GHSA-52qw-whmv-87c5) and are V8 fast objects; the client still works;
// mqtt-packet's number cache is off and what it writes is unchanged.
import assert from './helpers/assert.ts';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { dropNumberCache, trimConnection, trimSubscriptions } from '../broker/connection-trim.ts';

type Internals = { _events: Record<string, unknown>; duplicates: Record<string, unknown>; _parser: { _events: Record<string, unknown> } };

describe('connection trim', () => {
  let aedes: Aedes;
  let server: net.Server;
  let port: number;
  const clients: Internals[] = [];
  before(async () => {
    aedes = await Aedes.createBroker();
    server = net.createServer((s) => {
      aedes.handle(s);
      trimConnection(s);
      clients.push((s as unknown as { client: Internals }).client);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(async () => {
    await new Promise<void>((r) => aedes.close(() => r()));
    server.close();
  });

  it('keeps the maps null-prototype in behaviour: inherited names read back as absent, __proto__ is an own key', () => {
    const c = { _events: Object.assign(Object.create(null), { error: () => {} }), duplicates: Object.create(null), _parser: { _events: Object.create(null) } };
    const stream = new net.Socket();
    (stream as unknown as { client: unknown }).client = c;
    trimConnection(stream);
    for (const map of [c._events, c.duplicates, c._parser._events] as Record<string, unknown>[]) {
      for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf']) assert.equal(map[name], undefined, name);
      assert.equal('constructor' in map, false);
      map['__proto__'] = 7;
      assert.equal(map['__proto__'], 7, '__proto__ is stored as a key');
      assert.ok(Object.hasOwn(map, '__proto__'));
      assert.equal((map as { constructor?: unknown }).constructor, undefined, 'setting __proto__ did not give it a prototype');
    }
    assert.equal(typeof c._events.error, 'function', 'the listeners it held are kept');
  });

  it('serves a client through the trimmed maps: subscribe, publish at QoS 1, errors reach Aedes', async () => {
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'sub', reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'pub', reconnectPeriod: 0 });
    try {
      await sub.subscribeAsync('t/constructor', { qos: 1 });
      const got = new Promise<string>((r) => sub.once('message', (_t, p) => r(p.toString())));
      await pub.publishAsync('t/constructor', 'hello', { qos: 1 });
      assert.equal(await got, 'hello');
      const trimmed = clients.at(-1)!;
      for (const map of [trimmed._events, trimmed.duplicates, trimmed._parser._events]) assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(map)), null);
      assert.equal(typeof trimmed._events.error, 'function', 'Aedes still listens for its client’s errors');
      assert.equal(typeof trimmed._parser._events.packet, 'function');
      // QoS 2 goes through the inbound in-flight set that is made on first use.
      const got2 = new Promise<string>((r) => sub.once('message', (_t, p) => r(p.toString())));
      await pub.publishAsync('t/constructor', 'twice', { qos: 2 });
      assert.equal(await got2, 'twice');
      const inflight = (clients.at(-1) as unknown as { _inboundInflight: { size: number; has(x: number): boolean } })._inboundInflight;
      assert.equal(inflight.size, 0, 'the PUBREL released its slot');
    } finally {
      await Promise.all([sub.endAsync(), pub.endAsync()]);
    }
  });

  it('turns an emptied subscriptions map into a fast one that inherits nothing, and Aedes keeps using it', async () => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'emptied', reconnectPeriod: 0 });
    try {
      const internal = clients.at(-1) as unknown as { subscriptions: Record<string, unknown> };
      await c.subscribeAsync('t/first', { qos: 1 });
      trimSubscriptions(internal);
      assert.equal(Object.getPrototypeOf(internal.subscriptions), null, 'a map with a subscription in it is left alone');
      await c.unsubscribeAsync('t/first');
      trimSubscriptions(internal);
      const map = internal.subscriptions;
      assert.notEqual(Object.getPrototypeOf(map), null, 'the emptied map is a NullRecord');
      assert.equal(map['constructor'], undefined);
      assert.equal('toString' in map, false);
      await c.subscribeAsync('t/constructor', { qos: 1 });
      assert.deepEqual(Object.keys(internal.subscriptions), ['t/constructor']);
      const got = new Promise<string>((r) => c.once('message', (_t, p) => r(p.toString())));
      await c.publishAsync('t/constructor', 'after', { qos: 1 });
      assert.equal(await got, 'after');
    } finally {
      await c.endAsync();
    }
  });

  it('still closes a connection on a socket or parser error, through the shared error forwarder', async () => {
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'watcher', reconnectPeriod: 0 });
    try {
      const raw = net.connect(port, '127.0.0.1');
      await new Promise((r) => raw.once('connect', r));
      await new Promise((r) => setTimeout(r, 50));
      const conn = (clients.at(-1) as unknown as { conn: net.Socket }).conn;
      assert.deepEqual(conn.listeners('error').map((f) => f.name).filter((n) => n === 'bound emit' || n === 'forwardError'), ['forwardError']);
      const errors: string[] = [];
      // Before CONNECT is accepted Aedes reports a client's error as a connectionError.
      aedes.once('connectionError', (_c, err) => errors.push(err.message));
      const closed = new Promise((r) => raw.once('close', r));
      raw.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00])); // CONNECT with protocol level 9
      await closed;
      assert.deepEqual(errors, ['Invalid protocol version'], 'the parser’s error reached the client');
      await watcher.publishAsync('t/x', 'still served', { qos: 1 });
    } finally {
      await watcher.endAsync();
    }
  });

  it('makes maps V8 keeps in fast mode, where Object.create(null) is a hash table', () => {
    const script = `
      const { trimConnection, trimSubscriptions } = await import(${JSON.stringify(new URL('../broker/connection-trim.ts', import.meta.url).href)});
      const net = await import('node:net');
      const c = { _events: Object.assign(Object.create(null), { error() {} }), duplicates: Object.create(null), _parser: { _events: Object.create(null) } };
      const before = [c._events, c.duplicates, c._parser._events].map((m) => %HasFastProperties(m));
      const s = new net.Socket(); s.client = c; trimConnection(s);
      c.duplicates['parley-1'] = 1;
      // What Aedes's connect does: its once('connected') listener fires and removes itself.
      const { EventEmitter } = await import('node:events');
      const client = Object.assign(new EventEmitter(), { _parser: { _events: Object.create(null) } });
      client.once('connected', () => {}); // before 'error', as Aedes's Client adds them: not the last key
      client.on('error', () => {});
      s.client = client; trimConnection(s);
      client.emit('connected');
      c.connectedClient = client._events;
      const owner = { subscriptions: Object.create(null) };
      owner.subscriptions['inbox/u1'] = {}; delete owner.subscriptions['inbox/u1'];
      trimSubscriptions(owner);
      owner.subscriptions['presence/u2'] = {};
      c.subscriptions = owner.subscriptions;
      const after = [c._events, c.duplicates, c._parser._events, c.connectedClient, c.subscriptions].map((m) => %HasFastProperties(m));
      console.log(JSON.stringify({ before, after }));`;
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { before: [false, false, false], after: [true, true, true, true, true] }, 'the client’s listener map stays fast once connected');
  });

  it('turns mqtt-packet’s number cache off, writing the same bytes', () => {
    const packet = { cmd: 'publish', topic: 'inbox/u1', payload: Buffer.from('x'), qos: 1, messageId: 513, retain: false, dup: false } as const;
    const cached = mqttPacket.generate(packet);
    dropNumberCache();
    assert.equal(mqttPacket.writeToStream.cacheNumbers, false);
    assert.ok(mqttPacket.generate(packet).equals(cached));
    const chunks: Buffer[] = [];
    const sink = { write: (b: Buffer | string) => (chunks.push(Buffer.from(b)), true), cork() {}, uncork() {}, destroy() {} };
    mqttPacket.writeToStream(packet, sink as never);
    assert.ok(Buffer.concat(chunks).equals(cached), 'written without the cache as generated with it');
  });
});
