// The devices (MQTT connections) of this node and what is in flight to each. A QoS 1 delivery is tracked by
// its packet id until the device PUBACKs it; a delivery that came from the user's offline queue then leaves
// the queue. A device that subscribes to its inbox first receives the queue in order; live messages that
// arrive meanwhile are held and follow it.
import type { Client } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { Logger } from '../common/log.ts';
import { InflightTable } from './inflight.ts';
import type { OfflineQueue } from './offline-queue.ts';
import { inboxTopic } from './topics.ts';

export interface Delivery {
  id: string;
  /** The envelope as stored in the queue, and its bytes as written to devices (encoded once). */
  text: string;
  payload: Buffer;
  /** True when this message sits in the receiver's offline queue until a PUBACK. */
  queued: boolean;
  qos: 0 | 1;
}

interface InternalClient extends Client {
  deliverQoS(packet: object, cb: () => void): void;
  deliver0(packet: object, cb: () => void): void;
}

const noop = () => {};
/** Long enough for the live copies of what a queue read returned to have arrived, from any node. */
const DRAINED_KEPT_MS = 10_000;
/** Shared by every idle device: a Promise per device costs 48 bytes each. */
const RESOLVED: Promise<void> = Promise.resolve();

export type Transport = 'tcp' | 'tls' | 'ws';

export class Device {
  /** Subscribed to its inbox: only then is the device online for delivery (PROTOCOL.md, "device"). */
  inboxQos: 0 | 1 | null = null;
  /** The deliveries of this device's last publish: deliveries happen in the order sent. */
  tail: Promise<void> = RESOLVED;
  /** The answer (ack or error) to its last publish: answers go out in the order sent. */
  told: Promise<void> = RESOLVED;
  /** The token this device signed in with, when it did (logout closes it). */
  tokenHash?: string;
  /** Counted in Presence (from 'clientReady' on). */
  presenceUp = false;
  /** The CONNECT's keep-alive in ms when this node checks it (TCP and TLS; see KeepaliveSweep), else 0. */
  keepaliveMs = 0;
  /** The socket's bytesRead when a sweep last saw it grow, and when that was (ms; when just watched: then). */
  lastRead = 0;
  lastReadAt = 0;
  /** Resolves when the last accepted publish has been handed to the offline queue. */
  storeTurn: Promise<void> = RESOLVED;
  /** Created on the first QoS 1 delivery: most idle devices never get one. */
  private inflight: InflightTable<Delivery> | null = null;
  private nextMid = 1;
  private draining = false;
  /** Another drain was asked for while one ran: it reads the queue once more before it lets go. */
  private again = false;
  /** Live deliveries wait for the next drain (hold()): the node may have missed some of what came before them. */
  private holding = false;
  private held: Delivery[] | null = null;
  /**
   * What the last queue read sent, for a while after it: a live delivery of a message stored just before
   * that read (its sender's node looked the device up after storing it) may arrive once the read is done,
   * and is not sent twice.
   */
  private drained: Set<string> | null = null;

  constructor(
    /** Numbers this node's connections: a client id may reconnect before its old connection is gone. */
    private readonly seq: number,
    readonly userId: string,
    readonly client: Client,
    readonly transport: Transport,
  ) {}

  /** The device's name in Presence. Built when asked (at presence changes), not kept: ~90 bytes a device. */
  get key(): string {
    return `${this.client.id}#${this.seq}`;
  }

  get inflightCount(): number {
    return this.inflight?.size ?? 0;
  }

  /** Sends one envelope on the device's inbox topic, now or after the offline queue, keeping order. */
  deliver(d: Delivery): void {
    if (this.draining || this.holding) (this.held ??= []).push(d);
    else if (!(d.queued && this.drained?.has(d.id))) this.write(d);
  }

  /**
   * Acks and errors: at QoS 0, never queued, never held behind the queue. Written now rather than a turn
   * later (Aedes's deliver0 waits for setImmediate): an ack then goes out in the same turn as Aedes's PUBACK
   * of the publish it answers, and mqtt-packet's cork makes the two one socket write. Also a retained
   * state this device alone is owed on another topic (presence read on subscribe).
   */
  notify(payload: Buffer, topic = inboxTopic(this.userId), retain = false): void {
    const c = this.client as InternalClient;
    if (!c.connected) return;
    mqttPacket.writeToStream({ cmd: 'publish', topic, payload, qos: 0, retain, dup: false }, c.conn);
  }

  private write(d: Delivery): void {
    const c = this.client as InternalClient;
    const packet = { cmd: 'publish', topic: inboxTopic(this.userId), payload: d.payload, qos: d.qos, retain: false, dup: false, messageId: 0 };
    if (d.qos === 0 || this.inboxQos !== 1) {
      packet.qos = 0;
      c.deliver0(packet, noop);
      return;
    }
    packet.messageId = this.allocate();
    (this.inflight ??= new InflightTable()).set(packet.messageId, d);
    // Aedes keeps a packet id it is given [MQTT-2.3.1-2]; owning the ids is how a PUBACK names the message.
    c.deliverQoS(packet, noop);
  }

  private forgetDrainedLater(sent: Set<string>): void {
    // Most subscribes find an empty queue: nothing to remember, and no timer per idle device.
    if (sent.size === 0) return;
    this.drained = sent;
    setTimeout(() => {
      if (this.drained === sent) this.drained = null;
    }, DRAINED_KEPT_MS).unref();
  }

  private allocate(): number {
    for (let i = 0; i < 65535; i++) {
      const mid = this.nextMid;
      this.nextMid = mid === 65535 ? 1 : mid + 1;
      if (!this.inflight?.has(mid)) return mid;
    }
    throw new Error('65535 messages in flight to one device');
  }

  /** The device PUBACKed `messageId`; returns what it confirmed. */
  acked(messageId: number): Delivery | undefined {
    return this.inflight?.take(messageId);
  }

  /**
   * Holds live deliveries until the next drain has sent the queue: this node is about to re-read it because
   * it may have missed messages (its cluster bus reconnected), and what arrives live from now on would
   * otherwise overtake the missed ones.
   */
  hold(): void {
    this.holding = true;
  }

  /**
   * Sends the user's offline queue, then what arrived live meanwhile, skipping what the queue already had
   * and what is in flight to this device already (a queue read again after a gap). A drain asked for while
   * one runs makes that one read the queue again before it sends what it held: the first read may predate
   * what the second was asked for.
   */
  async drain(queue: OfflineQueue, limit: number): Promise<void> {
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = true;
    const sent = new Set<string>();
    try {
      do {
        this.again = false;
        for (const d of this.inflight?.values() ?? []) sent.add(d.id);
        for (const m of await queue.list(this.userId, limit)) {
          if (sent.has(m.id)) continue;
          sent.add(m.id);
          this.write({ id: m.id, text: m.payload, payload: Buffer.from(m.payload), queued: true, qos: 1 });
        }
      } while (this.again);
    } finally {
      // Also when the queue could not be read: what was held goes out rather than wait for a reconnect.
      const held = this.held;
      this.held = null;
      this.draining = false;
      this.holding = false;
      this.again = false;
      // Neither what this drain sent nor what an earlier one did (a late live copy, maybe acked since).
      for (const d of held ?? []) if (!sent.has(d.id) && !(d.queued && this.drained?.has(d.id))) this.write(d);
      this.forgetDrainedLater(sent);
    }
  }
}

/** Devices of this node by user. One user may have many devices online at once. */
export class DeviceRegistry {
  private readonly byUser = new Map<string, Set<Device>>();
  private readonly byClient = new WeakMap<Client, Device>();
  private seq = 0;

  constructor(
    private readonly queue: OfflineQueue,
    private readonly log: Logger,
  ) {}

  add(userId: string, client: Client, transport: Transport): Device {
    const device = new Device(++this.seq, userId, client, transport);
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(device);
    this.byClient.set(client, device);
    return device;
  }

  of(client: Client): Device | undefined {
    return this.byClient.get(client);
  }

  /** Forgets a device; false when it was already gone. */
  remove(device: Device): boolean {
    const set = this.byUser.get(device.userId);
    if (!set || !set.delete(device)) return false;
    if (set.size === 0) this.byUser.delete(device.userId);
    return true;
  }

  /** This node's online devices of a user (connected and subscribed to the inbox). */
  *online(userId: string): Iterable<Device> {
    for (const d of this.byUser.get(userId) ?? []) if (d.inboxQos !== null) yield d;
  }

  *all(): Iterable<Device> {
    for (const set of this.byUser.values()) yield* set;
  }

  /** The devices subscribed to their inbox: online for delivery. */
  *subscribed(): Iterable<Device> {
    for (const device of this.all()) if (device.inboxQos !== null) yield device;
  }

  get size(): number {
    let n = 0;
    for (const s of this.byUser.values()) n += s.size;
    return n;
  }

  /** A PUBACK arrived: what it confirms leaves the offline queue. */
  puback(client: Client, messageId: number): void {
    const device = this.byClient.get(client);
    const d = device?.acked(messageId);
    if (!device || !d || !d.queued) return;
    this.queue.remove(device.userId, { id: d.id, payload: d.text }).catch((err) => {
      // The message stays queued and is delivered again later; clients drop the repeated id.
      this.log.warn({ err, user: device.userId, id: d.id }, 'could not remove an acknowledged message from the offline queue');
    });
  }
}

/**
 * The keep-alive check [MQTT-3.1.2-24] for TCP and TLS devices: one timer for the node instead of Aedes's
 * timer, closure and its refresh() on every packet (~0.3 KB a connection). Every second it looks at each
 * device's socket: one that has read nothing for 1.5 times its keep-alive is closed, as Aedes would
 * (a 'keepaliveTimeout' event, then an error that closes the client). The silence is counted from when a
 * sweep last saw the socket's byte count grow (or the device was watched, at its CONNECT), and the last
 * read came before that: so a device is closed after at least 1.5 times its keep-alive of silence, and
 * at most about two sweeps (two seconds) after that.
 *
 * A sweep looks at SWEEP_SLICE devices, then lets the event loop serve others before the next slice: all
 * at once it held the loop ~140 ns a device (measured with 5,000 sockets; 14 ms a second at 100,000). So a
 * device is looked at a little later in one sweep than in another, which is why the silence is timed by
 * the clock when its slice runs, not counted in sweeps.
 */
export class KeepaliveSweep {
  private timer: NodeJS.Timeout | null = null;
  /** The sweep under way, when it is longer than a slice. */
  private sweeping: Iterator<Device> | null = null;

  constructor(
    private readonly devices: DeviceRegistry,
    private readonly everyMs = 1000,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.sweep(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sweeping = null;
  }

  /** From now on the device's socket is watched. */
  watch(device: Device, keepaliveSeconds: number): void {
    device.keepaliveMs = keepaliveSeconds * 1000;
    device.lastRead = bytesRead(device.client);
    // Its CONNECT was just read.
    device.lastReadAt = this.clock();
  }

  private sweep(): void {
    // (The last sweep still going, a second later, would mean the loop is swamped: it goes on, this one waits.)
    if (this.sweeping) return;
    this.sweeping = this.devices.all()[Symbol.iterator]();
    this.slice(this.sweeping);
  }

  /** Looks at the next SWEEP_SLICE devices of the sweep; the rest in a later turn. */
  private slice(devices: Iterator<Device>): void {
    if (this.sweeping !== devices) return; // stopped meanwhile
    const now = this.clock();
    for (let k = 0; k < SWEEP_SLICE; k++) {
      const next = devices.next();
      if (next.done) {
        this.sweeping = null;
        return;
      }
      this.check(next.value, now);
    }
    setImmediate(() => this.slice(devices));
  }

  private check(device: Device, now: number): void {
    if (device.keepaliveMs === 0) return;
    const read = bytesRead(device.client);
    if (read !== device.lastRead) {
      device.lastRead = read;
      device.lastReadAt = now;
    } else if (now - device.lastReadAt >= device.keepaliveMs * 1.5) {
      device.keepaliveMs = 0;
      const client = device.client as Client & { broker: { emit(event: string, client: Client): void } };
      client.broker.emit('keepaliveTimeout', client);
      client.emit('error', new Error('keep alive timeout'));
    }
  }
}

/** Devices one slice of a keep-alive sweep looks at: ~0.3 ms of the event loop. */
export const SWEEP_SLICE = 2000;

const bytesRead = (client: Client) => (client as unknown as { conn: { bytesRead?: number } }).conn.bytesRead ?? 0;
