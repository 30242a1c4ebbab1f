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

/**
 * Why this Redis would not keep an acked message through its own crash, or null when it would: Parley acks a
 * message once Redis has answered its store, which only `appendonly yes` with `appendfsync always` puts on
 * disk first. Under `everysec` Redis answers while a slow fsync holds its write back (README, Guarantees).
 * A Redis that refuses CONFIG (a managed one) is taken on trust: its operator's settings are not readable.
 */
export async function redisDurabilityProblem(redis: Redis): Promise<string | null> {
  let settings: string[];
  try {
    // Name, value, name, value (CONFIG GET takes several names since Redis 7.0).
    settings = (await redis.config('GET', 'appendonly', 'appendfsync')) as string[];
  } catch {
    return null;
  }
  return durabilityProblemOf(settings);
}

/** redisDurabilityProblem's verdict on CONFIG GET's answer (name, value, name, value…); a setting missing from it counts as not set. */
export function durabilityProblemOf(settings: readonly string[]): string | null {
  const value = (name: string): string | undefined => {
    for (let i = 0; i + 1 < settings.length; i += 2) if (settings[i] === name) return settings[i + 1];
    return undefined;
  };
  const appendonly = value('appendonly');
  if (appendonly !== 'yes') return `Redis runs with appendonly ${appendonly ?? '(unknown)'}: acked messages are lost when Redis stops; set appendonly yes and appendfsync always`;
  const appendfsync = value('appendfsync');
  if (appendfsync !== 'always') return `Redis runs with appendfsync ${appendfsync ?? '(unknown)'}: a crash of Redis can lose messages already acked; set appendfsync always`;
  return null;
}
