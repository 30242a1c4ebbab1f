// Router: takes a delivery to the devices of its user, wherever they are connected. Routing is by
// receiver: the Presence port names the nodes that hold the user's devices, and each other node gets the
// delivery once over the ClusterBus, so one message crosses at most one hop whatever the number of nodes
// (DESIGN.md, "Scaling out"). The hop is best effort: a queued delivery is already durable in the
// receiver's offline queue, which a device reads when it subscribes.
import type { Logger } from '../common/log.ts';
import type { ClusterBus, NodeMessage } from './cluster-bus.ts';
import type { Device, DeviceRegistry, Delivery } from './devices.ts';
import type { Presence } from './presence.ts';

export interface Router {
  /** Delivers to every online device of the user, except `except` (the sending device). */
  deliver(userId: string, delivery: Delivery, except?: Device): void;
}

/** This node's devices. */
export class LocalRouter implements Router {
  constructor(private readonly devices: DeviceRegistry) {}

  deliver(userId: string, delivery: Delivery, except?: Device): void {
    for (const device of this.devices.online(userId)) if (device !== except) device.deliver(delivery);
  }
}

/**
 * This node's devices at once, then every other node that holds a device of the user, over the bus. While
 * no other node has said hello the lookup is skipped: a single node pays nothing per message. A node that
 * starts greets the live ones and waits for their welcome before it takes connections, so no device can
 * be registered on a node that the others do not know yet.
 */
export class ClusterRouter implements Router {
  private readonly local: LocalRouter;
  /** Other nodes that said hello or welcome (and not bye). A dead one stays until it says hello again. */
  private readonly peers = new Set<number>();

  constructor(
    devices: DeviceRegistry,
    private readonly presence: Presence,
    private readonly bus: ClusterBus,
    private readonly log: Logger,
  ) {
    this.local = new LocalRouter(devices);
  }

  deliver(userId: string, delivery: Delivery, except?: Device): void {
    this.local.deliver(userId, delivery, except);
    if (this.peers.size === 0) return;
    // Lookups resolve, and publishes leave, in the order they were made: one sender's messages reach
    // another node in the order accepted.
    this.presence.nodesOf(userId).then(
      (nodes) => {
        for (const node of nodes) if (node !== this.bus.nodeId) this.forward(node, userId, delivery);
      },
      (err) => this.log.warn({ err, user: userId, id: delivery.id }, 'could not look up where a user is connected; queued messages wait for the next subscribe'),
    );
  }

  private forward(node: number, userId: string, d: Delivery): void {
    const message: NodeMessage = { type: 'deliver', user: userId, id: d.id, text: d.text, queued: d.queued, qos: d.qos };
    this.bus.send(node, message).catch((err) => this.log.warn({ err, node, user: userId, id: d.id }, 'could not pass a delivery to another node'));
  }

  addPeer(node: number): void {
    if (node !== this.bus.nodeId) this.peers.add(node);
  }

  removePeer(node: number): void {
    this.peers.delete(node);
  }

  hasPeer(node: number): boolean {
    return this.peers.has(node);
  }

  /** A delivery another node routed here: to this node's devices of the user. */
  received(m: Extract<NodeMessage, { type: 'deliver' }>): void {
    this.local.deliver(m.user, { id: m.id, text: m.text, payload: Buffer.from(m.text), queued: m.queued, qos: m.qos });
  }
}
