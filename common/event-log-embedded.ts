// EventLog inside the process, for `npm start` with no Kafka: under {dataDir}/event-log/{topic}/ a
// `meta.json` (the partition count), one directory of segment files per partition
// (common/event-log-segments.ts) and `offsets.log`, the groups' committed offsets
// (common/event-log-offsets.ts). A record goes to partition FNV-1a(key) mod partitions. Appends made in the
// same turn of the event loop are written together and fsync'd once per partition before any of them
// resolves, and only then shown to consumers. Groups live in this process (event-log-embedded-group.ts).
import fs from 'node:fs';
import path from 'node:path';
import type { ConsumeOptions, EventLog, LogRecord, Subscription } from './event-log.ts';
import { ConsumerGroup, EmbeddedSubscription, unpackConsumed, type ConsumerSettings, type TopicState } from './event-log-embedded-group.ts';
import { OffsetStore } from './event-log-offsets.ts';
import { PartitionLog, type PackedRecords } from './event-log-segments.ts';
import { createLogger, type Logger } from './log.ts';

export interface EmbeddedEventLogOptions {
  /** fdatasync before an append resolves (default true); off only for tests and benchmarks. */
  fsync?: boolean;
  /** Partitions of a topic that `append` or `consume` creates because nobody called `ensureTopic` first. */
  partitions?: number;
  /** A partition's segment file is rolled past this size (default 64 MiB). */
  segmentBytes?: number;
  /** Most records and (about) most bytes in one batch handed to a handler. */
  maxBatch?: number;
  maxBatchBytes?: number;
  /** Backoff before a failed batch is handed out again: doubles from min to max. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * Delete a partition's old segments once every group that ever committed there has committed past them
   * (default false: keep everything, as a group that never committed, or a new one reading from the
   * beginning, would otherwise miss them).
   */
  deleteConsumed?: boolean;
  logger?: Logger;
}

export type PackedConsumeOptions = Omit<ConsumeOptions, 'handle'> & { handle(batch: PackedRecords): Promise<void> };

const TOPIC_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,200}$/;
const MAX_PARTITIONS = 10_000;
/** Data dirs open in this process: a second instance on one dir would interleave writes. */
const openDirs = new Set<string>();

/** 32-bit FNV-1a over the key's UTF-8 bytes: stable across processes and versions. */
export function partitionOf(key: string, partitions: number): number {
  // The embedded topic's default: one partition, and no key to encode and hash for each record.
  if (partitions === 1) return 0;
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}

class Topic implements TopicState {
  readonly groups = new Map<string, ConsumerGroup>();
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly partitions: readonly PartitionLog[],
    readonly offsets: OffsetStore,
    private readonly deleteConsumed: boolean,
  ) {}

  changed(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      this.waiters.add(wake);
      if (ms !== undefined) timer = setTimeout(wake, ms);
    });
  }

  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  committed(partition: number): void {
    if (!this.deleteConsumed) return;
    const low = this.offsets.lowest(partition);
    if (low !== undefined) this.partitions[partition].deleteBefore(low);
  }

  close(): void {
    for (const p of this.partitions) p.close();
    this.offsets.close();
  }
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

export class EmbeddedEventLog implements EventLog {
  readonly adapter = 'embedded';
  /** {dataDir}/event-log */
  readonly dir: string;
  private readonly opts: Required<Omit<EmbeddedEventLogOptions, 'logger'>>;
  private readonly consumer: ConsumerSettings;
  private readonly topics = new Map<string, Topic>();
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  private dirty = new Map<PartitionLog, Topic>();
  private waiters: Waiter[] = [];
  private flushing: Promise<void> | null = null;
  /** Set when an fsync failed: what was written can no longer be vouched for, so nothing more is accepted. */
  private failed: Error | null = null;
  private closed = false;

  constructor(dataDir: string, options: EmbeddedEventLogOptions = {}) {
    this.dir = path.resolve(dataDir, 'event-log');
    this.opts = {
      fsync: options.fsync ?? true,
      partitions: options.partitions ?? 6,
      segmentBytes: options.segmentBytes ?? 64 * 1024 * 1024,
      maxBatch: options.maxBatch ?? 500,
      maxBatchBytes: options.maxBatchBytes ?? 1024 * 1024,
      retryMinMs: options.retryMinMs ?? 100,
      retryMaxMs: options.retryMaxMs ?? 5000,
      deleteConsumed: options.deleteConsumed ?? false,
    };
    this.consumer = {
      maxBatch: this.opts.maxBatch,
      maxBatchBytes: this.opts.maxBatchBytes,
      retryMinMs: this.opts.retryMinMs,
      retryMaxMs: this.opts.retryMaxMs,
      logger: options.logger ?? createLogger('warn', 'event-log'),
    };
    fs.mkdirSync(this.dir, { recursive: true });
    lock(this.dir);
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    this.assertOpen();
    this.topic(topic, partitions);
  }

  /** The open topic, loading it from disk or creating it with `partitions` (an existing one keeps its count). */
  private topic(name: string, partitions: number): Topic {
    const open = this.topics.get(name);
    if (open) return open;
    if (!TOPIC_NAME.test(name)) throw new Error(`invalid topic name ${JSON.stringify(name)}: use 1-200 of A-Z a-z 0-9 . _ -`);
    const dir = path.join(this.dir, name);
    const metaFile = path.join(dir, 'meta.json');
    let count: number;
    if (fs.existsSync(metaFile)) {
      count = (JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { partitions: number }).partitions;
    } else {
      if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
        throw new Error(`invalid partition count ${partitions} for topic ${name}: 1 to ${MAX_PARTITIONS}`);
      }
      count = partitions;
      fs.mkdirSync(dir, { recursive: true });
      writeAtomically(metaFile, JSON.stringify({ partitions: count }) + '\n');
    }
    const logs = Array.from({ length: count }, (_, p) => PartitionLog.open(path.join(dir, String(p)), this.opts.segmentBytes, this.opts.fsync));
    const t = new Topic(name, logs, new OffsetStore(dir, this.opts.fsync), this.opts.deleteConsumed);
    this.topics.set(name, t);
    return t;
  }

  append(topic: string, records: readonly LogRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`event log in ${this.dir} is closed`));
    if (this.failed) return Promise.reject(new Error(`event log in ${this.dir} failed to sync and takes no more appends: ${this.failed.message}`));
    if (records.length === 0) return Promise.resolve();
    let t: Topic;
    try {
      t = this.topic(topic, this.opts.partitions);
    } catch (err) {
      return Promise.reject(err);
    }
    for (const r of records) {
      if (typeof r.key !== 'string' || typeof r.value !== 'string') return Promise.reject(new TypeError('event log records need a string key and value'));
    }
    const timestamp = Date.now();
    for (const r of records) {
      const p = t.partitions[partitionOf(r.key, t.partitions.length)];
      p.push(timestamp, r.key, r.value);
      this.dirty.set(p, t);
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.flush());
    });
  }

  /** Group commit: writes every dirty partition, fsyncs them together, resolves, then wakes consumers. */
  private async flush(): Promise<void> {
    try {
      while (this.waiters.length > 0) {
        const waiters = this.waiters;
        const dirty = this.dirty;
        this.waiters = [];
        this.dirty = new Map();
        const written: [PartitionLog, number][] = [];
        let writeError: Error | null = null;
        for (const p of dirty.keys()) {
          try {
            written.push([p, p.write()]);
          } catch (err) {
            // That partition is cut back to its last whole record; the others are synced as usual.
            writeError ??= err as Error;
          }
        }
        try {
          await Promise.all(written.map(([p, n]) => p.sync(n)));
        } catch (err) {
          this.failed = err as Error;
          for (const w of waiters) w.reject(err as Error);
          continue;
        }
        for (const w of waiters) (writeError ? w.reject(writeError) : w.resolve());
        for (const t of new Set(dirty.values())) t.notify();
      }
    } finally {
      this.flushing = null;
    }
  }

  consume({ handle, ...options }: ConsumeOptions): Promise<Subscription> {
    return this.consumePacked({ ...options, handle: (packed) => handle(unpackConsumed(packed, `${this.dir}/${options.topic}/${packed.partition}`)) });
  }

  /**
   * consume() with each batch as read, its records' lines unparsed (PackedRecords): for a handler in another
   * thread (event-log-rpc.ts), which parses them there, so the broker thread makes no object per record.
   */
  async consumePacked(options: PackedConsumeOptions): Promise<Subscription> {
    this.assertOpen();
    const { topic: name, group: groupName, fromBeginning, handle, lingerMs } = options;
    const t = this.topic(name, this.opts.partitions);
    let group = t.groups.get(groupName);
    if (!group) t.groups.set(groupName, (group = new ConsumerGroup(groupName, t, this.consumer, lingerMs)));
    if (!fromBeginning && group.members.length === 0) {
      // A group new to a partition starts at its end as of now; committed, so a restart or another member agrees.
      await Promise.all(t.partitions.map((p, i) => (t.offsets.get(groupName, i) === undefined ? t.offsets.commit(groupName, i, p.end) : undefined)));
    }
    const sub = new EmbeddedSubscription(group, t, handle, this.consumer, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    return sub;
  }

  async ping(): Promise<boolean> {
    return !this.closed && !this.failed;
  }

  /** The segment files of a partition, oldest first (for tests and operators). */
  segmentFiles(topic: string, partition: number): string[] {
    return this.topics.get(topic)?.partitions[partition]?.files() ?? [];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    await this.flushing;
    // Deleted segments' files gone before the lock is let go (another process may open the folder next).
    for (const t of this.topics.values()) await Promise.all(t.partitions.map((p) => p.removed()));
    for (const t of this.topics.values()) t.close();
    this.topics.clear();
    unlock(this.dir);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`event log in ${this.dir} is closed`);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dir);
  } finally {
    fs.closeSync(dir);
  }
}

/** One instance per data dir: in this process (a set) and across processes (a LOCK file naming the pid). */
function lock(dir: string): void {
  if (openDirs.has(dir)) throw new Error(`the embedded event log in ${dir} is already open in this process; share that instance`);
  const file = path.join(dir, 'LOCK');
  let holder = NaN;
  try {
    holder = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    // no lock file: free
  }
  if (Number.isInteger(holder) && holder !== process.pid && alive(holder)) {
    throw new Error(
      `the embedded event log in ${dir} is open in process ${holder}; run every role in one process ` +
        '(`parley start`) or give them a shared Kafka (PARLEY_KAFKA_BROKERS)',
    );
  }
  fs.writeFileSync(file, `${process.pid}\n`);
  openDirs.add(dir);
}

function unlock(dir: string): void {
  openDirs.delete(dir);
  fs.rmSync(path.join(dir, 'LOCK'), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
