import type { BusEvents, ClusterBus, NodeMessage, NodeMessageHandler } from './cluster-bus.ts';

/** The nodes of one deployment in one process. `npm start` runs one node, so its bus has nobody to talk to. */
export class EmbeddedClusterHub {
  readonly nodes = new Map<number, NodeMessageHandler>();
  private static readonly byDeployment = new Map<string, EmbeddedClusterHub>();

  /** The hub of the deployment whose data lives in `dataDir` (several can run in one process, as tests do). */
  static of(dataDir: string): EmbeddedClusterHub {
    let hub = EmbeddedClusterHub.byDeployment.get(dataDir);
    if (!hub) EmbeddedClusterHub.byDeployment.set(dataDir, (hub = new EmbeddedClusterHub()));
    return hub;
  }
}

/**
 * Nodes in one process, through a hub. Messages are copied (as the wire would) and handed over a turn later,
 * in the order sent, so a sender never runs its receiver's code inside its own call.
 */
export class EmbeddedClusterBus implements ClusterBus {
  readonly adapter = 'embedded';
  private handler: NodeMessageHandler | null = null;

  constructor(
    readonly nodeId: number,
    private readonly hub: EmbeddedClusterHub,
  ) {}

  /** In one process nothing is lost between nodes, so there are no gaps to report. */
  async listen(handler: NodeMessageHandler, { onError = () => {} }: BusEvents = {}): Promise<void> {
    if (this.hub.nodes.has(this.nodeId)) throw new Error(`node ${this.nodeId} is already listening in this process`);
    const guarded: NodeMessageHandler = (message, from) => {
      try {
        handler(message, from);
      } catch (err) {
        onError(err);
      }
    };
    this.handler = guarded;
    this.hub.nodes.set(this.nodeId, guarded);
  }

  async send(node: number, message: NodeMessage): Promise<void> {
    this.handTo(this.hub.nodes.get(node), JSON.stringify(message));
  }

  async broadcast(message: NodeMessage): Promise<void> {
    const text = JSON.stringify(message);
    for (const [node, handler] of this.hub.nodes) if (node !== this.nodeId) this.handTo(handler, text);
  }

  private handTo(handler: NodeMessageHandler | undefined, text: string): void {
    if (!handler) return;
    const from = this.nodeId;
    setImmediate(() => handler(JSON.parse(text) as NodeMessage, from));
  }

  async close(): Promise<void> {
    if (this.handler && this.hub.nodes.get(this.nodeId) === this.handler) this.hub.nodes.delete(this.nodeId);
    this.handler = null;
  }
}
