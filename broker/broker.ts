// Parley's MQTT broker: Aedes with Parley's hooks. Deciding hooks (authenticate, authorizePublish,
// authorizeSubscribe) answer; observing events (clientReady, subscribe, clientDisconnect) update devices
// and presence.
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import type { AuthService } from '../auth/service.ts';
import { SignInError } from '../auth/service.ts';
import type { Config } from '../common/config.ts';
import { presenceEnvelope } from '../common/envelope.ts';
import { Connack, connackError, forbidden } from '../common/errors.ts';
import type { IdGenerator } from '../common/ids.ts';
import type { Logger } from '../common/log.ts';
import type { Metrics } from '../common/metrics.ts';
import { Acceptor, type AcceptDeps } from './accept.ts';
import type { ClusterBus, NodeMessage } from './cluster-bus.ts';
import type { AcceptStore } from './accept-store.ts';
import { DeviceRegistry, KeepaliveSweep, type Device, type Transport } from './devices.ts';
import type { Groups } from './groups.ts';
import type { OfflineQueue } from './offline-queue.ts';
import type { Presence } from './presence.ts';
import { Recipients } from './recipients.ts';
import { dropNumberCache, trimConnect, trimConnection, trimSubscriptions } from './connection-trim.ts';
import { ClusterRouter } from './router.ts';
import { grantSubscription, inboxTopic, parseSendTopic, presenceTopic, VOID_TOPIC } from './topics.ts';

export interface BrokerDeps {
  config: Readonly<Config>;
  log: Logger;
  metrics: Metrics;
  ids: IdGenerator;
  auth: AuthService;
  recipients: Recipients;
  attachments: AcceptDeps['attachments'];
  groups: Groups;
  /** The accept path's one durable write: dedupe, queues, outbox. */
  store: AcceptStore;
  queue: OfflineQueue;
  presence: Presence;
  /** To the other broker nodes: deliveries for their devices, presence changes, logouts. */
  bus: ClusterBus;
  outboxFilled(): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * Parley writes the inbox to its devices itself (Device.write) and nothing is ever published to an inbox
 * topic through Aedes, so Aedes's record of the subscription (a Subscription, its handler closure and the
 * client's subscriptions dictionary, ~0.2 KB a connection) has no use once the SUBSCRIBE is answered.
 * A persistent session keeps it: Aedes restores its subscriptions from there.
 */
function forgetAedesSubscription(aedes: Aedes, client: Client, topic: string): void {
  const subscriptions = (client as unknown as { subscriptions: Record<string, { func: (...args: never[]) => void } | undefined> }).subscriptions;
  const sub = subscriptions[topic];
  if (!sub) return;
  delete subscriptions[topic];
  trimSubscriptions(client);
  aedes.unsubscribe(topic, sub.func as never, noop);
}
/** How long a starting node waits for the live nodes' welcome. */
const GREET_TIMEOUT_MS = 5000;
const PRESENCE_PREFIX = presenceTopic('');
const noop = () => {};

export class ParleyBroker {
  readonly devices: DeviceRegistry;
  readonly acceptor: Acceptor;
  private readonly router: ClusterRouter;
  /**
   * Users who had a device on this node since it started: their presence is retained here (and kept up to
   * date from the other nodes' changes). Anyone else's is read from Presence when subscribed to, so a node
   * holds retained presence only for its own users, however large the cluster.
   */
  private readonly localPresence = new Set<string>();
  private readonly transports = new WeakMap<object, Transport>();
  private readonly emptyPersistentId = new WeakSet<Client>();
  /** CONNECT keep-alives (seconds) between preConnect and sign-in, for the sweep. */
  private readonly keepalives = new WeakMap<Client, number>();
  private readonly keepalive: KeepaliveSweep;
  private heartbeat: NodeJS.Timeout | null = null;

  private constructor(
    readonly aedes: Aedes,
    private readonly deps: BrokerDeps,
  ) {
    this.devices = new DeviceRegistry(deps.queue, deps.log);
    this.keepalive = new KeepaliveSweep(this.devices);
    this.keepalive.start();
    this.router = new ClusterRouter(this.devices, deps.presence, deps.bus, deps.log);
    this.acceptor = new Acceptor({
      config: deps.config,
      ids: deps.ids,
      store: deps.store,
      router: this.router,
      recipients: deps.recipients,
      attachments: deps.attachments,
      groups: deps.groups,
      metrics: deps.metrics,
      log: deps.log,
      outboxFilled: deps.outboxFilled,
    });
  }

  static async create(deps: BrokerDeps): Promise<ParleyBroker> {
    dropNumberCache();
    let self: ParleyBroker | null = null;
    const aedes = await Aedes.createBroker({
      id: `parley-${deps.config.nodeId}`,
      // Client ids longer than 23 bytes are fine in 3.1.1; device ids are often UUIDs with a prefix.
      maxClientsIdLength: 256,
      preConnect: (client, packet, cb) => self!.preConnect(client, packet, cb),
      authenticate: (client, username, password, cb) => self!.authenticate(client, username, password, cb),
      authorizePublish: (client, packet, cb) => (client ? self!.authorizePublish(client, packet, cb) : cb(new Error('no client'))),
      authorizeSubscribe: (client, sub, cb) => self!.authorizeSubscribe(client, sub, cb),
    });
    self = new ParleyBroker(aedes, deps);
    self.observe();
    const broker = self;
    await deps.bus.listen((message, from) => broker.fromNode(message, from), {
      onError: (err) => deps.log.warn({ err }, 'a message from another node could not be handled'),
      onGap: () => {
        // Hellos and byes may have been missed too: the others answer a new hello with a welcome.
        broker.sayHello();
        broker.recover('the connection to the other nodes was lost and is back');
      },
      // What the others send from now on waits behind the queues recover() re-reads.
      onResume: () => broker.holdDeliveries(),
    });
    deps.auth.onLoggedOut((tokenHash) => {
      deps.bus.broadcast({ type: 'logout', tokenHash }).catch((err) => deps.log.warn({ err }, 'could not tell the other nodes of a logout'));
    });
    await self.startPresence();
    await self.greet();
    return self;
  }

  /** Serves one MQTT connection (a TCP or TLS socket, or a WebSocket stream). */
  handle(stream: Duplex, transport: Transport, req?: IncomingMessage): void {
    // TCP is the default: only TLS and WebSocket streams need an entry.
    if (transport !== 'tcp') this.transports.set(stream, transport);
    this.aedes.handle(stream as never, req);
    trimConnection(stream);
    stream.on('close', this.onConnClose);
  }

  private preConnect(client: Client, packet: { clientId: string; clean?: boolean; keepalive?: number }, cb: (err: Error | null, ok: boolean) => void): void {
    // Aedes accepts an empty client id with cleanSession=false; MQTT 3.1.1 refuses it [MQTT-3.1.3-8].
    if (packet.clientId === '' && !packet.clean) this.emptyPersistentId.add(client);
    // A TCP or TLS socket's keep-alive is checked by this node's one sweep, not by a timer of Aedes's own.
    const conn = (client as unknown as { conn: object }).conn;
    if (packet.keepalive && conn instanceof net.Socket) {
      this.keepalives.set(client, packet.keepalive);
      packet.keepalive = 0;
    }
    cb(null, true);
  }

  private authenticate(client: Client, username: string | undefined, password: Buffer | undefined, cb: (err: AuthenticateError | null, ok: boolean | null) => void): void {
    if (this.emptyPersistentId.has(client)) return cb(connackError(Connack.identifierRejected, 'a persistent session needs a client id') as AuthenticateError, null);
    // Wills are discarded: the only topics a user may publish to are chat topics, and presence covers a
    // will's use. Aedes reads the will it stores from this field after authenticate.
    (client as unknown as { _will: unknown })._will = null;
    if (!username || !password) return cb(connackError(Connack.badUsernameOrPassword, 'username and password are required') as AuthenticateError, null);
    const conn = (client as unknown as { conn: object }).conn;
    const address = (conn as { remoteAddress?: string }).remoteAddress ?? client.req?.socket?.remoteAddress ?? 'unknown';
    // net.Socket caches {address, family, port} in _peername on first read; an idle connection need not keep it.
    if ((conn as { _peername?: unknown })._peername) (conn as { _peername?: unknown })._peername = undefined;
    const secret = password.toString('utf8');
    trimConnect(client);
    this.deps.auth.signIn(username, secret, address).then(
      (signedIn) => {
        // Long-lived registrations happen in signedIn(), whose closures do not share this scope: a closure
        // made here would keep `cb`, and through it Aedes's CONNECT state (packet, password), for the
        // connection's lifetime.
        this.signedIn(client, conn, signedIn);
        cb(null, true);
      },
      (err) => {
        const code = err instanceof SignInError ? (err.reason === 'wrong_password' ? Connack.badUsernameOrPassword : Connack.notAuthorized) : Connack.serverUnavailable;
        this.deps.metrics.signIns.inc({ door: 'mqtt', result: err instanceof SignInError ? err.reason : 'error' });
        if (!(err instanceof SignInError)) this.deps.log.error({ err, user: username }, 'sign-in failed on a backend error');
        cb(connackError(code, err instanceof SignInError ? err.message : 'server unavailable') as AuthenticateError, null);
      },
    );
  }

  private signedIn(client: Client, conn: object, signedIn: { userId: string; tokenHash?: string }): void {
    // The device exists before the CONNACK: a SUBSCRIBE may be handled before 'clientReady' fires.
    const device = this.devices.add(signedIn.userId, client, this.transports.get(conn) ?? 'tcp');
    const keepalive = this.keepalives.get(client);
    if (keepalive) {
      this.keepalives.delete(client);
      this.keepalive.watch(device, keepalive);
    }
    if (signedIn.tokenHash) {
      device.tokenHash = signedIn.tokenHash;
      this.deps.auth.track(signedIn.tokenHash, client);
    }
    this.deps.metrics.connections.inc({ transport: device.transport });
    this.deps.metrics.signIns.inc({ door: 'mqtt', result: 'ok' });
  }

  /** The 'close' listener of every connection: `this` is the stream, and Aedes set its `client`. */
  private readonly onConnClose = ((broker: ParleyBroker) =>
    function (this: { client?: Client }) {
      const client = this.client;
      if (!client) return;
      client.close(); // a no-op when Aedes closed it already
      setImmediate(() => broker.retire(client));
    })(this);

  private authorizePublish(client: Client, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    const device = this.devices.of(client);
    if (!device) return cb(new Error('not signed in'));
    const topic = packet.topic;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    // Parley answers every publish itself; the packet goes to a topic no one can subscribe to, so a
    // refused publish is still PUBACKed and the connection stays up (3.1.1 has no negative PUBACK).
    packet.topic = VOID_TOPIC;
    packet.retain = false;
    packet.payload = EMPTY;
    const target = parseSendTopic(topic);
    if (!target) {
      this.acceptor.refuse(device, forbidden(`publishing to ${JSON.stringify(topic.slice(0, 128))} is not allowed`));
      return cb(null);
    }
    // PUBACK follows durability: a publish is acknowledged on the wire only after it is stored (or refused).
    this.acceptor.accept(device, target, payload).then(() => cb(null));
  }

  private authorizeSubscribe(client: Client, sub: Subscription, cb: (err: Error | null, sub: Subscription | null) => void): void {
    const device = this.devices.of(client);
    const grant = device ? grantSubscription(device.userId, sub.topic, sub.qos) : null;
    if (!grant) return cb(null, null); // SUBACK 0x80
    cb(null, { ...sub, qos: grant.qos });
  }

  private observe(): void {
    const { aedes, deps } = this;
    // authorizePublish readdresses every device publish to VOID_TOPIC, where Aedes's publish path would copy
    // the packet, match it against its subscription tree twice (live and offline) and run its hooks, only to
    // find no one: a subscription to VOID_TOPIC is never granted (grantSubscription). Those publishes end here
    // instead (~2 % of the main thread at 2,000 msg/s, bench/HISTORY.md, round 8); Aedes has PUBACKed them
    // already. Aedes's own topics ($SYS: heartbeats that keep this broker's wills, takeovers) keep the path.
    type Done = (err?: Error) => void;
    const publish = aedes.publish.bind(aedes) as (packet: PublishPacket, client: Client | Done | null, done?: Done) => void;
    (aedes as unknown as { publish: typeof publish }).publish = (packet, client, done) => {
      if (packet.topic !== VOID_TOPIC) return publish(packet, client, done);
      const callback = typeof client === 'function' ? client : done;
      if (callback) queueMicrotask(() => callback());
    };
    // PUBACKs of clean sessions reach Aedes's persistence only as a packet id; Parley owns those ids.
    const persistence = (aedes as unknown as { persistence: unknown }).persistence as { outgoingClearMessageId(client: Client, packet: { messageId: number }): Promise<unknown> };
    const clear = persistence.outgoingClearMessageId.bind(persistence);
    persistence.outgoingClearMessageId = (client, packet) => {
      this.devices.puback(client, packet.messageId);
      return clear(client, packet);
    };

    aedes.on('clientReady', (client) => {
      const device = this.devices.of(client);
      if (!device) return client.close();
      this.deviceUp(device);
    });

    aedes.on('subscribe', (subs, client) => {
      const device = this.devices.of(client);
      if (!device) return;
      // Aedes reports refused subscriptions too, with qos 128.
      for (const s of subs) {
        if ((s.qos as number) === 128 || !s.topic.startsWith(PRESENCE_PREFIX)) continue;
        const user = s.topic.slice(PRESENCE_PREFIX.length);
        // Not retained here: the current state, read now, goes to the new subscriber as its retained message.
        if (!this.localPresence.has(user)) this.refreshPresence(user, undefined, device);
      }
      const inbox = subs.find((s) => s.topic === inboxTopic(device.userId));
      if (!inbox) return;
      device.inboxQos = inbox.qos >= 1 ? 1 : 0;
      if (client.clean) forgetAedesSubscription(aedes, client, inbox.topic);
      // Registered before the queue is read (a SUBSCRIBE may come before 'clientReady'): both go out on one
      // Redis connection in this order, so a message stored after the read finds this node in Presence and
      // is routed here live, and one stored before it is in what the read returns.
      this.deviceUp(device);
      device.drain(deps.queue, deps.config.offlineMax).catch((err) => {
        deps.log.warn({ err, user: device.userId }, 'offline queue could not be read; the device gets it on its next subscribe');
      });
    });

    aedes.on('unsubscribe', (topics, client) => {
      const device = this.devices.of(client);
      if (device && topics.includes(inboxTopic(device.userId))) device.inboxQos = null;
    });

    aedes.on('clientDisconnect', (client) => this.retire(client));

    aedes.on('clientError', (client, err) => deps.log.debug({ client: client.id, err: err.message }, 'client error'));
    aedes.on('connectionError', (_client, err) => deps.log.debug({ err: err.message }, 'connection error'));
  }

  /** Told of each welcome while greet() waits for them. */
  private welcomed: (() => void) | null = null;

  private sayHello(): void {
    this.deps.bus.broadcast({ type: 'hello' }).catch((err) => this.deps.log.warn({ err }, 'could not greet the other nodes'));
  }

  /**
   * Says hello and waits, before this node takes connections, for a welcome from every live node: from then
   * on they look up and route to this node's devices. Nodes that start at the same time greet each other
   * either way (both listen before they say hello). A live node that stays silent is logged; it routes
   * here once it hears a hello, and this node's devices get what it sent meanwhile when they connect again.
   */
  private async greet(): Promise<void> {
    const { presence, config, log } = this.deps;
    this.sayHello();
    const others = (await presence.liveNodes()).filter((n) => n !== config.nodeId);
    const missing = () => others.filter((n) => !this.router.hasPeer(n));
    if (missing().length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, GREET_TIMEOUT_MS);
      this.welcomed = () => {
        if (missing().length > 0) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.welcomed = null;
    if (missing().length > 0) log.warn({ nodes: missing() }, 'no welcome from these live nodes');
  }

  /** Counts the device in Presence, once; the user's first device makes them online. */
  private deviceUp(device: Device): void {
    if (device.presenceUp) return;
    device.presenceUp = true;
    this.deps.presence.deviceUp(device.userId, device.key).then(
      (first) => first && this.publishPresence(device.userId, 'online', Date.now()),
      (err) => {
        // Unregistered, no other node would route to it: it connects again (and registers) instead.
        this.deps.log.warn({ err, user: device.userId }, 'presence update failed; closing the connection');
        device.presenceUp = false;
        device.client.close();
      },
    );
  }

  /** What another node sent: a delivery for a device here, a presence change, a revoked token. */
  private fromNode(message: NodeMessage, from: number): void {
    switch (message.type) {
      case 'hello':
        this.router.addPeer(from);
        this.deps.bus.send(from, { type: 'welcome' }).catch((err) => this.deps.log.warn({ err, node: from }, 'could not welcome a node'));
        // A node starting at the same time may have missed our hello: its own counts as its welcome.
        return this.welcomed?.();
      case 'welcome':
        this.router.addPeer(from);
        return this.welcomed?.();
      case 'bye':
        return this.router.removePeer(from);
      case 'deliver':
        return this.router.received(message);
      case 'presence':
        // Changes from different nodes may arrive in any order: what is published is Presence's state.
        return this.refreshPresence(message.user, message);
      case 'logout':
        return this.deps.auth.closeSessions(message.tokenHash);
    }
  }

  /**
   * Publishes the user's state as Presence has it now: here, or to `subscriber` alone as a retained message
   * (what a new subscriber gets when the state is not retained here). `change`: the change that prompted
   * it, whose time is used while it still holds (Presence keeps no time for coming online).
   */
  private refreshPresence(userId: string, change?: { state: 'online' | 'offline'; ts: number }, subscriber?: Device): void {
    const { presence, log } = this.deps;
    const send = (state: 'online' | 'offline', ts: number) =>
      subscriber ? subscriber.notify(Buffer.from(presenceEnvelope(userId, state, ts)), presenceTopic(userId), true) : this.publishPresenceHere(userId, state, ts);
    Promise.all([presence.isOnline(userId), presence.lastSeen(userId)]).then(
      ([online, seen]) => {
        if (online) send('online', change?.state === 'online' ? change.ts : Date.now());
        else if (seen !== null) send('offline', seen);
      },
      (err) => log.warn({ err, user: userId }, 'presence could not be read'),
    );
  }

  /** Live deliveries to this node's online devices wait for the next recover(): see BusEvents.onResume. */
  private holdDeliveries(): void {
    for (const device of this.devices.subscribed()) device.hold();
  }

  /**
   * This node may have missed what the others sent (the bus lost its connection, or this node's heartbeat
   * lapsed and the others stopped routing here): everything the bus carries is durable elsewhere, so it is
   * read again — each online device's queue (at least once: clients drop ids they have seen), the presence
   * of this node's users, and whether each token signed in here still stands.
   */
  private recover(reason: string): void {
    const { queue, config, log, auth } = this.deps;
    log.warn({ reason }, "this node may have missed messages from the others; reading its devices' queues, presence and tokens again");
    for (const device of this.devices.subscribed()) {
      device.drain(queue, config.offlineMax).catch((err) => log.warn({ err, user: device.userId }, 'offline queue could not be read'));
    }
    for (const user of this.localPresence) this.refreshPresence(user);
    auth.recheckSessions().catch((err) => log.warn({ err }, 'tokens could not be checked again'));
  }

  /** A connection ended (disconnected, or dropped before it was fully connected); safe to call twice. */
  private retire(client: Client): void {
    const device = this.devices.of(client);
    if (!device || !this.devices.remove(device)) return;
    if (device.tokenHash) this.deps.auth.untrack(device.tokenHash, client);
    this.deps.metrics.connections.dec({ transport: device.transport });
    if (!device.presenceUp) return;
    const now = Date.now();
    this.deps.presence.deviceDown(device.userId, device.key, now).then(
      (last) => last && this.publishPresence(device.userId, 'offline', now),
      (err) => this.deps.log.warn({ err, user: device.userId }, 'presence update failed'),
    );
  }

  /** A presence change of a device here: retained here from now on, and published on every node. */
  publishPresence(userId: string, state: 'online' | 'offline', ts: number): void {
    this.localPresence.add(userId);
    this.announcePresence(userId, state, ts);
  }

  /** A presence change seen here, published here and on every other node. */
  private announcePresence(userId: string, state: 'online' | 'offline', ts: number): void {
    this.publishPresenceHere(userId, state, ts);
    this.deps.bus.broadcast({ type: 'presence', user: userId, state, ts }).catch((err) => this.deps.log.warn({ err, user: userId }, 'could not tell the other nodes of a presence change'));
  }

  /**
   * QoS 0, published by the broker only (clients can never publish to presence/); retained for this node's
   * own users, live only for the others (whose state is read on subscribe).
   */
  private publishPresenceHere(userId: string, state: 'online' | 'offline', ts: number): void {
    const payload = Buffer.from(presenceEnvelope(userId, state, ts));
    const retain = this.localPresence.has(userId);
    this.aedes.publish({ cmd: 'publish', topic: presenceTopic(userId), payload, qos: 0, retain, dup: false } as PublishPacket, noop);
  }

  private async startPresence(): Promise<void> {
    const { presence, config, log } = this.deps;
    // Devices this node had before a crash are gone: their users are offline until they reconnect.
    for (const user of await presence.resetNode(Date.now())) this.publishPresence(user, 'offline', Date.now());
    await presence.heartbeat(Date.now());
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      presence.heartbeat(now).then(
        ({ offline, lapsed }) => {
          // Another node's users: announced, not made this node's own.
          offline.forEach((u) => this.announcePresence(u, 'offline', now));
          if (!lapsed) return;
          // Registered again first: a queue read after it cannot miss what the others route here next.
          this.registerDevicesAgain();
          this.recover('this node had been given up for dead (its heartbeat lapsed)');
        },
        (err) => log.warn({ err }, 'presence heartbeat failed'),
      );
    }, config.presenceHeartbeatMs);
    this.heartbeat.unref();
  }

  /** After this node was given up for dead, its connected devices go back into Presence. */
  private registerDevicesAgain(): void {
    this.deps.log.warn('presence heartbeat had lapsed; registering this node\'s devices again');
    for (const device of this.devices.all()) {
      if (!device.presenceUp) continue;
      device.presenceUp = false;
      this.deviceUp(device);
    }
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.keepalive.stop();
    await this.deps.bus.broadcast({ type: 'bye' }).catch(() => undefined);
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
  }
}
