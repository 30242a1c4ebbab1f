import path from 'node:path';
import type { LogRecord } from '../common/event-log.ts';
import type { ChannelRecords, Journal, JournalChannel } from '../common/journal.ts';
import type { Outbox } from './outbox.ts';

/** The `+` records of records[from..to-1]. */
function* outboxRecords(records: readonly (LogRecord | undefined)[], from: number, to: number): Generator<string> {
  for (let i = from; i < to; i++) yield `+ ${records[i]!.key}\t${records[i]!.value}`;
}

/**
 * Records in memory, made durable in the node's journal (channel `o`, shared with the offline queue so a
 * message costs one fsync): `+ key\tvalue` records and `- count` drops. An outbox file of an earlier
 * version (`outbox-{node}.log`) is folded into the journal at start.
 */
export class EmbeddedOutbox implements Outbox {
  readonly adapter = 'embedded';
  /** Records head.. are in the outbox; those before `released` were dropped and their slots emptied. */
  private records: (LogRecord | undefined)[] = [];
  private head = 0;
  private released = 0;
  /** A compaction is reading live() (records head.. as they were when it asked): slots are emptied after it. */
  private lent = false;
  private readonly log: JournalChannel;

  constructor(journal: Journal, nodeId: number) {
    const legacy = path.join(path.dirname(journal.file), `outbox-${nodeId}.log`);
    this.log = journal.channel(
      'o',
      {
        // No copy needed: records are only pushed to the array, the slots emptied are below the head it was
        // given (and none while it is read), and trim() makes a new one.
        live: () => {
          this.lent = true;
          return outboxRecords(this.records, this.head, this.records.length);
        },
        liveCount: () => this.records.length - this.head,
        compacted: () => {
          this.lent = false;
          this.release();
        },
      },
      (line) => {
        if (line.startsWith('+ ')) {
          const tab = line.indexOf('\t');
          this.records.push({ key: line.slice(2, tab), value: line.slice(tab + 1) });
        } else if (line.startsWith('- ')) {
          this.head = Math.min(this.records.length, this.head + Number(line.slice(2)));
        }
      },
      legacy,
    );
    this.trim();
  }

  append(records: readonly LogRecord[]): Promise<void> {
    const staged = this.stage(records);
    return this.log.append(staged.records, true, staged.written);
  }

  /**
   * The journal records of `records`, for the caller to append at once (see append). peek() shows them
   * once they are written (`written`): a write that fails ships nothing.
   */
  stage(records: readonly LogRecord[]): ChannelRecords {
    return {
      channel: this.log,
      records: records.map((r) => `+ ${r.key}\t${r.value}`),
      written: () => {
        for (const r of records) this.records.push(r);
      },
    };
  }

  async peek(limit: number): Promise<LogRecord[]> {
    return this.records.slice(this.head, this.head + Math.max(0, limit)) as LogRecord[];
  }

  async drop(count: number): Promise<void> {
    const n = Math.min(count, this.records.length - this.head);
    if (n <= 0) return;
    this.head += n;
    this.release();
    // A lost drop ships those records again: the event log is at least once, its consumers drop repeats.
    await this.log.append([`- ${n}`], false);
    if (this.head > 10_000 && this.head * 2 > this.records.length) this.trim();
    this.log.compactIfSparse();
  }

  /**
   * Lets go of the records dropped (unless a compaction is reading them): what the event log has taken is
   * then kept by its consumers only. Kept until the array was trimmed, they outlived the young generation
   * and were most of what the broker thread's GC promoted (bench/HISTORY.md, round 23).
   */
  private release(): void {
    if (this.lent) return;
    this.records.fill(undefined, this.released, this.head);
    this.released = this.head;
  }

  async length(): Promise<number> {
    return this.records.length - this.head;
  }

  /** Forgets the dropped records kept in memory. */
  private trim(): void {
    this.records = this.records.slice(this.head);
    this.head = 0;
    this.released = 0;
  }

  async close(): Promise<void> {
    this.log.close();
  }
}
