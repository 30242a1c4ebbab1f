// Consumer groups of the embedded event log, in process. The members of a group split the topic's partitions
// (partition p goes to member p mod n, members in join order) and re-split them whenever one joins or
// leaves. A partition has at most one batch in hand per group, and its offset is committed before the
// partition can be claimed again, so a partition changes hands between batches and no record is handled
// by two members. A batch whose handler throws is handed out again, the same records, after a backoff.
import type { ConsumedRecord, Subscription } from './event-log.ts';
import type { OffsetStore } from './event-log-offsets.ts';
import { unpackRecords, type PackedRecords, type PartitionLog } from './event-log-segments.ts';
import type { Logger } from './log.ts';

export interface TopicState {
  readonly name: string;
  readonly partitions: readonly PartitionLog[];
  readonly offsets: OffsetStore;
  /** Resolves at the next notify() (an append became durable, a partition was released, members changed), or after `ms`. */
  changed(ms?: number): Promise<void>;
  notify(): void;
  /** Called after every commit (segment clean-up). */
  committed(partition: number): void;
}

export interface ConsumerSettings {
  maxBatch: number;
  maxBatchBytes: number;
  retryMinMs: number;
  retryMaxMs: number;
  logger: Logger;
}

interface Claim {
  partition: number;
  from: number;
  /** Most records to hand out: a redelivery hands out exactly the failed batch again. */
  limit: number;
}

interface Retry {
  at: number;
  end: number;
  delay: number;
}

export class ConsumerGroup {
  readonly members: EmbeddedSubscription[] = [];
  private readonly busy = new Set<number>();
  private readonly retries = new Map<number, Retry>();
  /** With a linger: when each partition may next be handed out with less than a full batch waiting. */
  private readonly lingering = new Map<number, number>();

  constructor(
    readonly name: string,
    private readonly topic: TopicState,
    private readonly settings: ConsumerSettings,
    /** The group's linger (ConsumeOptions.lingerMs), set by its first member. */
    private readonly lingerMs = 0,
    /**
     * Milliseconds for lingers and backoffs: monotonic, so a step of the wall clock (seen in CI) neither
     * holds a partition back for as long as the step nor cuts its linger short. Tests pass their own.
     */
    private readonly clock: () => number = () => performance.now(),
  ) {}

  join(member: EmbeddedSubscription): void {
    this.members.push(member);
    this.topic.notify();
  }

  leave(member: EmbeddedSubscription): void {
    const i = this.members.indexOf(member);
    if (i >= 0) this.members.splice(i, 1);
    this.topic.notify();
  }

  private position(partition: number): number {
    const log = this.topic.partitions[partition];
    return Math.max(this.topic.offsets.get(this.name, partition) ?? log.start, log.start);
  }

  private assigned(member: EmbeddedSubscription): number[] {
    const i = this.members.indexOf(member);
    const n = this.members.length;
    if (i < 0) return [];
    const out: number[] = [];
    for (let p = i; p < this.topic.partitions.length; p += n) out.push(p);
    return out;
  }

  /** A partition of the member's with records to hand out, now; marks it busy. `after` rotates the start. */
  claim(member: EmbeddedSubscription, after: number): Claim | null {
    const mine = this.assigned(member);
    const now = this.clock();
    for (let k = 0; k < mine.length; k++) {
      const partition = mine[(after + 1 + k) % mine.length];
      if (this.busy.has(partition)) continue;
      const from = this.position(partition);
      const available = this.topic.partitions[partition].end - from;
      if (available <= 0) continue;
      const retry = this.retries.get(partition);
      if (retry && retry.at > now) continue;
      if (!retry && available < this.settings.maxBatch && (this.lingering.get(partition) ?? 0) > now) continue;
      this.busy.add(partition);
      const limit = retry && retry.end > from ? retry.end - from : this.settings.maxBatch;
      return { partition, from, limit: Math.min(limit, this.settings.maxBatch) };
    }
    return null;
  }

  /**
   * Milliseconds until one of the member's partitions leaves its backoff or its linger; undefined when none
   * waits (a busy partition's release wakes the member). A linger that has passed by now counts too, as 0:
   * claim() read the clock a moment earlier and may have seen it still running, and a member that then
   * waited for a notify nobody sends would leave the records there for good.
   */
  nextRetryIn(member: EmbeddedSubscription): number | undefined {
    let soonest: number | undefined;
    const now = this.clock();
    for (const p of this.assigned(member)) {
      if (this.busy.has(p)) continue;
      const retry = this.retries.get(p);
      const linger = this.lingering.get(p);
      const at = retry ? retry.at : linger !== undefined && this.position(p) < this.topic.partitions[p].end ? linger : undefined;
      if (at !== undefined && (soonest === undefined || at < soonest)) soonest = at;
    }
    return soonest === undefined ? undefined : Math.max(0, soonest - now);
  }

  failed(partition: number, end: number): void {
    const prev = this.retries.get(partition);
    const delay = prev ? Math.min(prev.delay * 2, this.settings.retryMaxMs) : this.settings.retryMinMs;
    this.retries.set(partition, { at: this.clock() + delay, end: prev?.end ?? end, delay });
  }

  succeeded(partition: number): void {
    this.retries.delete(partition);
  }

  release(partition: number): void {
    this.busy.delete(partition);
    if (this.lingerMs > 0) this.lingering.set(partition, this.clock() + this.lingerMs);
    this.topic.notify();
  }
}

/** A batch as ConsumeOptions.handle takes it: `where` names the partition in the error about a corrupt record. */
export function unpackConsumed(packed: PackedRecords, where: string): ConsumedRecord[] {
  const batch: ConsumedRecord[] = [];
  const partition = packed.partition;
  unpackRecords(packed, where, (offset, timestamp, key, value) => batch.push({ key, value, partition, offset: String(offset), timestamp }));
  return batch;
}

export class EmbeddedSubscription implements Subscription {
  private stopped = false;
  private readonly done: Promise<void>;
  private last = -1;

  constructor(
    private readonly group: ConsumerGroup,
    private readonly topic: TopicState,
    /** Takes the batch as read: a handler in this thread unpacks it, one in the consumer thread gets it as it is. */
    private readonly handle: (batch: PackedRecords) => Promise<void>,
    private readonly settings: ConsumerSettings,
    private readonly onStopped: () => void,
  ) {
    group.join(this);
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const claim = this.group.claim(this, this.last);
      if (!claim) {
        await this.topic.changed(this.group.nextRetryIn(this));
        continue;
      }
      this.last = claim.partition;
      await this.work(claim);
    }
  }

  private async work({ partition, from, limit }: Claim): Promise<void> {
    const log = { topic: this.topic.name, group: this.group.name, partition, offset: from };
    try {
      const { next, handled } = await this.hand(partition, from, limit);
      try {
        await handled;
      } catch (err) {
        this.settings.logger.warn({ ...log, err: (err as Error).message }, 'event log handler failed; the batch will be delivered again');
        this.group.failed(partition, next);
        return;
      }
      await this.topic.offsets.commit(this.group.name, partition, next);
      this.group.succeeded(partition);
      this.topic.committed(partition);
    } catch (err) {
      // Reading or committing failed (disk trouble): same as a failed handler, the batch comes again.
      this.settings.logger.error({ ...log, err: (err as Error).message }, 'event log read or commit failed');
      this.group.failed(partition, from + limit);
    } finally {
      this.group.release(partition);
    }
  }

  /**
   * Reads the batch and gives it to the handler; returns the offset after it and the handler's promise.
   * Apart from work(), so that the records are not kept while the handler runs: V8's interpreter keeps an
   * async function's locals across an await, used again or not, so the broker thread held each batch for the
   * length of the consumer's turn with it (the handler keeps what it needs; over RPC it has a copy).
   */
  private async hand(partition: number, from: number, limit: number): Promise<{ next: number; handled: Promise<void> }> {
    const packed = await this.topic.partitions[partition].readPacked(partition, from, limit, this.settings.maxBatchBytes);
    if (packed.count === 0) throw new Error(`no records at ${from} though the partition ends at ${this.topic.partitions[partition].end}`);
    let handled: Promise<void>;
    try {
      handled = this.handle(packed);
    } catch (err) {
      handled = Promise.reject(err); // a handler that throws before it returns a promise failed like any other
    }
    return { next: packed.first + packed.count, handled };
  }

  /** Waits for the batch in hand (its handler and commit), then gives the member's partitions to the others. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.group.leave(this);
    }
    await this.done;
    this.onStopped();
  }
}
