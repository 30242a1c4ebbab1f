// One group-committed file (`journal-{node}.log`) shared by the embedded stores written on the ack path: the
// offline queue and the outbox. A message leaves a record in both; sharing the file makes them one write()
// and one fdatasync() instead of two of each, and the ack waits for one disk flush, not the slower of two.
//
// Each record starts with its channel's tag and a space (`q + alice 123 {...}`, `o - 50`). A channel replays
// its records when it joins, and its live records when the journal is compacted; records of a tag no channel
// has claimed (a store this process does not open) are carried over as they are.
import fs from 'node:fs';
import path from 'node:path';
import { AppendLog } from './append-log.ts';

export interface ChannelState {
  /**
   * The records that rebuild the channel's present state, oldest first (without the tag). Called in the
   * turn a compaction takes its snapshot and read afterwards, a slice per turn, while the channel goes on
   * changing: it yields the records as they were when it was called (AppendLog.rewriteInBackground).
   */
  live(): Iterable<string>;
  /** How many records live() yields. */
  liveCount(): number;
  /**
   * Told when a compaction starts, before it waits for everything appended so far to be on disk: a channel
   * that keeps its older records somewhere else notes what it has now (the claims: their ClaimIndex cursor).
   */
  compactionStarts?(): void;
  /**
   * Then, once those records are on disk and before live() is read: the channel moves what it noted to its
   * other place, durably (the claims: ClaimArchive), and live() yields only what it has not moved. Never a
   * record before what it rests on is on disk (a claim before its message).
   */
  compacting?(): Promise<void>;
  /**
   * Told when the compaction that called live() has ended, its file written or not: what live() handed
   * out is read no more.
   */
  compacted?(): void;
}

export interface JournalChannel {
  /** The channel's tag (the first word of each of its records in the file). */
  readonly tag: string;
  /** Appends records of this channel; see AppendLog.append for `durable` and `written`. */
  append(records: readonly string[], durable?: boolean, written?: () => void): Promise<void>;
  /** Rewrites the journal to its live records when most of the file is dead. */
  compactIfSparse(): void;
  /** Leaves the journal; the file closes when its last channel leaves. */
  close(): void;
}

/** Some records of one channel, for Journal.appendAll. */
export interface ChannelRecords {
  channel: JournalChannel;
  records: readonly string[];
  /**
   * Told once the records are written, before the append's own `written`; never when the write fails. A
   * store shows what its records hold from then on (not before: a failed write leaves nothing behind).
   */
  written?: () => void;
}

function* tagged(parts: readonly [string, Iterable<string>][]): Generator<string> {
  for (const [tag, records] of parts) for (const r of records) yield `${tag} ${r}`;
}

const COMPACT_MIN_RECORDS = 10_000;
/**
 * Nor, by default, before the file holds this many bytes (PARLEY_JOURNAL_COMPACT_MB). 0: a compaction
 * runs beside the event loop, holding it ~1–5 ms at once (the snapshot, a slice of it, or the swap), so small frequent ones
 * (every 1–2 s at 1,000–3,000 msg/s) cost least; larger thresholds bunch the claims' move and the file
 * writes into bigger lumps (32 MB: p99.9 15–24 ms at 2,000 msg/s against 7.5–11 ms; bench/HISTORY.md, round 14).
 */
const COMPACT_MIN_BYTES = 0;
/** After a failed compaction the next is tried once this many more records were appended. */
const COMPACT_RETRY_RECORDS = 1_000;

export class Journal {
  private readonly channels = new Map<string, ChannelState>();
  /** Replayed records whose channel has not joined yet, by tag. */
  private readonly unclaimed = new Map<string, string[]>();
  /** The channels this journal opened (appendAll refuses another journal's). */
  private readonly mine = new WeakSet<JournalChannel>();
  private open = 0;
  /** After a failed compaction, the next is tried once the file has this many records (not at every removal). */
  private retryAt = 0;
  /** Channels that left: a compaction under way when one does stops (its state may be cleared already). */
  private left = 0;
  /** Files of earlier versions taken in, removed once a compaction has put their records in the journal. */
  private readonly legacyFiles = new Set<string>();
  /**
   * Told when a compaction fails (a full disk, an I/O error): the journal keeps its records as they were
   * and tries again after COMPACT_RETRY_RECORDS more. Unset, a process warning says so.
   */
  onCompactionFailed: ((err: unknown) => void) | null = null;
  /** Told the longest each compaction held the event loop at once (seconds): its snapshot, a slice, or the swap (AppendLog.rewriteInBackground). */
  onCompacted: ((seconds: number) => void) | null = null;
  /** The compaction under way. */
  private compaction: Promise<boolean> | null = null;

  private constructor(
    private readonly log: AppendLog,
    private readonly compactMinBytes: number,
  ) {}

  /** Opens (creating) the journal of a node in `dataDir`; it compacts only once it holds `compactMinBytes`. */
  static open(dataDir: string, nodeId: number, fsync: boolean, compactMinBytes = COMPACT_MIN_BYTES): Journal {
    const unclaimed = new Map<string, string[]>();
    const log = AppendLog.open(path.join(dataDir, `journal-${nodeId}.log`), fsync, (record) => {
      const space = record.indexOf(' ');
      if (space <= 0) return; // not written by this code: dropped at the next compaction
      const tag = record.slice(0, space);
      let list = unclaimed.get(tag);
      if (!list) unclaimed.set(tag, (list = []));
      list.push(record.slice(space + 1));
    });
    const journal = new Journal(log, compactMinBytes);
    for (const [tag, records] of unclaimed) journal.unclaimed.set(tag, records);
    return journal;
  }

  /** Whether appends are fdatasync'd (false only for tests and benchmarks). */
  get fsync(): boolean {
    return this.log.fsync;
  }

  get file(): string {
    return this.log.file;
  }

  /** Told how long each group commit's fdatasync took (seconds), until the event loop ran its callback: every ack waits for one. */
  set onSync(observe: ((seconds: number) => void) | null) {
    this.log.onSync = observe;
  }

  /**
   * Joins the journal as `tag`: `replay` gets the channel's records in order, first those of `legacy` (the
   * file the store used before the journal, if it is still there), then the journal's. A legacy file is
   * folded in by a compaction and then removed; a crash in between replays it once more, which the stores
   * absorb (queue entries are keyed by id; the outbox ships at least once).
   */
  channel(tag: string, state: ChannelState, replay: (record: string) => void, legacy?: string): JournalChannel {
    if (!/^[a-z]+$/.test(tag)) throw new Error(`journal tag must be lowercase letters: ${JSON.stringify(tag)}`);
    if (this.channels.has(tag)) throw new Error(`journal channel ${tag} is open already`);
    const legacyFile = legacy && fs.existsSync(legacy) ? legacy : null;
    if (legacyFile) AppendLog.open(legacyFile, false, replay).close();
    for (const record of this.unclaimed.get(tag) ?? []) replay(record);
    this.unclaimed.delete(tag);
    this.channels.set(tag, state);
    this.open++;
    if (legacyFile) {
      // Removed once a compaction has its records in the journal, on disk; until then it stays, and a
      // restart reads it again.
      this.legacyFiles.add(legacyFile);
      void this.compact();
    }
    let closed = false;
    const channel: JournalChannel = {
      tag,
      append: (records, durable = true, written) => this.appendAll([{ channel, records }], durable, written),
      compactIfSparse: () => this.compactIfSparse(),
      close: () => {
        if (closed) return;
        closed = true;
        this.left++;
        if (--this.open === 0) this.log.close();
      },
    };
    this.mine.add(channel);
    return channel;
  }

  /**
   * Appends the records of several channels in this order, in one commit, waited on once: what one
   * accepted message writes (its queue records, its outbox record, its claim) without a promise for each.
   * `written` is told when they are in the page cache, before they are on disk (AppendLog.append), after
   * each part's own `written`, in the parts' order.
   */
  appendAll(parts: readonly ChannelRecords[], durable = true, written?: () => void): Promise<void> {
    const tagged: string[] = [];
    let told = false;
    for (const { channel, records, written: partWritten } of parts) {
      if (!this.mine.has(channel)) return Promise.reject(new Error(`journal channel ${channel.tag} is not of ${this.file}`));
      for (const r of records) tagged.push(`${channel.tag} ${r}`);
      if (partWritten) told = true;
    }
    if (!told) return this.log.append(tagged, durable, written);
    return this.log.append(tagged, durable, () => {
      for (const part of parts) part.written?.();
      written?.();
    });
  }

  /** Resolves once everything appended so far is on disk. */
  synced(): Promise<void> {
    return this.log.synced();
  }

  /** Starts a compaction when most records are dead and none is under way. */
  private compactIfSparse(): void {
    if (this.compaction || this.log.records <= COMPACT_MIN_RECORDS || this.log.bytes < this.compactMinBytes || this.log.records < this.retryAt) return;
    let live = 0;
    for (const state of this.channels.values()) live += state.liveCount();
    for (const records of this.unclaimed.values()) live += records.length;
    if (this.log.records > live * 4) void this.compact();
  }

  /** Resolves once no compaction is under way (tests, and a caller that wants the file small now). */
  async idle(): Promise<void> {
    while (this.compaction) await this.compaction;
  }

  /**
   * Rewrites the journal to its live records beside the event loop (after the one under way, if any).
   * Resolves true once the new file is in place, false when it failed: the journal then stays as it was,
   * the failure goes to onCompactionFailed (never to the caller: a removal or drop that set it off is done
   * either way), and the next compaction is tried COMPACT_RETRY_RECORDS later.
   */
  compact(): Promise<boolean> {
    const run = (this.compaction ?? Promise.resolve(true)).then(() => this.compactOnce());
    const settled = run.finally(() => {
      if (this.compaction === settled) this.compaction = null;
    });
    this.compaction = settled;
    return settled;
  }

  private async compactOnce(): Promise<boolean> {
    const { channels, unclaimed } = this;
    const left = this.left;
    // A channel that left may have cleared its state: what the snapshot would read of it is not its records.
    const stillOpen = () => this.open > 0 && this.left === left;
    /** The channels whose live() the snapshot took. */
    const lent: ChannelState[] = [];
    try {
      if (!stillOpen()) return false;
      const legacy = [...this.legacyFiles];
      for (const state of channels.values()) state.compactionStarts?.();
      // What the channels noted is on disk before any of it moves elsewhere (a claim before its message).
      await this.log.synced();
      for (const state of channels.values()) {
        if (!stillOpen()) return false;
        await state.compacting?.();
      }
      if (!stillOpen()) return false;
      const held = await this.log.rewriteInBackground(() => {
        // Every channel's snapshot in this turn; read later. Unclaimed records never change.
        const parts: [string, Iterable<string>][] = [];
        for (const [tag, state] of channels) {
          parts.push([tag, state.live()]);
          lent.push(state);
        }
        for (const entry of unclaimed) parts.push(entry);
        return tagged(parts);
      });
      this.retryAt = 0;
      this.onCompacted?.(held);
      if (legacy.length > 0) await this.dropLegacy(legacy);
      return true;
    } catch (err) {
      if (this.open === 0) return false; // closed meanwhile: nothing to report
      this.retryAt = this.log.records + COMPACT_RETRY_RECORDS;
      if (this.onCompactionFailed) this.onCompactionFailed(err);
      else process.emitWarning(`journal ${this.file}: compaction failed, retried later: ${String(err)}`);
      return false;
    } finally {
      for (const state of lent) state.compacted?.();
    }
  }

  /** Removes files of earlier versions once the journal that took them in, and its rename, are on disk. */
  private async dropLegacy(files: string[]): Promise<void> {
    try {
      await this.log.synced();
      for (const file of files) {
        await fs.promises.rm(file, { force: true });
        this.legacyFiles.delete(file);
      }
    } catch {
      // kept, and removed after the next compaction
    }
  }
}
