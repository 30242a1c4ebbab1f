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
      batch.flatMap(({ userId, message }) => [this.redis.rpush(queueKey(userId), encodeQueued(message)), this.redis.ltrim(queueKey(userId), -this.max, -1)]),
    );
  }

  async list(userId: string, limit: number): Promise<QueuedMessage[]> {
    if (limit <= 0) return []; // LRANGE 0 -1 would be the whole list
    const rows = await this.redis.lrange(queueKey(userId), 0, limit - 1);
    return rows.map(decode);
  }

  async remove(userId: string, message: QueuedMessage): Promise<void> {
    await this.redis.lrem(queueKey(userId), 1, encodeQueued(message));
  }

  length(userId: string): Promise<number> {
    return this.redis.llen(queueKey(userId));
  }

  async close(): Promise<void> {}
}

export const queueKey = (userId: string) => `offline:${userId}`;
// The id leads so analysts reading the list see it without parsing JSON.
export const encodeQueued = (m: QueuedMessage) => `${m.id} ${m.payload}`;
function decode(row: string): QueuedMessage {
  const i = row.indexOf(' ');
  return { id: row.slice(0, i), payload: row.slice(i + 1) };
}
