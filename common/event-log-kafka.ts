// EventLog on Kafka (kafkajs). One idempotent producer (acks=all, one request in flight, so a key's records
// keep their order even across retries); one kafkajs consumer per subscription, committing a batch's offsets
// only after the handler resolved. Topics are created here (the brokers have auto-creation off) with
// LogAppendTime, so a record's timestamp is when the log accepted it.
import kafkajs from 'kafkajs';
import type { Admin, Consumer, EachBatchPayload, Kafka as KafkaClient, LogEntry, Producer } from 'kafkajs';
import type { ConsumeOptions, ConsumedRecord, EventLog, LogRecord, Subscription } from './event-log.ts';
import { createLogger, type Logger } from './log.ts';

const { Kafka, logLevel, Partitioners } = kafkajs;

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
  private readonly opts: Required<Omit<KafkaEventLogOptions, 'logger'>>;
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
    this.kafka = new Kafka({ clientId, brokers, logLevel: logLevel.WARN, logCreator: kafkaLogCreator(this.log) });
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
        createPartitioner: Partitioners.DefaultPartitioner,
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

/** One member of a consumer group; a kafkajs consumer that gave up is replaced until stop(). */
class KafkaSubscription implements Subscription {
  private consumer: Consumer | null = null;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly sleeps = new Set<() => void>();
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly options: ConsumeOptions,
    private readonly opts: Required<Omit<KafkaEventLogOptions, 'logger'>>,
    private readonly log: Logger,
    private readonly onStopped: () => void,
  ) {}

  /** Resolves once the member has joined the group and made its first fetch (offsets resolved). */
  async start(): Promise<void> {
    const { topic, group, fromBeginning } = this.options;
    const consumer = this.kafka.consumer({
      groupId: group,
      sessionTimeout: this.opts.sessionTimeout,
      rebalanceTimeout: this.opts.rebalanceTimeout,
      heartbeatInterval: this.opts.heartbeatInterval,
      maxWaitTimeInMs: this.opts.maxWaitTimeMs,
      allowAutoTopicCreation: false,
      retry: { initialRetryTime: 200, maxRetryTime: 5000, retries: 8 },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      // kafkajs restarts by itself after retriable errors; otherwise (e.g. no broker for a while) we do.
      if (payload.restart || this.stopped || this.consumer !== consumer) return;
      this.log.warn({ group, topic, err: payload.error?.message }, 'kafka consumer crashed; replacing it');
      this.consumer = null;
      void consumer.disconnect().catch(() => {});
      this.restartTimer = setTimeout(() => {
        if (!this.stopped) this.start().catch((err) => this.log.warn({ group, topic, err: err.message }, 'kafka consumer restart failed'));
      }, this.opts.retryMaxMs);
    });
    const fetched = new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.opts.maxWaitTimeMs + 5000);
      const off = consumer.on(consumer.events.FETCH, done);
      function done() {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.eachBatch(payload),
    });
    await fetched;
  }

  private async eachBatch({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0) return;
    const records: ConsumedRecord[] = batch.messages.map((m) => ({
      key: m.key?.toString('utf8') ?? '',
      value: m.value?.toString('utf8') ?? '',
      partition: batch.partition,
      offset: m.offset,
      timestamp: Number(m.timestamp),
    }));
    let delay = this.opts.retryMinMs;
    for (let attempt = 1; ; attempt++) {
      // Stopping or seeking: leave the batch uncommitted; whoever reads the partition next gets it again.
      if (!isRunning() || isStale() || this.stopped) return;
      try {
        await this.withHeartbeats(heartbeat, () => this.options.handle(records.slice()));
        break;
      } catch (err) {
        this.log.warn(
          { topic: batch.topic, group: this.options.group, partition: batch.partition, offset: batch.firstOffset(), attempt, err: (err as Error).message },
          'event log handler failed; the batch will be delivered again',
        );
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.opts.retryMaxMs);
        // Throws while the group rebalances: kafkajs rejoins and the batch is fetched again from the commit.
        await heartbeat();
      }
    }
    const last = records[records.length - 1].offset;
    resolveOffset(last);
    // batch.lastOffset() also covers control records that follow the last message.
    const next = (BigInt(batch.lastOffset()) + 1n).toString();
    await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
  }

  /** Keeps the session alive while a slow handler runs; a rebalance found here surfaces at commit time. */
  private async withHeartbeats(heartbeat: () => Promise<void>, run: () => Promise<void>): Promise<void> {
    const timer = setInterval(() => void heartbeat().catch(() => {}), this.opts.heartbeatInterval);
    try {
      await run();
    } finally {
      clearInterval(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleeps.add(wake);
    });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      clearTimeout(this.restartTimer);
      for (const wake of [...this.sleeps]) wake();
      const consumer = this.consumer;
      this.consumer = null;
      // Waits for the batch in hand (and its commit), then leaves the group so others take its partitions.
      await consumer?.disconnect().catch(() => {});
      this.onStopped();
    })();
    return this.stopping;
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

/** kafkajs logs through our logger, warnings and errors only. */
function kafkaLogCreator(log: Logger) {
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...extra } = entry as LogEntry['log'] & { logger?: string };
      // Said at every producer start, because we bound the retries on purpose (see getProducer).
      if (message.startsWith('Limiting retries for the idempotent producer')) return;
      if (level === logLevel.ERROR || level === logLevel.NOTHING) log.error({ kafka: namespace, ...extra }, message);
      else if (level === logLevel.WARN) log.warn({ kafka: namespace, ...extra }, message);
    };
}
