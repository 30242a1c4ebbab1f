import type { Redis } from 'ioredis';
import type { Dedupe } from './dedupe.ts';

export class RedisDedupe implements Dedupe {
  readonly adapter = 'redis';
  constructor(private readonly redis: Redis) {}
  claim(sender: string, cid: string, value: string, ttlSeconds: number): Promise<string | null> {
    // SET NX GET (Redis ≥ 7): one round trip both claims and reads an earlier claim.
    return this.redis.set(`dedupe:${sender}:${cid}`, value, 'EX', ttlSeconds, 'NX', 'GET');
  }
  async release(sender: string, cid: string): Promise<void> {
    await this.redis.del(`dedupe:${sender}:${cid}`);
  }
  async close(): Promise<void> {}
}
