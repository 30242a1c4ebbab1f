// Committed offsets of the embedded event log's consumer groups, one file per topic: an fsync'd append-only
// log of `[group, partition, next offset]` (common/append-log.ts), replayed at start and rewritten to the
// live set when most of it is stale.
import path from 'node:path';
import { AppendLog } from './append-log.ts';

export class OffsetStore {
  /** Durable commits: what readers see. */
  private readonly offsets = new Map<string, Map<number, number>>();
  /** Commits written, durable or not: what a compaction keeps (it flushes the pending ones first). */
  private readonly written = new Map<string, Map<number, number>>();
  private readonly log: AppendLog;
  private live = 0;

  constructor(topicDir: string, fsync: boolean) {
    this.log = AppendLog.open(path.join(topicDir, 'offsets.log'), fsync, (line) => {
      const [group, partition, offset] = JSON.parse(line) as [string, number, number];
      set(this.offsets, group, partition, offset);
      this.live += set(this.written, group, partition, offset);
    });
    this.compactIfStale();
  }

  /** The next offset the group reads in the partition, or undefined when it never committed there. */
  get(group: string, partition: number): number | undefined {
    return this.offsets.get(group)?.get(partition);
  }

  /** Durably records that the group has handled everything below `offset`; visible once durable. */
  async commit(group: string, partition: number, offset: number): Promise<void> {
    this.live += set(this.written, group, partition, offset);
    const durable = this.log.append([JSON.stringify([group, partition, offset])]);
    this.compactIfStale();
    await durable;
    set(this.offsets, group, partition, offset);
  }

  /** The lowest committed offset of the partition over every group that committed there. */
  lowest(partition: number): number | undefined {
    let low: number | undefined;
    for (const byPartition of this.offsets.values()) {
      const o = byPartition.get(partition);
      if (o !== undefined && (low === undefined || o < low)) low = o;
    }
    return low;
  }

  private compactIfStale(): void {
    if (this.log.records < 1000 || this.log.records < this.live * 4) return;
    const offsets = this.written;
    try {
      this.log.rewrite(
        (function* () {
          for (const [group, byPartition] of offsets) for (const [p, o] of byPartition) yield JSON.stringify([group, p, o]);
        })(),
      );
    } catch {
      // The long log is still whole and correct; the next commit tries again.
    }
  }

  close(): void {
    this.log.close();
  }
}

/** Returns 1 when the entry is new. */
function set(map: Map<string, Map<number, number>>, group: string, partition: number, offset: number): number {
  let byPartition = map.get(group);
  if (!byPartition) map.set(group, (byPartition = new Map()));
  const added = byPartition.has(partition) ? 0 : 1;
  byPartition.set(partition, offset);
  return added;
}
