import { Redis } from 'ioredis';
import type { Config } from './config.ts';

/**
 * One Redis connection per process. Commands are written as they are issued, without ioredis's
 * auto-pipelining: that builds a Pipeline object for every tick's commands (copying every defined script
 * onto it), which lives until Redis's fsync'd reply, gets promoted, and was most of what the broker's
 * scavenges promoted (~14 KB a message at 1,000 msg/s). Without it the broker spent 53-69 % less time in GC,
 * 3-10 points less CPU and had a lower p50 at every rate (bench/HISTORY.md, round 8). The hot path batches
 * itself where it pays: one script call for a turn's accept stores, one for its queue removals (TurnBatch).
 */
export function createRedis(redis: NonNullable<Config['redis']>): Redis {
  return new Redis(redis.url, {
    keyPrefix: redis.keyPrefix,
    enableAutoPipelining: false,
    // Fail a command quickly while Redis is away: the sender gets `unavailable`, not a hung publish.
    maxRetriesPerRequest: 2,
    lazyConnect: false,
  });
}
