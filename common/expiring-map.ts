// A Map whose entries expire, for the embedded adapters' in-process state. Expired entries are dropped
// when read and by a sweep that runs at most once a second on a write. The sweep is incremental: it goes on
// from where the last one stopped and looks at twice as many entries as were written since, so no write
// pays for a pass over the whole map (a million entries took 10-30 ms, a pause every second), while the
// passes still outrun the writes: an entry is gone at most about half a lifetime after it expired.
// Above `maxEntries` the oldest entry makes room, so the map never reaches V8's Map limit (2^24 entries).

interface Entry<V> {
  key: string;
  value: V;
  expiresAt: number;
}

export interface ExpiringMapOptions {
  /** The most entries kept; past it the oldest written is dropped (default 8,000,000). */
  maxEntries?: number;
  /** Entries a sweep looks at, at least (default 1,000). */
  sweepAtLeast?: number;
}

export class ExpiringMap<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly maxEntries: number;
  private readonly sweepAtLeast: number;
  private nextSweep = 0;
  private writesSinceSweep = 0;
  /** Where the current pass of the sweep stands; a Map's iterator survives deletes and later inserts. */
  private cursor: Iterator<Entry<V>> | null = null;
  /** The oldest entries, in the order written, for making room. */
  private oldest: Iterator<string> | null = null;

  constructor(options: ExpiringMapOptions = {}) {
    this.maxEntries = options.maxEntries ?? 8_000_000;
    this.sweepAtLeast = options.sweepAtLeast ?? 1000;
  }

  get size(): number {
    return this.entries.size;
  }

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
    const existing = this.entries.get(key);
    if (!existing) return this.add(key, value, ttlMs, now);
    existing.value = value;
    existing.expiresAt = now + ttlMs;
    this.written(now);
  }

  /** Sets only if absent (or expired); returns the value already there otherwise. */
  setIfAbsent(key: string, value: V, ttlMs: number, now = Date.now()): V | undefined {
    const existing = this.get(key, now);
    if (existing !== undefined) return existing;
    // get() dropped an expired entry: the key is absent now (one lookup less on the dedupe's per-message path).
    this.add(key, value, ttlMs, now);
    return undefined;
  }

  private add(key: string, value: V, ttlMs: number, now: number): void {
    if (this.entries.size >= this.maxEntries) this.dropOldest();
    this.entries.set(key, { key, value, expiresAt: now + ttlMs });
    this.written(now);
  }

  private written(now: number): void {
    this.writesSinceSweep++;
    if (now >= this.nextSweep) this.sweep(now);
  }

  /** Remaining lifetime of a key in ms, or 0 when absent. */
  ttl(key: string, now = Date.now()): number {
    const e = this.entries.get(key);
    return e && e.expiresAt > now ? e.expiresAt - now : 0;
  }

  /** The entries not expired at `now`, in the order first written. */
  *live(now = Date.now()): Generator<Readonly<Entry<V>>> {
    for (const e of this.entries.values()) if (e.expiresAt > now) yield e;
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.cursor = this.oldest = null;
  }

  private sweep(now: number): void {
    this.nextSweep = now + 1000;
    let budget = Math.max(this.sweepAtLeast, 2 * this.writesSinceSweep);
    this.writesSinceSweep = 0;
    while (budget-- > 0) {
      this.cursor ??= this.entries.values();
      const next = this.cursor.next();
      if (next.done) {
        // This pass is over; the next sweep starts another from the front.
        this.cursor = null;
        return;
      }
      if (next.value.expiresAt <= now) this.entries.delete(next.value.key);
    }
  }

  private dropOldest(): void {
    for (let i = 0; i < 2; i++) {
      this.oldest ??= this.entries.keys();
      const next = this.oldest.next();
      if (!next.done) {
        this.entries.delete(next.value);
        return;
      }
      // Past the end (everything it knew was deleted meanwhile): start again from the front.
      this.oldest = null;
    }
  }
}
