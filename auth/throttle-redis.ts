import type { Redis } from 'ioredis';
import type { Throttle } from './throttle.ts';

export class RedisThrottle implements Throttle {
  readonly adapter = 'redis';
  constructor(private readonly redis: Redis) {}
  async hit(key: string, windowSeconds: number): Promise<number> {
    // EXPIRE NX keeps the window fixed from the first failure.
    const res = await this.redis.multi().incr(`throttle:${key}`).expire(`throttle:${key}`, windowSeconds, 'NX').exec();
    if (!res || res[0][0]) throw res?.[0][0] ?? new Error('throttle transaction aborted');
    return res[0][1] as number;
  }
  async count(key: string): Promise<number> {
    return Number((await this.redis.get(`throttle:${key}`)) ?? 0);
  }
  async reset(key: string): Promise<void> {
    await this.redis.del(`throttle:${key}`);
  }
  async close(): Promise<void> {}
}
