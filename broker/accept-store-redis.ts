import type { Redis } from 'ioredis';
import type { AcceptStore, AcceptWrite, Stored } from './accept-store.ts';
import { encodeQueued, queueKey } from './offline-queue-redis.ts';
import { outboxKey, outboxRow } from './outbox-redis.ts';

// KEYS: the claim `dedupe:{sender}:{cid}`, the outbox list, then one queue list per recipient.
// ARGV: claim value, ttl, queue max, number of outbox rows, the outbox rows, then one queue row per queue key.
// A script runs atomically and its writes reach the AOF together (fsync'd before the reply under
// `appendfsync always`), so no claim is ever durable without its store. SET NX GET needs Redis ≥ 7.
const STORE = `
local earlier = redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX', 'GET')
if earlier then return earlier end
local max = tonumber(ARGV[3])
local rows = tonumber(ARGV[4])
for i = 1, rows do redis.call('RPUSH', KEYS[2], ARGV[4 + i]) end
for i = 3, #KEYS do
  redis.call('RPUSH', KEYS[i], ARGV[2 + rows + i])
  redis.call('LTRIM', KEYS[i], -max, -1)
end
return false
`;

type Scripts = {
  acceptStore(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<string | null>;
};

/** Uses the key layout of RedisOfflineQueue and RedisOutbox (README, "Redis keys"), which read what it writes. */
export class RedisAcceptStore implements AcceptStore {
  readonly adapter = 'redis';
  private readonly outbox: string;
  private readonly r: Redis & Scripts;

  constructor(
    redis: Redis,
    nodeId: number,
    private readonly max: number,
  ) {
    this.outbox = outboxKey(nodeId);
    // No numberOfKeys: it varies with the recipients and is passed first on each call.
    redis.defineCommand('acceptStore', { lua: STORE });
    this.r = redis as Redis & Scripts;
  }

  /** One reply for both stages: Redis answers once the script's writes are in its AOF (fsync'd first under `always`). */
  store(w: AcceptWrite): Stored {
    const keys = [dedupeKey(w.sender, w.cid), this.outbox, ...w.queue.map((q) => queueKey(q.userId))];
    const args = [w.claim, w.ttlSeconds, this.max, w.outbox.length, ...w.outbox.map(outboxRow), ...w.queue.map((q) => encodeQueued(q.message))];
    const reply = this.r.acceptStore(keys.length, ...keys, ...args);
    return { written: reply, durable: reply };
  }

  async close(): Promise<void> {}
}

export const dedupeKey = (sender: string, cid: string) => `dedupe:${sender}:${cid}`;
