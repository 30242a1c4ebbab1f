import { ExpiringMap } from '../common/expiring-map.ts';
import type { Dedupe } from './dedupe.ts';

export class EmbeddedDedupe implements Dedupe {
  readonly adapter = 'embedded';
  private readonly claims = new ExpiringMap<string>();
  async claim(sender: string, cid: string, value: string, ttlSeconds: number): Promise<string | null> {
    return this.claims.setIfAbsent(`${sender}\n${cid}`, value, ttlSeconds * 1000) ?? null;
  }
  async release(sender: string, cid: string): Promise<void> {
    this.claims.delete(`${sender}\n${cid}`);
  }
  async close(): Promise<void> {
    this.claims.clear();
  }
}
