// Outbox port: every accepted message is recorded here durably, in acceptance order, before its ack;
// a shipper moves it to the event log in batches. Kafka being down delays the mirror, never the chat.
import type { LogRecord } from '../common/event-log.ts';

export interface Outbox {
  readonly adapter: 'redis' | 'embedded';
  /**
   * Appends records at the tail; durable once the promise resolves. Keys hold no tab and values no newline
   * (keys are conversation ids, values JSON), which the embedded journal's line format relies on.
   */
  append(records: readonly LogRecord[]): Promise<void>;
  /** Up to `limit` records from the head, oldest first. */
  peek(limit: number): Promise<LogRecord[]>;
  /** Drops the `count` oldest records (they are in the event log now). One shipper per outbox. */
  drop(count: number): Promise<void>;
  length(): Promise<number>;
  close(): Promise<void>;
}
