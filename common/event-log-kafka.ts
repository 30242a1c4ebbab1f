// EventLog on Kafka (kafkajs). One idempotent producer (acks=all, one request in flight, so a key's records
// keep their order even across retries); one kafkajs consumer per subscription, committing a batch's offsets
// only after the handler resolved (event-log-kafka-consumer.ts). Topics are created here (the brokers have
// auto-creation off) with LogAppendTime, so a record's timestamp is when the log accepted it.
import kafkajs from 'kafkajs';
import type { Admin, Kafka as KafkaClient, LogEntry, Producer } from 'kafkajs';
import type { ConsumeOptions, EventLog, LogRecord, Subscription } from './event-log.ts';
import { KafkaSubscription, type KafkaConsumerSettings } from './event-log-kafka-consumer.ts';
import { KeyHashPartitioner } from './kafka-partitioner.ts';
import { createLogger, type Logger } from './log.ts';

const { Kafka, logLevel } = kafkajs;

export interface KafkaEventLogOptions {
  /** Partitions of a topic that `append` or `consume` creates because nobody called `ensureTopic` first. */
  partitions?: number;
  replicationFactor?: number;
  /** Gets kafkajs's warnings and errors, and handler failures; default: a pino logger at `warn`. */
  logger?: Logger;
  /** Consumer group timings (kafkajs defaults: 30 s, 60 s, 3 s); the broker's minimum session is 6 s. */
  sessionTimeout?: number;
  rebalanceTimeout?: number;
  heartbeatInterval?: number;
  /** Longest fetch long-poll; also bounds how late a member notices a rebalance and how long stop() waits. */
  maxWaitTimeMs?: number;
  /** Backoff before a failed batch is handed to the handler again: doubles from min to max. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Biggest estimated payload per produce request; Kafka refuses record batches past ~1 MB by default. */
const MAX_SEND_BYTES = 512 * 1024;
const PING_TIMEOUT_MS = 3000;
const LOG_EVERY_MS = 10_000;

interface PendingAppend {
  topic: string;
  records: readonly LogRecord[];
  resolve(): void;
  reject(err: Error): void;
}

export class KafkaEventLog implements EventLog {
  readonly adapter = 'kafka';
  private readonly kafka: KafkaClient;
  private readonly log: Logger;
  private readonly opts: KafkaConsumerSettings & { partitions: number; replicationFactor: number };
  private admin: Promise<Admin> | null = null;
  private producer: Promise<Producer> | null = null;
  private readonly topics = new Map<string, Promise<void>>();
  private readonly subscriptions = new Set<KafkaSubscription>();
  private queue: PendingAppend[] = [];
  private sending = false;
  private closed = false;

  constructor(
    private readonly brokers: string[],
    clientId: string,
    options: KafkaEventLogOptions = {},
  ) {
    this.log = options.logger ?? createLogger('warn', 'kafkajs');
    this.opts = {
      partitions: options.partitions ?? 6,
      replicationFactor: options.replicationFactor ?? 1,
      sessionTimeout: options.sessionTimeout ?? 30_000,
      rebalanceTimeout: options.rebalanceTimeout ?? 60_000,
      heartbeatInterval: options.heartbeatInterval ?? 3000,
      maxWaitTimeMs: options.maxWaitTimeMs ?? 500,
      retryMinMs: options.retryMinMs ?? 100,
      retryMaxMs: options.retryMaxMs ?? 5000,
    };
    this.kafka = new Kafka({
      clientId,
      brokers,
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(this.log),
      // Bounds how long a connection is retried, so an outage is reported (and recovered from) within seconds.
      retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 5 },
    });
  }

  private getAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      this.admin = admin.connect().then(
        () => admin,
        (err) => {
          this.admin = null;
          throw err;
        },
      );
    }
    return this.admin;
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    this.assertOpen();
    let created = this.topics.get(topic);
    if (!created) {
      created = this.createTopic(topic, partitions);
      this.topics.set(topic, created);
      // A failure (Kafka down) is not remembered: the next call tries again.
      created.catch(() => this.topics.delete(topic));
    }
    return created;
  }

  private async createTopic(topic: string, partitions: number): Promise<void> {
    const admin = await this.getAdmin();
    try {
      // False (not an error) when the topic exists; its partition count is then left as it is.
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: partitions,
            replicationFactor: this.opts.replicationFactor,
            configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
          },
        ],
      });
    } catch (err) {
      // Another process created it between our metadata refresh and our request.
      if (!/already exists/i.test(String((err as Error).message))) throw err;
    }
  }

  append(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('event log is closed'));
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      // Queued synchronously, so concurrent appends are sent in call order.
      this.queue.push({ topic, records, resolve, reject });
      void this.drain();
    });
  }

  /** Sends everything queued, a group of appends per round, one round at a time (order across calls). */
  private async drain(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const round = this.queue;
        this.queue = [];
        try {
          for (const topic of new Set(round.map((a) => a.topic))) await this.ensureTopic(topic, this.opts.partitions);
          const producer = await this.getProducer();
          for (const chunk of chunks(round)) await producer.sendBatch({ acks: -1, topicMessages: chunk });
          for (const a of round) a.resolve();
        } catch (err) {
          // A producer whose send failed may hold stale idempotence sequence numbers: start a new one.
          this.resetProducer();
          for (const a of round) a.reject(err as Error);
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private getProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // The partitions kafkajs's DefaultPartitioner (and the Java client) choose, without its BigInt arithmetic.
        createPartitioner: KeyHashPartitioner,
        // Bounded, so an outage fails the append (the outbox retries it) instead of hanging it.
        retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5000 },
      });
      this.producer = producer.connect().then(
        () => producer,
        (err) => {
          this.producer = null;
          void producer.disconnect().catch(() => {});
          throw err;
        },
      );
    }
    return this.producer;
  }

  private resetProducer(): void {
    const old = this.producer;
    this.producer = null;
    void old?.then((p) => p.disconnect()).catch(() => {});
  }

  async consume(options: ConsumeOptions): Promise<Subscription> {
    this.assertOpen();
    await this.ensureTopic(options.topic, this.opts.partitions);
    const sub = new KafkaSubscription(this.kafka, options, this.opts, this.log, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    try {
      await sub.start();
    } catch (err) {
      await sub.stop();
      throw err;
    }
    return sub;
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    const answer = this.getAdmin()
      .then((admin) => admin.describeCluster())
      .then(
        (cluster) => cluster.brokers.length > 0,
        () => false,
      );
    try {
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    const producer = this.producer;
    const admin = this.admin;
    this.producer = this.admin = null;
    await Promise.all([
      producer?.then((p) => p.disconnect()).catch(() => {}),
      admin?.then((a) => a.disconnect()).catch(() => {}),
    ]);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`event log on ${this.brokers.join(',')} is closed`);
  }
}

/** Splits a round of appends into sendBatch calls of bounded size, keeping the order of records. */
function* chunks(round: readonly PendingAppend[]): Generator<{ topic: string; messages: { key: string; value: string }[] }[]> {
  let chunk: { topic: string; messages: { key: string; value: string }[] }[] = [];
  let bytes = 0;
  for (const { topic, records } of round) {
    for (const r of records) {
      const size = Buffer.byteLength(r.key) + Buffer.byteLength(r.value) + 64;
      if (bytes > 0 && bytes + size > MAX_SEND_BYTES) {
        yield chunk;
        chunk = [];
        bytes = 0;
      }
      let last = chunk[chunk.length - 1];
      if (!last || last.topic !== topic) chunk.push((last = { topic, messages: [] }));
      last.messages.push({ key: r.key, value: r.value });
      bytes += size;
    }
  }
  if (chunk.length > 0) yield chunk;
}

/** kafkajs logs through our logger: warnings and errors only, and one of a kind per LOG_EVERY_MS. */
function kafkaLogCreator(log: Logger) {
  // During an outage kafkajs reports every failed connection attempt of every client.
  const recent = new Map<string, { until: number; suppressed: number }>();
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...extra } = entry as LogEntry['log'] & { logger?: string };
      // Said at every producer start, because we bound the retries on purpose (see getProducer).
      if (message.startsWith('Limiting retries for the idempotent producer')) return;
      // Every error answer of the protocol (a rebalance under way, a topic that exists) is logged by the
      // connection before its caller handles it, or reports it in its own words.
      if (namespace === 'Connection' && message.startsWith('Response ')) return;
      if (level !== logLevel.ERROR && level !== logLevel.WARN) return;
      const kind = `${namespace} ${message.slice(0, 40)}`;
      const now = Date.now();
      const seen = recent.get(kind);
      if (seen && seen.until > now) {
        seen.suppressed++;
        return;
      }
      if (recent.size > 1000) recent.clear();
      recent.set(kind, { until: now + LOG_EVERY_MS, suppressed: 0 });
      const fields = { kafka: namespace, ...extra, ...(seen?.suppressed ? { suppressed: seen.suppressed } : {}) };
      if (level === logLevel.ERROR) log.error(fields, message);
      else log.warn(fields, message);
    };
}
