// The archiver: a consumer group on the event log that writes each message to the Archive. Rows are
// derived from message ids, so a batch delivered twice (after a crash, a rebalance, an HBase outage)
// writes the same cells again. A batch that fails is not committed and comes back.
import { conversationOf } from '../common/envelope.ts';
import { MESSAGES_TOPIC, type ConsumedRecord, type EventLog, type Subscription } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import type { Archive, ReceiptMark } from './archive.ts';
import { parseEvent } from './events.ts';

/** The archiver's consumer group: `parley-archiver`, suffixed with the topic when it is not the default. */
export const archiverGroup = (topic: string) => (topic === MESSAGES_TOPIC ? 'parley-archiver' : `parley-archiver.${topic}`);

export class Archiver {
  private subscription: Subscription | null = null;
  private failures = 0;
  /** Messages and receipts archived since start. */
  archived = 0;

  constructor(
    private readonly log: EventLog,
    private readonly topic: string,
    private readonly archive: Archive,
    private readonly logger: Logger,
    /** Lets records gather between batches (EventLog lingerMs): each batch costs reads and one synced write. */
    private readonly lingerMs = 0,
  ) {}

  async start(): Promise<void> {
    this.subscription = await this.log.consume({ topic: this.topic, group: archiverGroup(this.topic), fromBeginning: true, lingerMs: this.lingerMs, handle: (batch) => this.handle(batch) });
  }

  async handle(batch: ConsumedRecord[]): Promise<void> {
    const puts = [];
    const receipts: ReceiptMark[] = [];
    for (const record of batch) {
      const event = parseEvent(record.value);
      if (!event) {
        this.logger.warn({ partition: record.partition, offset: record.offset }, 'skipping an event-log record that is not a message event');
        continue;
      }
      const m = event.message;
      // A receipt is the state of the message it names, and an entry of its two users' sync.
      if (m.kind === 'receipt' && m.ref && m.state) receipts.push({ conversation: conversationOf(m), id: m.ref, state: m.state, reader: m.from });
      // (A receipt on a group topic, which brokers before round 32 of issue 8 took, records nothing.)
      if (m.kind !== 'typing' && !(m.kind === 'receipt' && m.group)) puts.push({ message: m, participants: event.participants });
    }
    try {
      await this.putAll(puts);
      // Receipts follow their message in the same partition, so the message is archived first.
      for (const r of receipts) await this.archive.setState(r);
    } catch (err) {
      this.failures++;
      if (this.failures === 1 || this.failures % 20 === 0) this.logger.warn({ err, failures: this.failures }, 'archive unavailable; the batch will be retried');
      throw err;
    }
    this.failures = 0;
    this.archived += puts.length; // receipts among them
  }

  /**
   * Writes a batch; a message the archive refuses outright (an id it cannot key, RangeError) is logged and
   * skipped one by one, so one bad record cannot stop the group forever. Anything else fails the batch.
   */
  private async putAll(puts: Parameters<Archive['putMessages']>[0]): Promise<void> {
    try {
      await this.archive.putMessages(puts);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      for (const put of puts) {
        try {
          await this.archive.putMessages([put]);
        } catch (one) {
          if (!(one instanceof RangeError)) throw one;
          this.logger.error({ err: one, id: put.message.id }, 'archive refused a message; skipped');
        }
      }
    }
  }

  async stop(): Promise<void> {
    await this.subscription?.stop();
    this.subscription = null;
  }
}
