import type { Redis } from 'ioredis';
import { TurnBatch } from '../common/turn-batch.ts';
import type { OfflineQueue, QueuedMessage } from './offline-queue.ts';

// Devices' PUBACKs remove what they confirm: nobody waits for that, so the removals of REMOVAL_LINGER_MS
// go together, in call order, in one script call (TurnBatch). Sent one by one, each cost the broker a
// socket write and Redis a command and a reply, and under `appendfsync always` it could cost an fsync
// (Redis syncs after each turn of its event loop that wrote anything). A read of the queue sends the removals waiting first, so
// it never sees a message this node has seen confirmed. A removal lost with its node leaves the message to
// be delivered again, which clients drop by its id (PROTOCOL.md, guarantees), as before.
// KEYS: a queue per removal; ARGV: the row to remove from it (its first occurrence). Answers '' or the
// error of that one removal (a key of the wrong type): the others go ahead.
const REMOVE = `#!lua
local answers = {}
for i = 1, #KEYS do
  local ok, err = pcall(redis.call, 'LREM', KEYS[i], 1, ARGV[i])
  if ok then answers[i] = '' else answers[i] = tostring(err.err or err) end
end
return answers
`;

type Scripts = {
  queueRemove(numberOfKeys: number, ...keysAndArgs: string[]): Promise<string[]>;
};

/** How long a PUBACK's removal waits, by default, for others to go with it. */
export const REMOVAL_LINGER_MS = 5;

/** Redis list `offline:{userId}`; durability is Redis's AOF (appendfsync always for the no-loss promise). */
export class RedisOfflineQueue implements OfflineQueue {
  readonly adapter = 'redis';
  private readonly removals: TurnBatch<{ userId: string; message: QueuedMessage }, void>;

  constructor(
    private readonly redis: Redis,
    private readonly max: number,
    removalLingerMs = REMOVAL_LINGER_MS,
  ) {
    this.removals = new TurnBatch((items) => this.removeAll(items), 128, removalLingerMs);
    redis.defineCommand('queueRemove', { lua: REMOVE });
  }

  async push(batch: readonly { userId: string; message: QueuedMessage }[]): Promise<void> {
    await Promise.all(
      batch.flatMap(({ userId, message }) => [this.redis.rpush(queueKey(userId), encodeQueued(message)), this.redis.ltrim(queueKey(userId), -this.max, -1)]),
    );
  }

  async list(userId: string, limit: number): Promise<QueuedMessage[]> {
    if (limit <= 0) return []; // LRANGE 0 -1 would be the whole list
    this.removals.flush();
    const rows = await this.redis.lrange(queueKey(userId), 0, limit - 1);
    return rows.map(decode);
  }

  remove(userId: string, message: QueuedMessage): Promise<void> {
    return this.removals.add({ userId, message });
  }

  private async removeAll(items: readonly { userId: string; message: QueuedMessage }[]): Promise<(undefined | Error)[]> {
    // A script call costs Redis ~20 µs more than the LREM it makes: worth it only for two or more.
    if (items.length === 1) {
      await this.redis.lrem(queueKey(items[0].userId), 1, encodeQueued(items[0].message));
      return [undefined];
    }
    const keys = items.map((r) => queueKey(r.userId));
    const answers = await (this.redis as Redis & Scripts).queueRemove(keys.length, ...keys, ...items.map((r) => encodeQueued(r.message)));
    return answers.map((err) => (err === '' ? undefined : new Error(`Redis refused the removal: ${err}`)));
  }

  length(userId: string): Promise<number> {
    this.removals.flush();
    return this.redis.llen(queueKey(userId));
  }

  /** Sends what this turn gathered now, ahead of whatever the caller does to the connection next (QUIT). */
  async close(): Promise<void> {
    this.removals.flush();
  }
}

export const queueKey = (userId: string) => `offline:${userId}`;
// The id leads so analysts reading the list see it without parsing JSON.
export const encodeQueued = (m: QueuedMessage) => `${m.id} ${m.payload}`;
function decode(row: string): QueuedMessage {
  const i = row.indexOf(' ');
  return { id: row.slice(0, i), payload: row.slice(i + 1) };
}
