// Presence port: which users have a device connected anywhere in the cluster, and when each was last seen.
// Every node heartbeats; the devices of a node whose heartbeat stops are taken offline by the others.
export interface Presence {
  readonly adapter: 'redis' | 'embedded';
  /** A device connected on this node; true when it is the user's first device online. */
  deviceUp(userId: string, deviceId: string): Promise<boolean>;
  /** A device left; true when it was the user's last device (last seen is then `now`). */
  deviceDown(userId: string, deviceId: string, now: number): Promise<boolean>;
  isOnline(userId: string): Promise<boolean>;
  /** The nodes whose heartbeat is current (this one included once it has beaten), in no particular order. */
  liveNodes(): Promise<number[]>;
  /** The nodes where the user has a device connected, each once, in no particular order. */
  nodesOf(userId: string): Promise<number[]>;
  lastSeen(userId: string): Promise<number | null>;
  /**
   * Refreshes this node's heartbeat and takes dead nodes' devices offline. `offline`: users that went
   * offline; `lapsed`: this node itself had been given up for dead (a long pause) and must register its
   * devices again.
   */
  heartbeat(now: number): Promise<{ offline: string[]; lapsed: boolean }>;
  /** Forgets every device this node had (a restart after a crash); returns the users that went offline. */
  resetNode(now: number): Promise<string[]>;
  close(): Promise<void>;
}
