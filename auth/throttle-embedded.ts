import { ExpiringMap } from '../common/expiring-map.ts';
import type { Throttle, ThrottleRule } from './throttle.ts';

/**
 * Keys with failures held at once: up to `limit` times each (100 for an address by default), so at most some
 * 100 MB however many addresses fail; past it the oldest keys are forgotten first.
 */
const MAX_KEYS = 100_000;

/** The Redis adapter's two keys as two maps: memory is at most `limit` times per key, for keys failed within the window. */
export class EmbeddedThrottle implements Throttle {
  readonly adapter = 'embedded';
  /** Failure times, oldest first. */
  private readonly fails = new ExpiringMap<number[]>({ maxEntries: MAX_KEYS });
  private readonly locks = new ExpiringMap<true>();
  async fail(key: string, { limit, windowMs }: ThrottleRule): Promise<boolean> {
    const now = Date.now();
    if (this.locks.get(key, now)) return true;
    const times = this.fails.get(key, now) ?? [];
    times.push(now);
    if (times.length > limit) times.splice(0, times.length - limit);
    if (times.length === limit && now - times[0] < windowMs) {
      this.locks.set(key, true, windowMs, now);
      this.fails.delete(key);
      return true;
    }
    this.fails.set(key, times, windowMs, now);
    return false;
  }
  async locked(key: string): Promise<boolean> {
    return this.locks.get(key) === true;
  }
  async reset(key: string): Promise<void> {
    this.fails.delete(key);
    this.locks.delete(key);
  }
  async close(): Promise<void> {
    this.fails.clear();
    this.locks.clear();
  }
}
