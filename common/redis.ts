import { Redis } from 'ioredis';
import type { Config } from './config.ts';

/** One Redis connection per process; commands issued in the same tick go out as one pipeline. */
export function createRedis(redis: NonNullable<Config['redis']>): Redis {
  return new Redis(redis.url, {
    keyPrefix: redis.keyPrefix,
    enableAutoPipelining: true,
    // Fail a command quickly while Redis is away: the sender gets `unavailable`, not a hung publish.
    maxRetriesPerRequest: 2,
    lazyConnect: false,
  });
}
