import type { Presence } from './presence.ts';

/** One process is the whole cluster: presence is a map, and there are no other nodes to outlive. */
export class EmbeddedPresence implements Presence {
  readonly adapter = 'embedded';
  private readonly devices = new Map<string, Set<string>>();
  private readonly seen = new Map<string, number>();

  constructor(private readonly nodeId = 0) {}

  async deviceUp(userId: string, deviceId: string): Promise<boolean> {
    let set = this.devices.get(userId);
    if (!set) this.devices.set(userId, (set = new Set()));
    set.add(deviceId);
    return set.size === 1;
  }

  async deviceDown(userId: string, deviceId: string, now: number): Promise<boolean> {
    const set = this.devices.get(userId);
    if (!set || !set.delete(deviceId)) return false;
    if (set.size > 0) return false;
    this.devices.delete(userId);
    this.seen.set(userId, now);
    return true;
  }

  async isOnline(userId: string): Promise<boolean> {
    return this.devices.has(userId);
  }

  async liveNodes(): Promise<number[]> {
    return [this.nodeId];
  }

  async nodesOf(userId: string): Promise<number[]> {
    return this.devices.has(userId) ? [this.nodeId] : [];
  }

  async lastSeen(userId: string): Promise<number | null> {
    return this.seen.get(userId) ?? null;
  }

  async heartbeat(): Promise<{ offline: string[]; lapsed: boolean }> {
    return { offline: [], lapsed: false };
  }

  async resetNode(now: number): Promise<string[]> {
    const users = [...this.devices.keys()];
    for (const u of users) this.seen.set(u, now);
    this.devices.clear();
    return users;
  }

  async close(): Promise<void> {}
}
