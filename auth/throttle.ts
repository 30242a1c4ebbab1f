// Throttle port: failed sign-ins per key (an account, a client address). `limit` failures within any span of
// `windowMs` (a sliding window, not one fixed at the first failure) lock the key for `windowMs` from the
// failure that reached the limit, however old the earlier ones are by then (PROTOCOL.md, POST /v1/auth/login).
export interface ThrottleRule {
  limit: number;
  windowMs: number;
}

export interface Throttle {
  readonly adapter: 'redis' | 'embedded';
  /**
   * Records one failure and returns whether the key is locked now. A locked key records nothing and its lock
   * is not extended; once the lock ends, counting starts afresh.
   */
  fail(key: string, rule: ThrottleRule): Promise<boolean>;
  locked(key: string): Promise<boolean>;
  /** Forgets the key's failures and lifts its lock. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}
