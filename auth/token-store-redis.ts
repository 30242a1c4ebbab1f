import type { Redis } from 'ioredis';
import type { TokenStore } from './token-store.ts';

/** `token:{sha256}` → user id, with the token's lifetime as the key's TTL. */
export class RedisTokenStore implements TokenStore {
  readonly adapter = 'redis';
  constructor(private readonly redis: Redis) {}
  async save(tokenHash: string, userId: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(`token:${tokenHash}`, userId, 'EX', ttlSeconds);
  }
  lookup(tokenHash: string): Promise<string | null> {
    return this.redis.get(`token:${tokenHash}`);
  }
  async revoke(tokenHash: string): Promise<void> {
    await this.redis.del(`token:${tokenHash}`);
  }
  async close(): Promise<void> {}
}
