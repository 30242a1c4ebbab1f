// Dedupe port: remembers each (sender, cid) for a day with the id and time it was accepted under, so a
// resend is acked again with the same id and not delivered twice (PROTOCOL.md, `cid`).
export interface Dedupe {
  readonly adapter: 'redis' | 'embedded';
  /** Claims (sender, cid) for `value`; returns null when claimed, or the value of an earlier claim. */
  claim(sender: string, cid: string, value: string, ttlSeconds: number): Promise<string | null>;
  /** Gives a claim back (the message was refused after all, so its cid is not used up). */
  release(sender: string, cid: string): Promise<void>;
  close(): Promise<void>;
}
