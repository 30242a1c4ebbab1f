// ClusterBus port: messages between the broker nodes of one deployment (DESIGN.md, "Scaling out"). A node is
// addressed by its node id; what one node sends to another arrives in the order it was sent; a broadcast
// reaches every other node. Delivery is at most once: everything the bus carries is already durable
// elsewhere (a message in its receiver's offline queue, presence in the Presence port, a revoked token in
// the TokenStore), so a node that is down or restarting misses it and nothing is lost.
export type NodeMessage =
  /** A live delivery for the devices of `user` on the receiving node. */
  | { type: 'deliver'; user: string; id: string; text: string; queued: boolean; qos: 0 | 1 }
  /** A user's presence changed; every node republishes it on `presence/{user}` for its own subscribers. */
  | { type: 'presence'; user: string; state: 'online' | 'offline'; ts: number }
  /** A token was revoked; every node closes the MQTT sessions that signed in with it. */
  | { type: 'logout'; tokenHash: string }
  /** A node is listening (it started, or may have missed messages); every node answers `welcome`. */
  | { type: 'hello' }
  | { type: 'welcome' }
  /** A node is stopping. */
  | { type: 'bye' };

export type NodeMessageHandler = (message: NodeMessage, fromNode: number) => void;

export interface BusEvents {
  /** A message that could not be read, or whose handler threw: dropped and reported here. */
  onError?(err: unknown): void;
  /**
   * This node may have missed messages (its connection to the transport was lost and is back): what the
   * bus would have carried must be read again from where it is durable.
   */
  onGap?(): void;
  /**
   * The connection is back and messages may have been missed: called before anything sent from now on can
   * reach the handler, and followed by onGap once the re-subscription is answered or given up (the Redis
   * bus: after maxRetriesPerRequest). Live deliveries should wait for onGap's re-read, or they would
   * overtake what was missed.
   */
  onResume?(): void;
}

export interface ClusterBus {
  readonly adapter: 'redis' | 'embedded';
  readonly nodeId: number;
  /** Starts receiving; once it resolves, whatever is sent to this node (or broadcast) reaches `handler`. */
  listen(handler: NodeMessageHandler, events?: BusEvents): Promise<void>;
  /** Sends to one node; resolves once handed to the transport. A node that is not listening misses it. */
  send(node: number, message: NodeMessage): Promise<void>;
  /** Sends to every other node that is listening (never back to this one). */
  broadcast(message: NodeMessage): Promise<void>;
  close(): Promise<void>;
}
