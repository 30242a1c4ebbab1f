import { ExpiringMap } from '../common/expiring-map.ts';
import type { Throttle } from './throttle.ts';

export class EmbeddedThrottle implements Throttle {
  readonly adapter = 'embedded';
  private readonly counts = new ExpiringMap<number>();
  async hit(key: string, windowSeconds: number): Promise<number> {
    const now = Date.now();
    const current = this.counts.get(key, now);
    const ttl = current === undefined ? windowSeconds * 1000 : this.counts.ttl(key, now);
    const next = (current ?? 0) + 1;
    this.counts.set(key, next, ttl, now);
    return next;
  }
  async count(key: string): Promise<number> {
    return this.counts.get(key) ?? 0;
  }
  async reset(key: string): Promise<void> {
    this.counts.delete(key);
  }
  async close(): Promise<void> {
    this.counts.clear();
  }
}
