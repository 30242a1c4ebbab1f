// What an idle connection need not keep. Aedes, mqtt-packet and bl give every connection objects that
// Parley does not use once the connection is up, and an idle connection's memory is almost all JS objects
// (bench/HISTORY.md, round 7). These touch private fields of the versions in package-lock.json: where a
// field is not as expected the connection simply keeps the memory; the one assumption correctness rests
// on (Aedes's client on the stream) throws.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import bl from 'bl';
import mqttPacket from 'mqtt-packet';

const noop = () => {};

/**
 * mqtt-packet's unparsed bytes. A plain BufferList instead of the BufferListStream mqtt-packet makes (a
 * readable-stream Duplex, ~1 KB with its states and listeners; mqtt-packet only calls BufferList methods),
 * which also lets go of its array's backing store once everything is parsed (shift() keeps it, ~150 bytes).
 */
class ParserBuffer extends bl.BufferList {
  consume(bytes: number): this {
    super.consume(bytes);
    const bufs = (this as unknown as { _bufs: Buffer[] })._bufs;
    if (bufs.length === 0) bufs.length = 0; // an emptied array keeps its capacity; length = 0 frees it
    return this;
  }
}

interface ParserInternals {
  _list: unknown;
  settings?: { password?: unknown; protocolVersion?: number; bridgeMode?: boolean };
}

interface ClientInternals {
  _parser?: ParserInternals & { _events?: object };
  _eos?: () => void;
  _events?: object;
  duplicates?: object;
}

/**
 * A record that, like Object.create(null), inherits nothing: a key from the wire such as `constructor` or
 * `__proto__` reads back as absent, and `__proto__` is stored as an own key. Unlike Object.create(null),
 * which V8 keeps as a hash table (~160 bytes even when empty), its instances are ordinary fast objects
 * (~50 bytes with a key or two): its prototype is one shared object that inherits nothing.
 */
function NullRecord(this: object) {}
NullRecord.prototype = Object.create(null) as object;
const record = (from: object): object => Object.assign(new (NullRecord as unknown as new () => object)(), from);

/** Replaces `owner[field]`, a null-prototype object, with a NullRecord holding the same keys. */
function asRecord(owner: Record<string, unknown> | undefined, field: string): void {
  const held = owner?.[field];
  if (held && typeof held === 'object' && Object.getPrototypeOf(held) === null) owner![field] = record(held);
}

/**
 * Aedes's client keeps a Set of the inbound QoS 2 messages awaiting PUBREL (~180 bytes when empty) and uses
 * has, add, delete and size; chat clients publish at QoS 1 (PROTOCOL.md), so most never need it. This makes
 * the Set on first add.
 */
class LazySet<T> {
  private set: Set<T> | null = null;
  get size(): number {
    return this.set?.size ?? 0;
  }
  has(value: T): boolean {
    return this.set?.has(value) ?? false;
  }
  add(value: T): this {
    (this.set ??= new Set()).add(value);
    return this;
  }
  delete(value: T): boolean {
    return this.set?.delete(value) ?? false;
  }
}

/**
 * Aedes re-emits its socket's and its parser's errors as the client's through two functions bound to the
 * client (~70 bytes each). One shared function does it for both: each holds the client as `client`.
 */
function forwardError(this: { client?: { emit(event: string, err: unknown): void } }, err: unknown): void {
  this.client?.emit('error', err);
}

/** Swaps Aedes's bound `emit('error')` listener on `emitter` for forwardError. */
function shareErrorForwarder(emitter: { listeners(e: string): Function[]; removeListener(e: string, fn: never): void; on(e: string, fn: never): void } | undefined): void {
  const bound = emitter?.listeners('error').find((fn) => fn.name === 'bound emit');
  if (!bound) return;
  emitter!.removeListener('error', bound as never);
  emitter!.on('error', forwardError as never);
}

/**
 * mqtt-packet builds, on its first write, a cache of one 2-byte Buffer for every number up to 65535 (6.3 MB
 * of JS heap, 65,536 objects that every major GC marks) to save allocating two bytes per packet field.
 * Parley writes few enough numbers (a packet id and a topic length per PUBLISH) that allocating them is
 * cheaper than keeping the cache. Global to the process; set once at start.
 */
export function dropNumberCache(): void {
  mqttPacket.writeToStream.cacheNumbers = false;
}

/** Right after Aedes took the stream, before CONNECT. */
export function trimConnection(stream: Duplex): void {
  const client = (stream as unknown as { client?: ClientInternals }).client;
  // The broker's 'close' listener finds the client there; without it devices would never retire. Loud,
  // not a silent leak, should an Aedes upgrade stop setting it.
  if (!client) throw new Error('Aedes did not attach its client to the connection stream');
  if (client._parser) client._parser._list = new ParserBuffer();
  const inflight = (client as { _inboundInflight?: unknown })._inboundInflight;
  if (inflight instanceof Set && inflight.size === 0) (client as { _inboundInflight?: unknown })._inboundInflight = new LazySet();
  // Before the parser's listener map becomes a NullRecord: removing a key from it there would make V8 turn
  // it back into a hash table.
  if ((client._parser as { client?: unknown } | undefined)?.client === client) {
    shareErrorForwarder(stream as never);
    shareErrorForwarder(client._parser as never);
  }
  // Three null-prototype objects of every connection, kept as hash tables: the EventEmitter listener maps
  // of Aedes's client and of its parser, and the client's QoS dedupe map (~0.35 KB in all). Aedes listens
  // once for the client's 'connected'; removing that key from the map (EventEmitter deletes a type's last
  // listener) would turn it back into a hash table, so a listener that stays keeps the key.
  const emitter = client as unknown as { on?: (e: string, fn: () => void) => void };
  if (typeof emitter.on === 'function') emitter.on('connected', noop);
  asRecord(client as Record<string, unknown>, '_events');
  asRecord(client._parser as Record<string, unknown> | undefined, '_events');
  asRecord(client as Record<string, unknown>, 'duplicates');
  // Aedes watches the stream with stream.finished() (eight closures and their listeners, ~0.7 KB); it
  // already closes the client on 'error', and the broker's shared 'close' listener covers the rest.
  if (client._eos) {
    client._eos();
    client._eos = noop;
  }
  // Aedes also closes the client on 'end' (a bound function and the listener array it grows, ~0.3 KB). A
  // TCP or TLS socket that is not half-open (net.Server's default) ends its own side after 'end' and then
  // emits 'close', where the broker closes the client. WebSocket streams keep it.
  if (stream instanceof net.Socket && !stream.allowHalfOpen) {
    const aedesClose = stream.listeners('end').find((fn) => fn.name === 'bound close');
    if (aedesClose) stream.removeListener('end', aedesClose as (...args: unknown[]) => void);
  }
}

/**
 * Aedes's map of a client's subscriptions (null prototype, so a hash table of ~160 bytes). Once the broker
 * has taken a clean session's inbox subscription out of Aedes (Parley routes the inbox itself), it is
 * usually empty for good: a NullRecord then, which holds topics subscribed later as any object does.
 */
export function trimSubscriptions(client: object): void {
  const owner = client as Record<string, unknown>;
  const held = owner.subscriptions;
  if (held && typeof held === 'object' && Object.keys(held).length === 0) asRecord(owner, 'subscriptions');
}

/** mqtt-packet reads only these of the CONNECT packet it keeps as its parser's `settings`. */
const SETTINGS = new Map<string, Readonly<{ protocolVersion: number; bridgeMode: boolean }>>();

/**
 * Once CONNECT is parsed: mqtt-packet keeps the whole CONNECT packet (client id, username, password and the
 * read buffer it points into) as its parser's settings for the connection's lifetime, and reads only the
 * protocol version and bridge mode from it. A shared, frozen object per version does.
 */
export function trimConnect(client: object): void {
  const parser = (client as ClientInternals)._parser;
  const kept = parser?.settings;
  if (!parser || !kept || typeof kept.protocolVersion !== 'number') return;
  const key = `${kept.protocolVersion}:${kept.bridgeMode === true}`;
  let shared = SETTINGS.get(key);
  if (!shared) SETTINGS.set(key, (shared = Object.freeze({ protocolVersion: kept.protocolVersion, bridgeMode: kept.bridgeMode === true })));
  parser.settings = shared;
}
