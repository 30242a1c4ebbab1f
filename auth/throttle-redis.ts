import type { Redis } from 'ioredis';
import type { Throttle, ThrottleRule } from './throttle.ts';

// throttle:fails:{key}  list   failure times in ms by Redis's clock, newest first, at most `limit`, TTL the window
// throttle:lock:{key}   string the time of the failure that locked the key, TTL the window
// (Names of their own rather than the counter `throttle:{key}` of before, which a LPUSH would find the wrong type.)

// One script, so concurrent failures on any node each count. Redis's clock, so nodes' clocks need not agree.
// The newest `limit` failures are all that matter: the key locks when the oldest of them is within the window.
const FAIL = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit - 1)
local oldest = tonumber(redis.call('LINDEX', KEYS[1], limit - 1))
if oldest and now - oldest < window then
  redis.call('SET', KEYS[2], now, 'PX', window)
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('PEXPIRE', KEYS[1], window)
return 0`;

type Scripts = { throttleFail(fails: string, lock: string, limit: number, windowMs: number): Promise<number> };

export class RedisThrottle implements Throttle {
  readonly adapter = 'redis';
  private readonly r: Redis & Scripts;
  constructor(redis: Redis) {
    redis.defineCommand('throttleFail', { numberOfKeys: 2, lua: FAIL });
    this.r = redis as Redis & Scripts;
  }
  async fail(key: string, { limit, windowMs }: ThrottleRule): Promise<boolean> {
    return (await this.r.throttleFail(`throttle:fails:${key}`, `throttle:lock:${key}`, limit, windowMs)) === 1;
  }
  async locked(key: string): Promise<boolean> {
    return (await this.r.exists(`throttle:lock:${key}`)) === 1;
  }
  async reset(key: string): Promise<void> {
    await this.r.del(`throttle:fails:${key}`, `throttle:lock:${key}`);
  }
  async close(): Promise<void> {}
}
