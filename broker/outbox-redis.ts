import type { Redis } from 'ioredis';
import type { LogRecord } from '../common/event-log.ts';
import type { Outbox } from './outbox.ts';

/** Redis list `outbox:{node}`, each entry `{key}\t{value}`; one per broker node, drained by that node. */
export class RedisOutbox implements Outbox {
  readonly adapter = 'redis';
  private readonly key: string;
  constructor(
    private readonly redis: Redis,
    nodeId: number,
  ) {
    this.key = outboxKey(nodeId);
  }
  async append(records: readonly LogRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.redis.rpush(this.key, ...records.map(outboxRow));
  }
  async peek(limit: number): Promise<LogRecord[]> {
    if (limit <= 0) return [];
    return (await this.redis.lrange(this.key, 0, limit - 1)).map((row) => {
      const tab = row.indexOf('\t');
      return { key: row.slice(0, tab), value: row.slice(tab + 1) };
    });
  }
  async drop(count: number): Promise<void> {
    if (count > 0) await this.redis.ltrim(this.key, count, -1);
  }
  length(): Promise<number> {
    return this.redis.llen(this.key);
  }
  async close(): Promise<void> {}
}

export const outboxKey = (nodeId: number) => `outbox:${nodeId}`;
export const outboxRow = (r: LogRecord) => `${r.key}\t${r.value}`;
