import type { Redis } from 'ioredis';
import type { Presence } from './presence.ts';

// presence:devices:{user}  hash  "{node}/{device}" → node
// presence:users:{node}    set   users with a device on that node
// presence:alive:{node}    key   with a TTL of three heartbeats
// presence:nodes           set   nodes that have ever heartbeated and were not swept yet
// presence:seen:{user}     ms    last seen

const DOWN = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local left = redis.call('HKEYS', KEYS[1])
local onNode = false
for _, f in ipairs(left) do
  if string.sub(f, 1, string.len(ARGV[2])) == ARGV[2] then onNode = true break end
end
if not onNode then redis.call('SREM', KEYS[2], ARGV[3]) end
if #left == 0 then redis.call('SET', KEYS[3], ARGV[4]) return 1 end
return 0`;

const SWEEP_USER = `
local removed = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, string.len(ARGV[1])) == ARGV[1] then redis.call('HDEL', KEYS[1], f) removed = removed + 1 end
end
if removed > 0 and redis.call('HLEN', KEYS[1]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) return 1 end
return 0`;

type Scripts = {
  presenceDown(devices: string, nodeUsers: string, seen: string, field: string, prefix: string, user: string, now: number): Promise<number>;
  presenceSweepUser(devices: string, seen: string, prefix: string, now: number): Promise<number>;
};

export class RedisPresence implements Presence {
  readonly adapter = 'redis';
  private readonly r: Redis & Scripts;

  constructor(
    redis: Redis,
    private readonly nodeId: number,
    private readonly heartbeatMs: number,
  ) {
    redis.defineCommand('presenceDown', { numberOfKeys: 3, lua: DOWN });
    redis.defineCommand('presenceSweepUser', { numberOfKeys: 2, lua: SWEEP_USER });
    this.r = redis as Redis & Scripts;
  }

  async deviceUp(userId: string, deviceId: string): Promise<boolean> {
    const res = await this.r
      .multi()
      .hset(`presence:devices:${userId}`, `${this.nodeId}/${deviceId}`, this.nodeId)
      .sadd(`presence:users:${this.nodeId}`, userId)
      .hlen(`presence:devices:${userId}`)
      .exec();
    if (!res) throw new Error('presence transaction aborted');
    for (const [err] of res) if (err) throw err;
    return res[2][1] === 1;
  }

  async deviceDown(userId: string, deviceId: string, now: number): Promise<boolean> {
    const gone = await this.r.presenceDown(
      `presence:devices:${userId}`,
      `presence:users:${this.nodeId}`,
      `presence:seen:${userId}`,
      `${this.nodeId}/${deviceId}`,
      `${this.nodeId}/`,
      userId,
      now,
    );
    return gone === 1;
  }

  async isOnline(userId: string): Promise<boolean> {
    return (await this.r.hlen(`presence:devices:${userId}`)) > 0;
  }

  async liveNodes(): Promise<number[]> {
    const nodes = await this.r.smembers('presence:nodes');
    const alive = await Promise.all(nodes.map((n) => this.r.exists(`presence:alive:${n}`)));
    return nodes.filter((_, i) => alive[i] === 1).map(Number);
  }

  async nodesOf(userId: string): Promise<number[]> {
    const nodes = await this.r.hvals(`presence:devices:${userId}`);
    return [...new Set(nodes)].map(Number);
  }

  async lastSeen(userId: string): Promise<number | null> {
    const v = await this.r.get(`presence:seen:${userId}`);
    return v === null ? null : Number(v);
  }

  private beats = 0;

  async heartbeat(now: number): Promise<{ offline: string[]; lapsed: boolean }> {
    const res = await this.r
      .multi()
      .set(`presence:alive:${this.nodeId}`, now, 'PX', this.heartbeatMs * 3, 'GET')
      .sadd('presence:nodes', this.nodeId)
      .exec();
    if (!res) throw new Error('presence transaction aborted');
    // Our key had expired since the last beat: others may have swept our devices.
    const lapsed = this.beats++ > 0 && res[0][1] === null;
    const offline: string[] = [];
    for (const node of await this.r.smembers('presence:nodes')) {
      if (Number(node) === this.nodeId || (await this.r.exists(`presence:alive:${node}`))) continue;
      // One node sweeps a dead one; the lock outlives a sweep so the others skip it.
      if ((await this.r.set(`presence:sweep:${node}`, this.nodeId, 'PX', this.heartbeatMs * 2, 'NX')) !== 'OK') continue;
      offline.push(...(await this.sweep(node, now)));
      await this.r.srem('presence:nodes', node);
    }
    return { offline, lapsed };
  }

  resetNode(now: number): Promise<string[]> {
    return this.sweep(String(this.nodeId), now);
  }

  private async sweep(node: string, now: number): Promise<string[]> {
    const offline: string[] = [];
    for (const userId of await this.r.smembers(`presence:users:${node}`)) {
      if ((await this.r.presenceSweepUser(`presence:devices:${userId}`, `presence:seen:${userId}`, `${node}/`, now)) === 1) offline.push(userId);
    }
    await this.r.del(`presence:users:${node}`);
    return offline;
  }

  async close(): Promise<void> {
    // Only a node that heartbeated says it is gone: a process that never did (an archiver sharing the
    // node id) must not make the others sweep that broker's devices.
    if (this.beats === 0) return;
    await this.r.del(`presence:alive:${this.nodeId}`).catch(() => undefined);
  }
}
