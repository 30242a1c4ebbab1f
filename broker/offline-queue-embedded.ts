import path from 'node:path';
import type { ChannelRecords, Journal, JournalChannel } from '../common/journal.ts';
import type { OfflineQueue, QueuedMessage } from './offline-queue.ts';
import { UserQueue } from './user-queue.ts';

/** An emptied user's queue is kept this long (at least; at most twice), for the user's next message. */
const EMPTY_KEPT_MS = 60_000;
const NONE: readonly string[] = [];

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

  constructor(journal: Journal, nodeId: number, private readonly max: number) {
    const queues = this.queues;
    const legacy = path.join(path.dirname(journal.file), `offline-queue-${nodeId}.log`);
    this.log = journal.channel(
      'q',
      {
        live: function* () {
          for (const [userId, q] of queues) for (const [id, payload] of q.entries()) yield `+ ${userId} ${id} ${payload}`;
        },
        liveCount: () => this.live,
      },
      (record) => this.apply(record),
      legacy,
    );
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

  private apply(record: string): void {
    const [op, userId, id] = record.split(' ', 3);
    if (op === '+') {
      const payload = record.slice(op.length + userId.length + id.length + 3);
      this.add(userId, id, payload);
    } else if (op === '-') {
      this.delete(userId, id);
    }
  }

  private add(userId: string, id: string, payload: string): readonly string[] {
    let q = this.queues.get(userId);
    if (!q) this.queues.set(userId, (q = new UserQueue()));
    if (q.set(id, payload)) this.live++;
    if (q.size <= this.max) return NONE;
    const dropped: string[] = [];
    while (q.size > this.max) {
      const oldest = q.oldest() as string;
      q.delete(oldest);
      this.live--;
      dropped.push(oldest);
    }
    return dropped;
  }

  private delete(userId: string, id: string): boolean {
    const q = this.queues.get(userId);
    if (!q || !q.delete(id)) return false;
    this.live--;
    return true;
  }

  async push(batch: readonly { userId: string; message: QueuedMessage }[]): Promise<void> {
    const { records } = this.stage(batch);
    await this.log.append(records);
  }

  /**
   * Queues the batch in memory and returns the journal records that make it durable, for the caller to
   * append (EmbeddedAcceptStore writes them with the outbox's and the claim in one append). They must be
   * appended before anything else touches the queue, as push does.
   */
  stage(batch: readonly { userId: string; message: QueuedMessage }[]): ChannelRecords {
    const records: string[] = [];
    for (const { userId, message } of batch) {
      records.push(`+ ${userId} ${message.id} ${message.payload}`);
      for (const old of this.add(userId, message.id, message.payload)) records.push(`- ${userId} ${old}`);
    }
    return { channel: this.log, records };
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
