import type { Redis } from 'ioredis';
import type { BusEvents, ClusterBus, NodeMessage, NodeMessageHandler } from './cluster-bus.ts';

// Redis pub/sub. Channels are not keys (ioredis's keyPrefix does not apply to them), so the deployment's key
// prefix is put in front by hand: two deployments on one Redis never hear each other.
//   {prefix}cluster:node:{id}   messages for one node
//   {prefix}cluster:all         broadcasts
// A message is "{from node} {JSON}". Pub/sub keeps the order of one publishing connection, which is what
// the port promises; a subscriber that is away misses what was published meanwhile, which the port allows.

export class RedisClusterBus implements ClusterBus {
  readonly adapter = 'redis';
  private readonly prefix: string;
  private subscriber: Redis | null = null;

  /** `redis` publishes (any connection will do); listening takes a connection of its own. */
  constructor(
    private readonly redis: Redis,
    readonly nodeId: number,
  ) {
    this.prefix = redis.options.keyPrefix ?? '';
  }

  private nodeChannel(node: number): string {
    return `${this.prefix}cluster:node:${node}`;
  }

  private get allChannel(): string {
    return `${this.prefix}cluster:all`;
  }

  async listen(handler: NodeMessageHandler, { onError = () => {}, onGap = () => {}, onResume = () => {} }: BusEvents = {}): Promise<void> {
    if (this.subscriber) throw new Error('this bus is already listening');
    // A connection in subscriber mode can run no other command; it has no key prefix to apply either.
    // Named, so an operator (or a test) can find it in CLIENT LIST.
    const connectionName = `parley-bus-${this.prefix}${this.nodeId}`.replace(/[^\w:.-]/g, '_');
    const sub = this.redis.duplicate({ keyPrefix: '', enableAutoPipelining: false, connectionName });
    this.subscriber = sub;
    sub.on('message', (_channel: string, text: string) => {
      const space = text.indexOf(' ');
      const from = Number(text.slice(0, space));
      if (from === this.nodeId) return; // our own broadcast
      try {
        handler(JSON.parse(text.slice(space + 1)) as NodeMessage, from);
      } catch (err) {
        onError(err); // not thrown at ioredis's event emitter, where it would end the process
      }
    });
    sub.on('error', onError);
    const channels = [this.nodeChannel(this.nodeId), this.allChannel];
    await sub.subscribe(...channels);
    // After a reconnect ioredis subscribes again by itself, but whatever was published meanwhile is gone.
    // It sends that subscribe and emits 'ready' on the next tick, before any reply on the new connection is
    // read: onResume runs before a new message can arrive. The gap is reported once our own (idempotent)
    // SUBSCRIBE is answered, so what is re-read then cannot miss what is published next. If it fails (the
    // connection drops again: ioredis gives a command up after maxRetriesPerRequest, common/redis.ts), the
    // gap is still reported: the re-read does no harm, and the deliveries onResume held are let go.
    sub.on('ready', () => {
      onResume();
      sub.subscribe(...channels).then(onGap, (err: unknown) => {
        onError(err);
        onGap();
      });
    });
  }

  async send(node: number, message: NodeMessage): Promise<void> {
    await this.redis.publish(this.nodeChannel(node), `${this.nodeId} ${JSON.stringify(message)}`);
  }

  async broadcast(message: NodeMessage): Promise<void> {
    await this.redis.publish(this.allChannel, `${this.nodeId} ${JSON.stringify(message)}`);
  }

  async close(): Promise<void> {
    const sub = this.subscriber;
    this.subscriber = null;
    if (sub) await sub.quit().catch(() => sub.disconnect());
  }
}
