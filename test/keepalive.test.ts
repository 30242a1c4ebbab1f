// Keep-alive [MQTT-3.1.2-24]: a connection that sends nothing for 1.5 times its keep-alive is closed, and its
// user goes offline; one that pings, or has no keep-alive, stays. TCP and TLS sockets are checked by the
// node's own sweep (broker/devices.ts, KeepaliveSweep), WebSockets by Aedes. A TCP client that half-closes
// its socket is closed too (the socket's 'close' does it: Aedes's own 'end' listener is dropped).
import assert from './helpers/assert.ts';
import net from 'node:net';
import { after, before, describe, it, mock } from 'node:test';
import mqttPacket from 'mqtt-packet';
import WebSocket, { createWebSocketStream } from 'ws';
import { Device, KeepaliveSweep, SWEEP_SLICE, type DeviceRegistry } from '../broker/devices.ts';
import { connectDevice, PASSWORD, registerUser, startTestParley, type TestDevice, type TestParley } from './helpers/parley.ts';

interface Raw {
  closedAt: Promise<number>;
  send(packet: object): void;
  end(): void;
  destroy(): void;
}

/** A device on a raw stream that sends only what the test tells it to (mqtt.js would ping on its own). */
async function rawDevice(p: TestParley, user: string, keepalive: number, transport: 'tcp' | 'ws' = 'tcp'): Promise<Raw> {
  const ws = transport === 'ws' ? new WebSocket(`ws://127.0.0.1:${p.running.httpPort}/mqtt`, 'mqtt') : null;
  const stream = ws ? createWebSocketStream(ws) : net.connect(p.running.mqttPort, '127.0.0.1');
  const parser = mqttPacket.parser();
  const seen: string[] = [];
  stream.on('data', (b: Buffer) => parser.parse(b));
  stream.on('error', () => undefined);
  parser.on('packet', (pk: { cmd: string }) => seen.push(pk.cmd));
  // The broker closing a WebSocket shows on the socket: its stream stays open until this side ends too.
  const closedAt = new Promise<number>((resolve) => (ws ?? stream).once('close', () => resolve(Date.now())));
  const send = (packet: object) => stream.write(mqttPacket.generate(packet as mqttPacket.Packet));
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `ka-${Math.random().toString(36).slice(2)}`, keepalive, username: user, password: Buffer.from(PASSWORD) });
  send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `inbox/${user}`, qos: 1 }] });
  for (let i = 0; i < 100 && !seen.includes('suback'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(seen.includes('connack') && seen.includes('suback'), `connected and subscribed (saw ${seen.join(', ')})`);
  return { closedAt, send, end: () => stream.end(), destroy: () => stream.destroy() };
}

const within = (p: Promise<number>, ms: number) => Promise.race([p, new Promise<null>((r) => setTimeout(() => r(null), ms))]);

describe('keep-alive', () => {
  let p: TestParley;
  let watcher: TestDevice;
  before(async () => {
    p = await startTestParley('embedded');
    watcher = await connectDevice(p, 'tcp', await registerUser(p));
  });
  after(async () => {
    await watcher.close();
    await p.stop();
  });

  async function presenceOf(user: string): Promise<() => string | undefined> {
    await watcher.client.subscribeAsync(`presence/${user}`, { qos: 0 });
    return () => watcher.received.filter((r) => r.topic === `presence/${user}`).at(-1)?.body.state;
  }

  for (const transport of ['tcp', 'ws'] as const) {
    it(`closes a silent ${transport} connection after 1.5 times its keep-alive, and its user goes offline`, async () => {
      const user = await registerUser(p);
      const started = Date.now();
      const silent = await rawDevice(p, user, 1, transport);
      const state = await presenceOf(user);
      await watcher.waitFor(() => state() === 'online', 'online');
      const closedAt = await within(silent.closedAt, 6000);
      assert.ok(closedAt !== null, 'closed within 6 s');
      // 1.5 s of silence at least; the sweep looks once a second, so at most about a second later.
      assert.ok(closedAt - started >= 1400, `not before 1.5 × keep-alive: ${closedAt - started} ms`);
      await watcher.waitFor(() => state() === 'offline', 'offline after the keep-alive timeout', 5000);
    });
  }

  it('keeps a connection that pings, and one without a keep-alive', async () => {
    const [pinger, quiet] = [await registerUser(p), await registerUser(p)];
    const a = await rawDevice(p, pinger, 1);
    const b = await rawDevice(p, quiet, 0);
    const ping = setInterval(() => a.send({ cmd: 'pingreq' }), 500);
    try {
      assert.equal(await within(Promise.race([a.closedAt, b.closedAt]), 4000), null, 'both still open after 4 s');
    } finally {
      clearInterval(ping);
      a.destroy();
      b.destroy();
    }
  });

  it('closes a TCP connection whose client half-closes it, and its user goes offline', async () => {
    const user = await registerUser(p);
    const raw = await rawDevice(p, user, 60);
    const state = await presenceOf(user);
    await watcher.waitFor(() => state() === 'online', 'online');
    raw.end();
    assert.ok((await within(raw.closedAt, 5000)) !== null, 'the broker closed its side');
    await watcher.waitFor(() => state() === 'offline', 'offline after the half-close', 5000);
  });
});

describe('keep-alive sweep, on mocked timers', () => {
  /** A device on a fake socket whose bytesRead the test moves; `closedAt` is when the sweep closed it. */
  function watched(sweep: KeepaliveSweep, keepaliveSeconds: number, now: () => number) {
    const conn = { bytesRead: 100 };
    const state = { closedAt: null as number | null, events: [] as string[] };
    const client = {
      conn,
      broker: { emit: (event: string) => state.events.push(event) },
      emit: (event: string) => {
        state.events.push(event);
        state.closedAt ??= now();
      },
    };
    const device = Object.assign(Object.create(Device.prototype) as Device, { client, keepaliveMs: 0, lastRead: 0, lastReadAt: 0 });
    sweep.watch(device, keepaliveSeconds);
    return { device, conn, state };
  }

  it('closes after at least 1.5 times the keep-alive of silence, however close to a sweep it was watched, and no later than a sweep after that', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      for (const watchAt of [1, 500, 999]) {
        let now = 0;
        const devices: Device[] = [];
        const sweep = new KeepaliveSweep({ all: () => devices } as unknown as DeviceRegistry, 1000, () => now);
        sweep.start();
        mock.timers.tick(watchAt);
        now = watchAt;
        const d = watched(sweep, 1, () => now);
        devices.push(d.device);
        for (let t = watchAt + 1; t <= 6000; t++) {
          now = t;
          mock.timers.tick(1);
        }
        sweep.stop();
        assert.ok(d.state.closedAt !== null, `watched at ${watchAt} ms: closed`);
        const silence = d.state.closedAt - watchAt;
        assert.ok(silence >= 1500, `watched at ${watchAt} ms: closed after ${silence} ms of silence, not before 1.5 s`);
        // 1.5 s rounded up to whole sweeps (2), plus up to one sweep for where between sweeps it was watched.
        assert.ok(silence <= 3000, `watched at ${watchAt} ms: closed after ${silence} ms, within 3 s`);
        assert.deepEqual(d.state.events, ['keepaliveTimeout', 'error']);
      }
    } finally {
      mock.timers.reset();
    }
  });

  it('keeps a device whose socket reads something between sweeps, and closes it once that stops', () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      let now = 0;
      const devices: Device[] = [];
      const sweep = new KeepaliveSweep({ all: () => devices } as unknown as DeviceRegistry, 1000, () => now);
      sweep.start();
      const d = watched(sweep, 1, () => now);
      devices.push(d.device);
      // A ping every 1.2 s for 10 s: never 1.5 s of silence.
      let lastRead = 0;
      for (let t = 1; t <= 10_000; t++) {
        if (t % 1200 === 0) {
          d.conn.bytesRead += 2;
          lastRead = t;
        }
        now = t;
        mock.timers.tick(1);
      }
      assert.equal(d.state.closedAt, null, 'still open while it pings');
      for (let t = 10_001; t <= 14_000; t++) {
        now = t;
        mock.timers.tick(1);
      }
      sweep.stop();
      assert.ok(d.state.closedAt !== null, 'closed once the pings stop');
      assert.ok(d.state.closedAt - lastRead >= 1500, `closed after ${d.state.closedAt - lastRead} ms of silence`);
    } finally {
      mock.timers.reset();
    }
  });
  it('looks at many devices a slice at a time, the event loop serving others between slices', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    const turn = () => new Promise((r) => setImmediate(r));
    try {
      let now = 0;
      const devices: Device[] = [];
      const sweep = new KeepaliveSweep({ all: () => devices } as unknown as DeviceRegistry, 1000, () => now);
      sweep.start();
      const all = Array.from({ length: SWEEP_SLICE * 2 + 500 }, () => watched(sweep, 1, () => now));
      for (const d of all) devices.push(d.device);
      // Each reads something before the first sweep, which notes it a slice at a time, on a loop so busy
      // that each slice runs 400 ms after the one before.
      for (const d of all) d.conn.bytesRead += 2;
      const noted = () => all.filter((d) => d.device.lastRead === d.conn.bytesRead).length;
      now = 1000;
      mock.timers.tick(1000);
      assert.equal(noted(), SWEEP_SLICE, 'one slice in the timer\'s turn');
      now = 1400;
      await turn();
      assert.equal(noted(), SWEEP_SLICE * 2, 'the next in a later turn');
      now = 1800;
      await turn();
      assert.equal(noted(), all.length, 'and the rest');
      const seenAt = new Map(all.map((d) => [d, d.device.lastReadAt]));
      assert.deepEqual([...new Set(seenAt.values())], [1000, 1400, 1800], 'each slice notes the time it ran');
      // Then silence, the later sweeps quick: each device is closed once 1.5 s have passed since the sweep
      // saw it read (so at least 1.5 s after its last read), and no more than two sweeps after that.
      for (let t = 1801; t <= 7000; t++) {
        now = t;
        mock.timers.tick(1);
        if (t % 1000 === 0) for (let k = 0; k < 4; k++) await turn();
      }
      sweep.stop();
      for (const d of all) {
        assert.ok(d.state.closedAt !== null, 'closed');
        const silence = d.state.closedAt - seenAt.get(d)!;
        assert.ok(silence >= 1500 && silence <= 3500, `closed ${silence} ms after the sweep saw its last read`);
        assert.deepEqual(d.state.events, ['keepaliveTimeout', 'error']);
      }
    } finally {
      mock.timers.reset();
    }
  });
});
