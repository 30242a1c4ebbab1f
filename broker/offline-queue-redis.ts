import type { Redis } from 'ioredis';
import type { OfflineQueue, QueuedMessage } from './offline-queue.ts';

/** Redis list `offline:{userId}`; durability is Redis's AOF (appendfsync always for the no-loss promise). */
export class RedisOfflineQueue implements OfflineQueue {
  readonly adapter = 'redis';
  constructor(
    private readonly redis: Redis,
    private readonly max: number,
  ) {}

  async push(batch: readonly { userId: string; message: QueuedMessage }[]): Promise<void> {
    // Plain commands, not a pipeline() per call: auto-pipelining sends every push of one event-loop turn
    // (many messages, many senders) in one write.
    await Promise.all(
      batch.flatMap(({ userId, message }) => [this.redis.rpush(key(userId), encode(message)), this.redis.ltrim(key(userId), -this.max, -1)]),
    );
  }

  async list(userId: string, limit: number): Promise<QueuedMessage[]> {
    if (limit <= 0) return []; // LRANGE 0 -1 would be the whole list
    const rows = await this.redis.lrange(key(userId), 0, limit - 1);
    return rows.map(decode);
  }

  async remove(userId: string, message: QueuedMessage): Promise<void> {
    await this.redis.lrem(key(userId), 1, encode(message));
  }

  length(userId: string): Promise<number> {
    return this.redis.llen(key(userId));
  }

  async close(): Promise<void> {}
}

const key = (userId: string) => `offline:${userId}`;
// The id leads so analysts reading the list see it without parsing JSON.
const encode = (m: QueuedMessage) => `${m.id} ${m.payload}`;
function decode(row: string): QueuedMessage {
  const i = row.indexOf(' ');
  return { id: row.slice(0, i), payload: row.slice(i + 1) };
}
