import path from 'node:path';
import { AppendLog } from '../common/append-log.ts';
import type { LogRecord } from '../common/event-log.ts';
import type { Outbox } from './outbox.ts';

/** An fsync'd append-only file `outbox-{node}.log`: `+ key\tvalue` records and `- count` drops. */
export class EmbeddedOutbox implements Outbox {
  readonly adapter = 'embedded';
  private records: LogRecord[] = [];
  private head = 0;
  private readonly log: AppendLog;

  constructor(dataDir: string, nodeId: number, fsync = true) {
    this.log = AppendLog.open(path.join(dataDir, `outbox-${nodeId}.log`), fsync, (line) => {
      if (line.startsWith('+ ')) {
        const tab = line.indexOf('\t');
        this.records.push({ key: line.slice(2, tab), value: line.slice(tab + 1) });
      } else if (line.startsWith('- ')) {
        this.head = Math.min(this.records.length, this.head + Number(line.slice(2)));
      }
    });
    this.compact();
  }

  append(records: readonly LogRecord[]): Promise<void> {
    for (const r of records) this.records.push(r);
    return this.log.append(records.map((r) => `+ ${r.key}\t${r.value}`));
  }

  async peek(limit: number): Promise<LogRecord[]> {
    return this.records.slice(this.head, this.head + Math.max(0, limit));
  }

  async drop(count: number): Promise<void> {
    const n = Math.min(count, this.records.length - this.head);
    if (n <= 0) return;
    this.head += n;
    // A lost drop ships those records again: the event log is at least once, its consumers drop repeats.
    await this.log.append([`- ${n}`], false);
    if (this.head > 10_000 && this.head * 2 > this.records.length) this.compact();
  }

  async length(): Promise<number> {
    return this.records.length - this.head;
  }

  private compact(): void {
    this.records = this.records.slice(this.head);
    this.head = 0;
    const live = this.records;
    this.log.rewrite((function* () {
      for (const r of live) yield `+ ${r.key}\t${r.value}`;
    })());
  }

  async close(): Promise<void> {
    this.log.close();
  }
}
