// One member of a Kafka consumer group for the EventLog port (common/event-log-kafka.ts): a kafkajs consumer
// whose batches are handed to the handler, then resolved and committed; a batch whose handler throws is
// handed over again after a backoff, heartbeating meanwhile, and is never committed until it succeeds.
import type { Consumer, EachBatchPayload, Kafka as KafkaClient } from 'kafkajs';
import type { ConsumeOptions, ConsumedRecord, Subscription } from './event-log.ts';
import type { Logger } from './log.ts';

export interface KafkaConsumerSettings {
  sessionTimeout: number;
  rebalanceTimeout: number;
  heartbeatInterval: number;
  maxWaitTimeMs: number;
  retryMinMs: number;
  retryMaxMs: number;
}

/** One member of a consumer group; a kafkajs consumer that gave up is replaced until stop(). */
export class KafkaSubscription implements Subscription {
  private consumer: Consumer | null = null;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly sleeps = new Set<() => void>();
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly options: ConsumeOptions,
    private readonly opts: KafkaConsumerSettings,
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
      // A linger asks the broker to hold the fetch until a good batch (1 MB) is there or the linger ends.
      ...(this.options.lingerMs ? { minBytes: 1 << 20, maxWaitTimeInMs: this.options.lingerMs } : { maxWaitTimeInMs: this.opts.maxWaitTimeMs }),
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
      this.restartLater();
    });
    // Offsets are resolved on the first fetch: only then is "from the end" a fixed point.
    let fetchedOnce!: () => void;
    const fetched = new Promise<void>((resolve) => (fetchedOnce = resolve));
    const off = consumer.on(consumer.events.FETCH, () => fetchedOnce());
    const timer = setTimeout(() => fetchedOnce(), Math.max(this.opts.maxWaitTimeMs, this.options.lingerMs ?? 0) + 5000);
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.eachBatch(payload),
      });
      if (!this.stopped) await fetched;
    } catch (err) {
      if (this.consumer === consumer) this.consumer = null;
      await consumer.disconnect().catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
      off();
    }
    // stop() came while we were joining: it may have missed this consumer.
    if (this.stopped) await consumer.disconnect().catch(() => {});
  }

  /** Starts a new consumer after a pause, again and again until one runs or stop() is called. */
  private restartLater(): void {
    if (this.stopped) return;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped || this.consumer) return;
      this.start().catch((err: Error) => {
        this.log.warn({ group: this.options.group, topic: this.options.topic, err: err.message }, 'kafka consumer restart failed; trying again');
        this.restartLater();
      });
    }, this.opts.retryMaxMs);
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
