// Throttle port: counts failures per key (an account, a client address) in a fixed window that starts
// at the first failure, so repeated wrong passwords lock an account for the window.
export interface Throttle {
  readonly adapter: 'redis' | 'embedded';
  /** Adds one failure and returns the count in the current window. */
  hit(key: string, windowSeconds: number): Promise<number>;
  /** Failures in the current window (0 when none). */
  count(key: string): Promise<number>;
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}
