// A bare MQTT 3.1.1 client for load generation: mqtt-packet parses what the broker sends, CONNECT and
// SUBSCRIBE come from mqtt-packet's generator, and the hot packets (PUBLISH, PUBACK) are laid out by hand
// so one message costs one small Buffer and one socket write. mqtt.js does far more per message.
import net from 'node:net';
import mqtt from 'mqtt-packet';

export interface ConnectOptions {
  host: string;
  port: number;
  localAddress?: string;
  clientId: string;
  username?: string;
  password?: string;
  clean: boolean;
  keepalive?: number;
  timeoutMs?: number;
  /** Set before CONNECT: a resumed session's queued messages can arrive in the same read as the CONNACK. */
  onPublish?: PublishHandler;
}

/** A message for this client; `payload` is only valid during the call (it points into the read buffer). */
export type PublishHandler = (payload: Buffer, qos: number) => void;

const PUBACK = 0x40;
const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** An MQTT topic as it appears on the wire: two length bytes, then UTF-8. Encode once, publish many times. */
export function encodeTopic(topic: string): Buffer {
  const t = Buffer.from(topic, 'utf8');
  const out = Buffer.allocUnsafe(t.length + 2);
  out.writeUInt16BE(t.length, 0);
  t.copy(out, 2);
  return out;
}

function remainingLengthBytes(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

export class RawClient {
  onPublish: PublishHandler = () => {};
  onPuback: (messageId: number) => void = () => {};
  onClose: (err?: Error) => void = () => {};
  /** QoS 1 publishes sent and not yet PUBACKed. */
  outstanding = 0;
  private nextId = 1;
  private readonly parser = mqtt.parser({ protocolVersion: 4 });
  private pendingAcks: number[] = [];
  private waiters = new Map<string, (packet: mqtt.Packet) => void>();
  /** Bytes of an incomplete frame, kept for the next read. */
  private rest: Buffer | null = null;
  private closed = false;
  private closing = false;

  private constructor(readonly socket: net.Socket) {
    this.parser.on('packet', (p: mqtt.Packet) => this.packet(p));
    this.parser.on('error', (err: Error) => this.fail(err));
    socket.on('data', (buf) => {
      this.read(buf);
      this.flushAcks();
    });
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail());
  }

  /**
   * Splits the stream into MQTT frames. PUBLISH and PUBACK, nearly all the traffic, are decoded here
   * without allocating; the rare control packets (CONNACK, SUBACK, PINGRESP) go through mqtt-packet.
   */
  private read(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = null;
    let at = 0;
    while (at < buf.length) {
      // Fixed header: type and flags, then 1-4 bytes of remaining length [MQTT-2.2.3].
      let length = 0;
      let multiplier = 1;
      let i = at + 1;
      let complete = false;
      while (i < buf.length && i < at + 5) {
        const byte = buf[i++];
        length += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + length > buf.length) break;
      const end = i + length;
      const type = buf[at] >> 4;
      if (type === 3) {
        const qos = (buf[at] >> 1) & 3;
        const topicEnd = i + 2 + buf.readUInt16BE(i);
        let payloadStart = topicEnd;
        if (qos > 0) {
          this.pendingAcks.push(buf.readUInt16BE(topicEnd));
          payloadStart += 2;
        }
        this.onPublish(buf.subarray(payloadStart, end), qos);
      } else if (type === 4) {
        this.outstanding--;
        this.onPuback(buf.readUInt16BE(i));
      } else {
        this.parser.parse(buf.subarray(at, end));
      }
      at = end;
    }
    if (at < buf.length) this.rest = Buffer.from(buf.subarray(at));
  }

  static connect(o: ConnectOptions): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress, noDelay: true });
      const client = new RawClient(socket);
      if (o.onPublish) client.onPublish = o.onPublish;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`CONNECT ${o.clientId}: no CONNACK within ${o.timeoutMs ?? 30_000} ms`));
      }, o.timeoutMs ?? 30_000);
      client.onClose = (err) => {
        clearTimeout(timer);
        reject(err ?? new Error(`CONNECT ${o.clientId}: connection closed before CONNACK`));
      };
      client.waiters.set('connack', (p) => {
        clearTimeout(timer);
        client.onClose = () => {};
        const code = (p as mqtt.IConnackPacket).returnCode ?? 0;
        if (code !== 0) {
          socket.destroy();
          reject(new Error(`CONNECT ${o.clientId}: CONNACK ${code}`));
        } else resolve(client);
      });
      socket.once('connect', () => {
        const packet: mqtt.IConnectPacket = {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 4,
          clientId: o.clientId,
          clean: o.clean,
          keepalive: o.keepalive ?? 60,
        };
        if (o.username !== undefined) packet.username = o.username;
        if (o.password !== undefined) packet.password = Buffer.from(o.password);
        socket.write(mqtt.generate(packet));
      });
    });
  }

  /** Subscribes to one topic; resolves with the granted QoS (128 = refused). */
  subscribe(topic: string, qos: 0 | 1): Promise<number> {
    const messageId = this.allocate();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`SUBSCRIBE ${topic}: no SUBACK`)), 30_000);
      this.waiters.set(`suback:${messageId}`, (p) => {
        clearTimeout(timer);
        resolve((p as mqtt.ISubackPacket).granted[0] as number);
      });
      this.socket.write(mqtt.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] }));
    });
  }

  /**
   * Writes one PUBLISH; `topic` comes from encodeTopic. A string payload must be ASCII (it is written
   * straight into the packet). Returns the packet id (0 for QoS 0).
   */
  publish(topic: Buffer, payload: Buffer | string, qos: 0 | 1): number {
    const size = typeof payload === 'string' ? payload.length : payload.length;
    const remaining = topic.length + (qos ? 2 : 0) + size;
    const header = 1 + remainingLengthBytes(remaining);
    const buf = Buffer.allocUnsafe(header + remaining);
    buf[0] = 0x30 | (qos << 1);
    let n = remaining;
    let i = 1;
    do {
      let byte = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) byte |= 0x80;
      buf[i++] = byte;
    } while (n > 0);
    topic.copy(buf, i);
    i += topic.length;
    let messageId = 0;
    if (qos) {
      messageId = this.allocate();
      buf.writeUInt16BE(messageId, i);
      i += 2;
      this.outstanding++;
    }
    if (typeof payload === "string") buf.write(payload, i, "latin1");
    else payload.copy(buf, i);
    this.socket.write(buf);
    return messageId;
  }

  ping(): void {
    if (!this.closed) this.socket.write(PINGREQ);
  }

  /** Sends DISCONNECT and closes; resolves when the socket is gone. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end(DISCONNECT);
      setTimeout(() => this.socket.destroy(), 2000).unref();
    });
  }

  /** Drops the connection without DISCONNECT, as a phone losing its network would. */
  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private allocate(): number {
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    return id;
  }

  private packet(p: mqtt.Packet): void {
    switch (p.cmd) {
      case 'connack':
        this.resolve('connack', p);
        break;
      case 'suback':
        this.resolve(`suback:${p.messageId}`, p);
        break;
      default:
        break;
    }
  }

  private resolve(key: string, p: mqtt.Packet): void {
    const w = this.waiters.get(key);
    if (!w) return;
    this.waiters.delete(key);
    w(p);
  }

  private flushAcks(): void {
    const ids = this.pendingAcks;
    if (ids.length === 0) return;
    this.pendingAcks = [];
    const buf = Buffer.allocUnsafe(ids.length * 4);
    for (let k = 0; k < ids.length; k++) {
      buf[k * 4] = PUBACK;
      buf[k * 4 + 1] = 2;
      buf.writeUInt16BE(ids[k], k * 4 + 2);
    }
    if (!this.closed) this.socket.write(buf);
  }

  private fail(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    if (!this.closing) this.onClose(err);
  }
}
