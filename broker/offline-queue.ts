// OfflineQueue port: one queue per receiving user, oldest first. A message enters it before its sender is
// acked and leaves it when one of the receiver's devices PUBACKs it (PROTOCOL.md, guarantee 4).
export interface QueuedMessage {
  id: string;
  /** The envelope exactly as delivered. */
  payload: string;
}

export interface OfflineQueue {
  readonly adapter: 'redis' | 'embedded';
  /** Appends each message to its user's queue; durable once the promise resolves. Past `max` the oldest leave. */
  push(batch: readonly { userId: string; message: QueuedMessage }[]): Promise<void>;
  /** Up to `limit` messages of the user's queue, oldest first. */
  list(userId: string, limit: number): Promise<QueuedMessage[]>;
  /** Removes one message; removing one that is not there is not an error. */
  remove(userId: string, message: QueuedMessage): Promise<void>;
  length(userId: string): Promise<number>;
  close(): Promise<void>;
}
