// EventLog port: the mirror of every accepted message (Kafka topic `parley.messages` in production, an
// in-process segmented file log embedded). Records with the same key stay in order (one partition per
// key); consumer groups share partitions and commit offsets only after their handler has finished.
export const MESSAGES_TOPIC = 'parley.messages';

export interface LogRecord {
  /** Partition key: the conversation id, so one conversation stays in order. */
  key: string;
  /** UTF-8 payload (an event as JSON). */
  value: string;
}

export interface ConsumedRecord extends LogRecord {
  partition: number;
  /** Decimal offset within the partition. */
  offset: string;
  /** When the log accepted the record, ms since the epoch. */
  timestamp: number;
}

export interface ConsumeOptions {
  topic: string;
  group: string;
  /** A group with no committed offset starts at the oldest record (true) or at the end (false). */
  fromBeginning: boolean;
  /**
   * Gets records in log order per partition, in batches. When it resolves, the batch's offsets are
   * committed; when it throws, the batch is delivered again (at least once).
   */
  handle(batch: ConsumedRecord[]): Promise<void>;
  /**
   * For consumers whose cost is per batch (checkpoints, merges): after a partition's batch, wait up to this
   * long for records to gather before handing out its next one, unless a full batch is waiting. Like Kafka's
   * fetch.min.bytes with fetch.max.wait.ms; 0 or unset hands records out as soon as they are durable.
   */
  lingerMs?: number;
}

export interface Subscription {
  stop(): Promise<void>;
}

export interface EventLog {
  readonly adapter: 'kafka' | 'embedded';
  /** Creates the topic if missing. */
  ensureTopic(topic: string, partitions: number): Promise<void>;
  /** Appends records in the order given; resolves once the log has them durably (acks=all). */
  append(topic: string, records: readonly LogRecord[]): Promise<void>;
  consume(options: ConsumeOptions): Promise<Subscription>;
  /** True when the log answers (for /readyz). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
