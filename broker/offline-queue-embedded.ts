import path from 'node:path';
import type { ChannelRecords, Journal, JournalChannel } from '../common/journal.ts';
import type { OfflineQueue, QueuedMessage } from './offline-queue.ts';

/**
 * Queues in memory, made durable in the node's journal (channel `q`, shared with the outbox so a message
 * costs one fsync): `+ user id payload` and `- user id` records, replayed at start, compacted with the
 * journal when most records are dead. A queue file of an earlier version (`offline-queue-{node}.log`) is
 * folded into the journal at start.
 */
export class EmbeddedOfflineQueue implements OfflineQueue {
  readonly adapter = 'embedded';
  private readonly queues = new Map<string, Map<string, string>>();
  private readonly log: JournalChannel;
  private live = 0;

  constructor(journal: Journal, nodeId: number, private readonly max: number) {
    const queues = this.queues;
    const legacy = path.join(path.dirname(journal.file), `offline-queue-${nodeId}.log`);
    this.log = journal.channel(
      'q',
      {
        live: function* () {
          for (const [userId, q] of queues) for (const [id, payload] of q) yield `+ ${userId} ${id} ${payload}`;
        },
        liveCount: () => this.live,
      },
      (record) => this.apply(record),
      legacy,
    );
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

  private add(userId: string, id: string, payload: string): string[] {
    let q = this.queues.get(userId);
    if (!q) this.queues.set(userId, (q = new Map()));
    if (!q.has(id)) this.live++;
    q.set(id, payload);
    const dropped: string[] = [];
    while (q.size > this.max) {
      const oldest = q.keys().next().value as string;
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
    if (q.size === 0) this.queues.delete(userId);
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
    for (const [id, payload] of this.queues.get(userId) ?? []) {
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
    this.log.close();
  }
}
