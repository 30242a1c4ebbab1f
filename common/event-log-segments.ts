// One partition of the embedded event log: segment files named by their first offset (20 digits, as Kafka
// names them), each a run of JSON lines `[timestamp, key, value]`; the newest segment takes the appends and
// is rolled past a size. Offsets are record numbers. A record becomes readable when the fsync that covers
// it returns (`end`), never earlier. Reads hand out records packed: their lines as written, one byte array,
// which crosses to the consumer thread as it is and is parsed there (unpackRecords).
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { syncDirAsync, syncDirSync } from './append-log.ts';

/** Records `first`..`first + count - 1` of a partition as their log lines, each ending in a newline. */
export interface PackedRecords {
  partition: number;
  first: number;
  count: number;
  bytes: Uint8Array;
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
/**
 * The newest records of a partition are also kept in memory, so consumers that keep up never read the files:
 * at most this many, as the bytes written, in one ring allocated once (no object a record on the JS heap).
 */
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
  /**
   * The in-memory tail: the lines of records tailFrom..written-1, as written, in `ring` (byte position p of
   * the partition's writes since open is at p mod TAIL_BYTES). Record o starts at tailStarts[o mod
   * TAIL_RECORDS]; the last one ends at tailEnd. Kept as bytes outside the JS heap: as strings they were
   * most of what the broker thread's GC copied and promoted.
   */
  private ring: Buffer | null = null;
  private readonly tailStarts = new Float64Array(TAIL_RECORDS);
  private tailFrom = 0;
  private tailEnd = 0;
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
    this.written = this.end = this.tailFrom = active.base + active.count;
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
    this.pending = [];
    const data = Buffer.from(lines.join('\n') + '\n');
    const first = this.written;
    // The tail's slots of the records written now: filled before the write, so a failed one empties the tail.
    const tailed = data.length <= TAIL_BYTES && lines.length <= TAIL_RECORDS;
    let pos = active.size;
    let n = active.count;
    for (let i = 0; i < lines.length; i++) {
      if (n % INDEX_EVERY === 0) active.index!.push(pos);
      if (tailed) this.tailStarts[(first + i) % TAIL_RECORDS] = this.tailEnd + (pos - active.size);
      pos += Buffer.byteLength(lines[i]) + 1;
      n++;
    }
    try {
      const wrote = fs.writeSync(this.fd, data);
      if (wrote !== data.length) throw new Error(`event log ${this.dir}: wrote ${wrote} of ${data.length} bytes`);
    } catch (err) {
      // Leave no partial record in the middle of the file: cut back to the last complete one.
      fs.ftruncateSync(this.fd, active.size);
      active.index!.length = Math.ceil(active.count / INDEX_EVERY);
      this.tailFrom = this.written;
      throw err;
    }
    active.size = pos;
    active.count = n;
    this.written = active.base + n;
    this.remember(first, data, tailed);
    return this.written;
  }

  /** Adds the records just written from offset `first` (their lines: `data`) to the tail, dropping its oldest past the bounds. */
  private remember(first: number, data: Buffer, tailed: boolean): void {
    if (!tailed) {
      this.tailFrom = this.written;
      return;
    }
    const ring = (this.ring ??= Buffer.allocUnsafeSlow(TAIL_BYTES));
    const at = this.tailEnd % TAIL_BYTES;
    const head = Math.min(data.length, TAIL_BYTES - at);
    data.copy(ring, at, 0, head);
    if (head < data.length) data.copy(ring, 0, head);
    this.tailEnd += data.length;
    while (this.tailFrom < first && (this.written - this.tailFrom > TAIL_RECORDS || this.tailEnd - this.tailStarts[this.tailFrom % TAIL_RECORDS] > TAIL_BYTES)) this.tailFrom++;
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

  /**
   * Up to `max` durable records from `from` (within one segment), stopping past `maxBytes`, as the lines
   * written, unparsed (unpackRecords): from the in-memory tail when it still has `from`, else from the
   * segment file. `partition` is only carried along, for the one who unpacks them.
   */
  async readPacked(partition: number, from: number, max: number, maxBytes: number): Promise<PackedRecords> {
    if (from < this.start) from = this.start;
    if (from >= this.tailFrom && from < this.written) return this.readTail(partition, from, max, maxBytes);
    const seg = this.segmentOf(from);
    const limit = Math.min(max, this.end - from, seg.base + seg.count - from);
    if (limit <= 0) return { partition, first: from, count: 0, bytes: new Uint8Array(0) };
    const index = seg.index ?? (seg.index = await buildIndex(seg.file));
    const slot = Math.floor((from - seg.base) / INDEX_EVERY);
    let skip = from - seg.base - slot * INDEX_EVERY;
    let pos = index[slot];
    const parts: Buffer[] = [];
    let count = 0;
    let bytes = 0;
    const fh = await fs.promises.open(seg.file, 'r');
    try {
      let carry = Buffer.alloc(0);
      while (count < limit && bytes < maxBytes) {
        const chunk = Buffer.allocUnsafe(Math.max(READ_CHUNK, carry.length * 2));
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, pos);
        if (bytesRead === 0) break;
        pos += bytesRead;
        const buf = carry.length > 0 ? Buffer.concat([carry, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
        let lineStart = 0;
        let taken = -1;
        for (let nl = buf.indexOf(NEWLINE); nl >= 0 && count < limit && bytes < maxBytes; nl = buf.indexOf(NEWLINE, lineStart)) {
          if (skip > 0) skip--;
          else {
            if (taken < 0) taken = lineStart;
            count++;
            bytes += nl + 1 - lineStart;
          }
          lineStart = nl + 1;
        }
        if (taken >= 0) parts.push(buf.subarray(taken, lineStart));
        carry = Buffer.from(buf.subarray(lineStart));
      }
    } finally {
      await fh.close();
    }
    // A file shorter than its index says: what was read is handed out, and the rest is asked for again.
    return { partition, first: from, count, bytes: exactCopy(parts, bytes) };
  }

  /** readPacked() of records still in the in-memory tail. */
  private readTail(partition: number, from: number, max: number, maxBytes: number): PackedRecords {
    const limit = Math.min(max, this.end - from);
    if (limit <= 0) return { partition, first: from, count: 0, bytes: new Uint8Array(0) };
    const start = this.tailStarts[from % TAIL_RECORDS];
    let count = 0;
    let end = start;
    while (count < limit && end - start < maxBytes) {
      count++;
      end = from + count < this.written ? this.tailStarts[(from + count) % TAIL_RECORDS] : this.tailEnd;
    }
    const ring = this.ring!;
    const out = new Uint8Array(end - start);
    const at = start % TAIL_BYTES;
    const head = Math.min(out.length, TAIL_BYTES - at);
    out.set(ring.subarray(at, at + head));
    if (head < out.length) out.set(ring.subarray(0, out.length - head), head);
    return { partition, first: from, count, bytes: out };
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

/** `parts` in one array of its own (not a slice of a pooled buffer: what crosses to a thread is all of its buffer). */
function exactCopy(parts: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Parses packed records (PartitionLog.readPacked) on whichever thread they reached, giving each to `each`;
 * throws, naming the offset and `where`, at a line that is not a record or when the count does not match.
 */
export function unpackRecords(packed: PackedRecords, where: string, each: (offset: number, timestamp: number, key: string, value: string) => void): void {
  const { first, count } = packed;
  // A view of the same memory (a structured clone arrives as a plain Uint8Array), for Buffer's UTF-8 decoding.
  const bytes = Buffer.from(packed.bytes.buffer, packed.bytes.byteOffset, packed.bytes.byteLength);
  let lineStart = 0;
  let n = 0;
  for (let nl = bytes.indexOf(NEWLINE); nl >= 0; nl = bytes.indexOf(NEWLINE, lineStart)) {
    if (n === count) break;
    const [timestamp, key, value] = parseLine(bytes.toString('utf8', lineStart, nl), where, first + n);
    each(first + n, timestamp, key, value);
    n++;
    lineStart = nl + 1;
  }
  if (n !== count || lineStart !== bytes.length) throw new Error(`event log records ${first}..${first + count - 1} in ${where} came packed as ${n} whole lines and ${bytes.length - lineStart} bytes more`);
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
