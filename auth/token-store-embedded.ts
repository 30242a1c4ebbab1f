import { ExpiringMap } from '../common/expiring-map.ts';
import type { TokenStore } from './token-store.ts';

/** In-process tokens: a restart signs every device out, which is the embedded mode's documented trade. */
export class EmbeddedTokenStore implements TokenStore {
  readonly adapter = 'embedded';
  private readonly tokens = new ExpiringMap<string>();
  async save(tokenHash: string, userId: string, ttlSeconds: number): Promise<void> {
    this.tokens.set(tokenHash, userId, ttlSeconds * 1000);
  }
  async lookup(tokenHash: string): Promise<string | null> {
    return this.tokens.get(tokenHash) ?? null;
  }
  async revoke(tokenHash: string): Promise<void> {
    this.tokens.delete(tokenHash);
  }
  async close(): Promise<void> {
    this.tokens.clear();
  }
}
