// One partition of the embedded event log: segment files named by their first offset (20 digits, as Kafka
// names them), each a run of JSON lines `[timestamp, key, value]`; the newest segment takes the appends and
// is rolled past a size. Offsets are record numbers. A record becomes readable when the fsync that covers
// it returns (`end`), never earlier.
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { syncDirAsync, syncDirSync } from './append-log.ts';

export interface StoredRecord {
  offset: number;
  timestamp: number;
  key: string;
  value: string;
}

interface Segment {
  base: number;
  file: string;
  /** Records in it: for a sealed segment, the next one's base minus its own. */
  count: number;
  /** Bytes of complete records. */
  size: number;
  /** Byte position of record base + i·INDEX_EVERY; built on first read for a sealed segment. */
  index: number[] | null;
}

const INDEX_EVERY = 64;
/** The newest records of a partition are also kept in memory, so consumers that keep up never read the files. */
const TAIL_RECORDS = 8192;
const TAIL_BYTES = 4 * 1024 * 1024;
const NEWLINE = 0x0a;
const READ_CHUNK = 256 * 1024;
const fdatasync = promisify(fs.fdatasync);
const segmentName = (base: number) => `${String(base).padStart(20, '0')}.log`;

/** Removes the files, oldest first, then syncs their directory; false when one would not go. */
async function removeFiles(files: readonly string[], dir: string, fsync: boolean): Promise<boolean> {
  try {
    for (const file of files) await fs.promises.rm(file, { force: true });
    if (fsync) await syncDirAsync(dir);
    return true;
  } catch (err) {
    process.emitWarning(`event log ${dir}: deleting consumed segments failed, left until the next start: ${String(err)}`);
    return false;
  }
}

export class PartitionLog {
  private readonly segments: Segment[] = [];
  private fd: number;
  private pending: string[] = [];
  private pendingRecords: Omit<StoredRecord, 'offset'>[] = [];
  /**
   * The newest records written, oldest first: tail[i] has offset tailBase + i, and those before tailFirst
   * were dropped (the array is cut only once as many were dropped as are kept: no copy on every write).
   */
  private tail: (Omit<StoredRecord, 'offset'> | undefined)[] = [];
  private tailBase = 0;
  private tailFirst = 0;
  private tailBytes = 0;
  /** Deletions of segment files under way, one after another (deleteBefore). */
  private removals: Promise<void> = Promise.resolve();
  private removalFailed = false;
  /** Records written to the file (durable or not). */
  private written: number;
  /** Records made durable: offsets below are readable. */
  end: number;
  /** A segment was started since the last sync of the directory (roll). */
  private dirUnsynced = false;

  private constructor(
    readonly dir: string,
    private readonly segmentBytes: number,
    private readonly fsync: boolean,
    segments: Segment[],
  ) {
    this.segments = segments;
    const active = segments[segments.length - 1];
    this.fd = fs.openSync(active.file, 'a');
    this.written = this.end = active.base + active.count;
  }

  /** Opens (creating) the partition directory; a torn record at the tail (a crash mid-write) is cut off. */
  static open(dir: string, segmentBytes: number, fsync: boolean): PartitionLog {
    fs.mkdirSync(dir, { recursive: true });
    const bases = fs
      .readdirSync(dir)
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => Number(f.slice(0, 20)))
      .sort((a, b) => a - b);
    if (bases.length === 0) {
      fs.writeFileSync(path.join(dir, segmentName(0)), '');
      if (fsync) syncDirSync(dir);
      bases.push(0);
    }
    const segments: Segment[] = bases.map((base, i) => {
      const file = path.join(dir, segmentName(base));
      const last = i === bases.length - 1;
      return { base, file, count: last ? 0 : bases[i + 1] - base, size: last ? 0 : fs.statSync(file).size, index: null };
    });
    recoverTail(segments[segments.length - 1]);
    return new PartitionLog(dir, segmentBytes, fsync, segments);
  }

  /** The oldest offset still on disk (older segments may have been deleted). */
  get start(): number {
    return this.segments[0].base;
  }

  /** Queues a record for the next `write`. */
  push(timestamp: number, key: string, value: string): void {
    // JSON escapes newlines and lone surrogates, so every string comes back exactly and one line is one record.
    this.pending.push(JSON.stringify([timestamp, key, value]));
    this.pendingRecords.push({ timestamp, key, value });
  }

  get dirty(): boolean {
    return this.pending.length > 0;
  }

  /** Writes the queued lines to the active segment (rolling it first if full); returns the new record count. */
  write(): number {
    if (this.pending.length === 0) return this.written;
    let active = this.segments[this.segments.length - 1];
    if (active.size >= this.segmentBytes && active.count > 0) active = this.roll();
    const lines = this.pending;
    const records = this.pendingRecords;
    this.pending = [];
    this.pendingRecords = [];
    let pos = active.size;
    let n = active.count;
    for (const line of lines) {
      if (n % INDEX_EVERY === 0) active.index!.push(pos);
      pos += Buffer.byteLength(line) + 1;
      n++;
    }
    try {
      fs.writeSync(this.fd, lines.join('\n') + '\n');
    } catch (err) {
      // Leave no partial record in the middle of the file: cut back to the last complete one.
      fs.ftruncateSync(this.fd, active.size);
      active.index!.length = Math.ceil(active.count / INDEX_EVERY);
      throw err;
    }
    active.size = pos;
    active.count = n;
    this.remember(this.written, records);
    this.written = active.base + n;
    return this.written;
  }

  /** Adds records written from offset `first` to the in-memory tail, dropping its oldest past the bounds. */
  private remember(first: number, records: Omit<StoredRecord, 'offset'>[]): void {
    if (this.tail.length === this.tailFirst || this.tailBase + this.tail.length !== first) {
      this.tail = [];
      this.tailBase = first;
      this.tailFirst = 0;
      this.tailBytes = 0;
    }
    for (const r of records) {
      this.tail.push(r);
      this.tailBytes += r.key.length + r.value.length;
    }
    while (this.tail.length - this.tailFirst > 1 && (this.tail.length - this.tailFirst > TAIL_RECORDS || this.tailBytes > TAIL_BYTES)) {
      const r = this.tail[this.tailFirst]!;
      this.tail[this.tailFirst++] = undefined;
      this.tailBytes -= r.key.length + r.value.length;
    }
    if (this.tailFirst >= Math.max(1024, this.tail.length - this.tailFirst)) {
      this.tail = this.tail.slice(this.tailFirst);
      this.tailBase += this.tailFirst;
      this.tailFirst = 0;
    }
  }

  /**
   * Makes everything written so far durable, then readable. After a roll the directory is synced too, beside
   * the file, before anything in the new segment is: the new file's name is made durable with its records.
   */
  async sync(upTo: number): Promise<void> {
    if (this.fsync) {
      const dir = this.dirUnsynced;
      await Promise.all([fdatasync(this.fd), dir ? syncDirAsync(this.dir) : undefined]);
      if (dir) this.dirUnsynced = false;
    }
    if (upTo > this.end) this.end = upTo;
  }

  /**
   * Starts the next segment. Nothing is synced here, on the caller's thread: the segment rolled away from
   * holds only records a sync has covered already (write() is called once the previous sync has ended, and
   * rolls before it writes), and the new file's directory entry is synced by the next sync(), with the
   * first records written to it, on libuv's pool.
   */
  private roll(): Segment {
    const old = this.segments[this.segments.length - 1];
    const base = old.base + old.count;
    const seg: Segment = { base, file: path.join(this.dir, segmentName(base)), count: 0, size: 0, index: [] };
    const fd = fs.openSync(seg.file, 'a');
    fs.closeSync(this.fd);
    this.fd = fd;
    this.dirUnsynced = true;
    this.segments.push(seg);
    return seg;
  }

  /** Up to `max` durable records from `from` (within one segment), stopping past `maxBytes`. */
  async read(from: number, max: number, maxBytes: number): Promise<StoredRecord[]> {
    if (from < this.start) from = this.start;
    if (from >= this.tailBase + this.tailFirst && from < this.tailBase + this.tail.length) return this.readTail(from, max, maxBytes);
    const seg = this.segmentOf(from);
    const limit = Math.min(max, this.end - from, seg.base + seg.count - from);
    if (limit <= 0) return [];
    const index = seg.index ?? (seg.index = await buildIndex(seg.file));
    const slot = Math.floor((from - seg.base) / INDEX_EVERY);
    let skip = from - seg.base - slot * INDEX_EVERY;
    let pos = index[slot];
    const out: StoredRecord[] = [];
    let bytes = 0;
    const fh = await fs.promises.open(seg.file, 'r');
    try {
      let carry = Buffer.alloc(0);
      while (out.length < limit && bytes < maxBytes) {
        const chunk = Buffer.allocUnsafe(Math.max(READ_CHUNK, carry.length * 2));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        let lineStart = 0;
        for (let nl = buf.indexOf(NEWLINE); nl >= 0 && out.length < limit && bytes < maxBytes; nl = buf.indexOf(NEWLINE, lineStart)) {
          if (skip > 0) skip--;
          else {
            const offset = from + out.length;
            const [timestamp, key, value] = parseLine(buf.toString('utf8', lineStart, nl), seg.file, offset);
            out.push({ offset, timestamp, key, value });
            bytes += nl - lineStart;
          }
          lineStart = nl + 1;
        }
        carry = Buffer.from(buf.subarray(lineStart));
      }
    } finally {
      await fh.close();
    }
    return out;
  }

  /** read() of records still in the in-memory tail. */
  private readTail(from: number, max: number, maxBytes: number): StoredRecord[] {
    const limit = Math.min(max, this.end - from);
    const out: StoredRecord[] = [];
    let bytes = 0;
    for (let i = from - this.tailBase; out.length < limit && bytes < maxBytes && i < this.tail.length; i++) {
      const r = this.tail[i]!;
      out.push({ offset: this.tailBase + i, timestamp: r.timestamp, key: r.key, value: r.value });
      bytes += r.key.length + r.value.length;
    }
    return out;
  }

  private segmentOf(offset: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return this.segments[lo];
  }

  /**
   * Deletes sealed segments whose every record is below `offset`; returns how many. They are out of the log
   * at once; their files go on libuv's pool, one deletion after another (unlinking a 64 MB segment held the
   * event loop 14–16 ms here: the filesystem frees its blocks). A file a crash leaves behind is a segment
   * below the committed offsets at the next start, deleted again at the next commit.
   */
  deleteBefore(offset: number): number {
    const gone: string[] = [];
    while (this.segments.length > 1 && this.segments[1].base <= offset) gone.push(this.segments.shift()!.file);
    // After a failure none goes: the files left stay one run of segments, oldest first, which the next start
    // reads as the log's first segments.
    if (gone.length > 0) this.removals = this.removals.then(() => this.remove(gone));
    return gone.length;
  }

  private async remove(files: readonly string[]): Promise<void> {
    if (this.removalFailed) return;
    if (!(await removeFiles(files, this.dir, this.fsync))) this.removalFailed = true;
  }

  /** Resolves once the files of the segments deleted so far are gone (tests, and closing). */
  removed(): Promise<void> {
    return this.removals;
  }

  /** The segment files, oldest first (for tests and operators). */
  files(): string[] {
    return this.segments.map((s) => s.file);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

function parseLine(text: string, file: string, offset: number): [number, string, string] {
  try {
    const rec = JSON.parse(text) as unknown;
    if (Array.isArray(rec) && rec.length === 3 && typeof rec[0] === 'number' && typeof rec[1] === 'string' && typeof rec[2] === 'string') {
      return rec as [number, string, string];
    }
  } catch {
    // reported below
  }
  throw new Error(`event log record ${offset} in ${file} is corrupt`);
}

function isRecord(text: string): boolean {
  try {
    const rec = JSON.parse(text) as unknown;
    return Array.isArray(rec) && rec.length === 3;
  } catch {
    return false;
  }
}

/**
 * Counts and indexes the active segment, cutting off what a crash left after the last complete record:
 * bytes without a newline, and (should the file system have kept a garbled tail) lines that do not parse.
 */
function recoverTail(seg: Segment): void {
  const buf = fs.readFileSync(seg.file);
  let good = buf.lastIndexOf(NEWLINE) + 1;
  while (good > 0) {
    const prev = good >= 2 ? buf.lastIndexOf(NEWLINE, good - 2) + 1 : 0;
    if (isRecord(buf.toString('utf8', prev, good - 1))) break;
    good = prev;
  }
  if (good !== buf.length) fs.truncateSync(seg.file, good);
  const index: number[] = [];
  let count = 0;
  for (let pos = 0; pos < good; count++) {
    if (count % INDEX_EVERY === 0) index.push(pos);
    pos = buf.indexOf(NEWLINE, pos) + 1;
  }
  seg.count = count;
  seg.size = good;
  seg.index = index;
}

async function buildIndex(file: string): Promise<number[]> {
  const index: number[] = [];
  const fh = await fs.promises.open(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(1024 * 1024);
    let base = 0;
    let count = 0;
    let lineStart = 0;
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, base);
      if (bytesRead === 0) break;
      for (let nl = chunk.indexOf(NEWLINE); nl >= 0 && nl < bytesRead; nl = chunk.indexOf(NEWLINE, nl + 1)) {
        if (count % INDEX_EVERY === 0) index.push(lineStart);
        count++;
        lineStart = base + nl + 1;
      }
      base += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return index;
}
