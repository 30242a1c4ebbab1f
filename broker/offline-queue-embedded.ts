import path from 'node:path';
import type { ChannelRecords, Journal, JournalChannel } from '../common/journal.ts';
import type { OfflineQueue, QueuedMessage } from './offline-queue.ts';
import { UserQueue } from './user-queue.ts';

/** An emptied user's queue is kept this long (at least; at most twice), for the user's next message. */
const EMPTY_KEPT_MS = 60_000;
const noop = () => {};

/** The `+` records of users' queues. */
function* queuedRecords(queues: readonly [string, Iterable<[string, string]>][]): Generator<string> {
  for (const [userId, entries] of queues) for (const [id, payload] of entries) yield `+ ${userId} ${id} ${payload}`;
}

/**
 * Queues in memory, made durable in the node's journal (channel `q`, shared with the outbox so a message
 * costs one fsync): `+ user id payload` and `- user id` records, replayed at start, compacted with the
 * journal when most records are dead. A queue file of an earlier version (`offline-queue-{node}.log`) is
 * folded into the journal at start.
 */
export class EmbeddedOfflineQueue implements OfflineQueue {
  readonly adapter = 'embedded';
  /**
   * By user. A queue that empties stays for a while: an online user's queue empties on every PUBACK, and
   * making it anew for the next message is what UserQueue saves (its comment says why).
   */
  private readonly queues = new Map<string, UserQueue>();
  /** Users whose queue was empty at the last sweep; dropped at the next if it still is. */
  private emptyAtLastSweep = new Set<string>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly log: JournalChannel;
  private live = 0;
  /** The queues a compaction's snapshot reads (UserQueue.entriesNow), until it ends. */
  private lent: UserQueue[] = [];

  constructor(journal: Journal, nodeId: number, private readonly max: number) {
    const queues = this.queues;
    const legacy = path.join(path.dirname(journal.file), `offline-queue-${nodeId}.log`);
    this.log = journal.channel(
      'q',
      {
        live: () => {
          const now: [string, Iterable<[string, string]>][] = [];
          for (const [userId, q] of queues) {
            if (q.size === 0) continue;
            now.push([userId, q.entriesNow()]);
            this.lent.push(q);
          }
          return queuedRecords(now);
        },
        // Until then the queues copy their arrays before changing what the snapshot reads.
        compacted: () => {
          for (const q of this.lent) q.released();
          this.lent = [];
        },
        liveCount: () => this.live,
      },
      (record) => this.apply(record),
      legacy,
    );
    this.capAll();
    this.sweeper = setInterval(() => this.dropEmpty(), EMPTY_KEPT_MS).unref();
  }

  private dropEmpty(): void {
    const empty = new Set<string>();
    for (const [userId, q] of this.queues) {
      if (q.size !== 0) continue;
      if (this.emptyAtLastSweep.has(userId)) this.queues.delete(userId);
      else empty.add(userId);
    }
    this.emptyAtLastSweep = empty;
  }

  /** Replays one journal record. The cap is applied once the replay is over (capAll). */
  private apply(record: string): void {
    const [op, userId, id] = record.split(' ', 3);
    if (op === '+') {
      this.add(userId, id, record.slice(op.length + userId.length + id.length + 3));
    } else if (op === '-') {
      this.delete(userId, id);
    }
  }

  private add(userId: string, id: string, payload: string): void {
    let q = this.queues.get(userId);
    if (!q) this.queues.set(userId, (q = new UserQueue()));
    if (q.set(id, payload)) this.live++;
  }

  /** Drops the oldest of a user's queue while it holds more than the cap; returns their `-` records. */
  private cap(userId: string, out: string[]): void {
    const q = this.queues.get(userId);
    if (!q) return;
    while (q.size > this.max) {
      const oldest = q.oldest() as string;
      q.delete(oldest);
      this.live--;
      out.push(`- ${userId} ${oldest}`);
    }
  }

  /**
   * After the replay: a queue over the cap lost its `-` records in a crash (they are written without waiting
   * for the disk, as removals are), or the cap is lower than when they were written.
   */
  private capAll(): void {
    const dropped: string[] = [];
    for (const userId of this.queues.keys()) this.cap(userId, dropped);
    if (dropped.length > 0) void this.log.append(dropped, false).catch(noop);
  }

  private delete(userId: string, id: string): boolean {
    const q = this.queues.get(userId);
    if (!q || !q.delete(id)) return false;
    this.live--;
    return true;
  }

  async push(batch: readonly { userId: string; message: QueuedMessage }[]): Promise<void> {
    const staged = this.stage(batch);
    await this.log.append(staged.records, true, staged.written);
  }

  /**
   * The journal records that queue the batch, for the caller to append at once (EmbeddedAcceptStore writes
   * them with the outbox's and the claim in one append), as push does. The messages are queued in memory
   * once the records are written (`written`): a write that fails queues nothing. Whom the cap then drops
   * is written after them, without waiting for the disk (a replay applies the cap as well).
   */
  stage(batch: readonly { userId: string; message: QueuedMessage }[]): ChannelRecords {
    const records: string[] = [];
    for (const { userId, message } of batch) records.push(`+ ${userId} ${message.id} ${message.payload}`);
    return {
      channel: this.log,
      records,
      written: () => {
        let dropped: string[] | null = null;
        for (const { userId, message } of batch) {
          this.add(userId, message.id, message.payload);
          if ((this.queues.get(userId) as UserQueue).size > this.max) this.cap(userId, (dropped ??= []));
        }
        if (dropped) void this.log.append(dropped, false).catch(noop);
      },
    };
  }

  async list(userId: string, limit: number): Promise<QueuedMessage[]> {
    const out: QueuedMessage[] = [];
    for (const [id, payload] of this.queues.get(userId)?.entries() ?? []) {
      if (out.length >= limit) break;
      out.push({ id, payload });
    }
    return out;
  }

  async remove(userId: string, message: QueuedMessage): Promise<void> {
    if (!this.delete(userId, message.id)) return;
    // A lost removal only means one redelivery, which clients drop by id (PROTOCOL.md, guarantee 2): it is
    // written at once but not waited on to reach the disk; the next durable commit takes it along.
    await this.log.append([`- ${userId} ${message.id}`], false);
    this.log.compactIfSparse();
  }

  async length(userId: string): Promise<number> {
    return this.queues.get(userId)?.size ?? 0;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.log.close();
  }
}
