// A Map whose entries expire, for the embedded adapters' in-process state. Expired entries are dropped
// when read and by a sweep that runs at most once a second, so memory stays bounded by live entries.
export class ExpiringMap<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private nextSweep = 0;

  get(key: string, now = Date.now()): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V, ttlMs: number, now = Date.now()): void {
    this.entries.set(key, { value, expiresAt: now + ttlMs });
    if (now >= this.nextSweep) this.sweep(now);
  }

  /** Sets only if absent (or expired); returns the value already there otherwise. */
  setIfAbsent(key: string, value: V, ttlMs: number, now = Date.now()): V | undefined {
    const existing = this.get(key, now);
    if (existing !== undefined) return existing;
    this.set(key, value, ttlMs, now);
    return undefined;
  }

  /** Remaining lifetime of a key in ms, or 0 when absent. */
  ttl(key: string, now = Date.now()): number {
    const e = this.entries.get(key);
    return e && e.expiresAt > now ? e.expiresAt - now : 0;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  private sweep(now: number): void {
    this.nextSweep = now + 1000;
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
  }
}
