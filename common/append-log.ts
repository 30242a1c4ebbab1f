// An append-only file of text records with group commit. Records appended while the previous commit is on
// its way to disk are written together with one write() and made durable with one fdatasync() before any of
// their promises resolve. The write goes to the page cache on the main thread (so records stay in append
// order); the fdatasync runs on libuv's thread pool, so the event loop keeps serving while the disk works,
// and the busier the log, the more records share one sync. Used by the embedded adapters, whose promise is
// the same as Redis with appendfsync always.
//
// The file is kept zero-filled a little ahead of its records, and records overwrite the zeros. An
// fdatasync() of blocks that were allocated and written before has no file size or block map to update,
// so it skips the filesystem's journal commit: on this project's ext4 disk a sync took a third less time and
// CPU when the disk was otherwise idle, ~15 % less time under the bench's load (BENCHMARKS.md, round 8). The zeros are why a record may contain neither a
// newline nor a NUL: on opening, the log ends at the first NUL, and what follows the last newline before it
// (a record torn by a crash) is dropped. Whatever a crash leaves after a hole was never synced, so never
// acknowledged. close() cuts the zeros off.
import fs from 'node:fs';
import path from 'node:path';

/** How far ahead of the records the file is zero-filled, in one write at a time. */
const PREALLOCATE_BYTES = 1 << 20;
let zeros: Buffer | null = null;

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  durable: boolean;
}

export class AppendLog {
  private fd: number;
  /** Where the next record goes: the end of the last record written. */
  private end: number;
  /** The file's size: from `end` to here it holds zeros. */
  private allocated: number;
  private pending: string[] = [];
  private waiters: Waiter[] = [];
  private scheduled = false;
  /** A commit whose fdatasync is in flight: the next one waits for it, and so does closing its fd. */
  private syncing = false;
  /** Descriptors replaced by rewrite() while a sync on them was in flight: closed when it ends. */
  private retired: number[] = [];
  private closed = false;
  /** Records in the file, live or dead; the owner compacts when most are dead. */
  records = 0;
  /** Told how long each group commit's fdatasync took, in seconds (the owner's latency metric). */
  onSync: ((seconds: number) => void) | null = null;

  private constructor(
    readonly file: string,
    private readonly fsync: boolean,
    size: number,
  ) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.end = this.allocated = size;
  }

  /** Opens (creating) the file and hands every complete record to `replay`, in order. */
  static open(file: string, fsync: boolean, replay: (record: string) => void): AppendLog {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    let count = 0;
    let size = 0;
    if (fs.existsSync(file)) {
      const bytes = fs.readFileSync(file);
      // The records end at the first NUL (the zeros ahead of them), and a record torn by a crash has no
      // newline yet: it was never acknowledged, so it is dropped, and so are the zeros.
      const zero = bytes.indexOf(0);
      const limit = zero < 0 ? bytes.length : zero;
      // (A negative offset would search from the end: a file that starts with a NUL has no records.)
      size = limit === 0 ? 0 : bytes.lastIndexOf(0x0a, limit - 1) + 1;
      if (size > 0) {
        for (const line of bytes.toString('utf8', 0, size - 1).split('\n')) {
          if (line.length > 0) {
            replay(line);
            count++;
          }
        }
      }
      if (size !== bytes.length) fs.truncateSync(file, size);
    }
    const log = new AppendLog(file, fsync, size);
    log.records = count;
    return log;
  }

  /**
   * Appends records (no newlines inside); resolves once they are on disk. With `durable` false it resolves
   * once they are written (in append order, in the page cache): they reach the disk with the next durable
   * commit, at close, or when the kernel writes back. For records whose loss in a crash only repeats work
   * (a queue removal: the message is delivered again; a consumed offset: the batch is handled again).
   */
  append(records: readonly string[], durable = true): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`append log ${this.file} is closed`));
    if (records.length === 0) return Promise.resolve();
    for (const r of records) {
      // Either would cut the log short on the next start (see the top of this file).
      if (r.includes('\n') || r.includes('\0')) return Promise.reject(new Error(`a record of append log ${this.file} contains a newline or NUL`));
    }
    for (const r of records) this.pending.push(r);
    this.records += records.length;
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject, durable });
      if (!this.scheduled && !this.syncing) {
        this.scheduled = true;
        // Let the rest of this turn's records join the commit.
        setImmediate(() => {
          this.scheduled = false;
          this.commit();
        });
      }
    });
  }

  /** Writes what is pending and starts its fdatasync; the next commit starts when this one ends. */
  private commit(): void {
    if (this.syncing || this.pending.length === 0) return;
    const waiters = this.write();
    if (!waiters) return;
    if (!this.fsync || !waiters.some((w) => w.durable)) {
      for (const w of waiters) w.resolve();
      return;
    }
    this.syncing = true;
    const started = process.hrtime.bigint();
    fs.fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (!err) this.onSync?.(Number(process.hrtime.bigint() - started) / 1e9);
      for (const fd of this.retired.splice(0)) fs.closeSync(fd);
      for (const w of waiters) (err ? w.reject(err) : w.resolve());
      if (this.closed) return;
      this.commit();
    });
  }

  /** Writes the pending records to the page cache; answers their waiters, or null when the write failed. */
  private write(): Waiter[] | null {
    const records = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      const data = Buffer.from(records.join('\n') + '\n');
      this.preallocate(data.length);
      const written = fs.writeSync(this.fd, data, 0, data.length, this.end);
      // A short write would leave a gap the next write could not fill in order.
      if (written !== data.length) throw new Error(`append log ${this.file}: wrote ${written} of ${data.length} bytes`);
      this.end += data.length;
      return waiters;
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
      return null;
    }
  }

  /** Zero-fills the file ahead of `end` when `bytes` more would not fit; its fdatasync goes with the next commit. */
  private preallocate(bytes: number): void {
    if (this.end + bytes <= this.allocated) return;
    const target = this.end + bytes + PREALLOCATE_BYTES;
    zeros ??= Buffer.alloc(PREALLOCATE_BYTES);
    while (this.allocated < target) {
      const n = Math.min(zeros.length, target - this.allocated);
      this.allocated += fs.writeSync(this.fd, zeros, 0, n, this.allocated);
    }
  }

  /**
   * Writes and syncs what is pending on the calling thread (for rewrite and close); `always` syncs even
   * when nothing durable is pending, so records appended without waiting reach the disk too.
   */
  private commitNow(always = false): void {
    const waiters = this.pending.length > 0 ? this.write() : [];
    if (!waiters) return;
    try {
      if (this.fsync && (always || waiters.some((w) => w.durable))) fs.fdatasyncSync(this.fd);
      for (const w of waiters) w.resolve();
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
    }
  }

  /** Replaces the file with `records` (the live state), atomically: temp file, fsync, rename, fsync dir. */
  rewrite(records: Iterable<string>): void {
    this.commitNow();
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    let count = 0;
    let size = 0;
    let chunk: string[] = [];
    for (const r of records) {
      chunk.push(r);
      count++;
      if (chunk.length >= 4096) {
        size += fs.writeSync(fd, chunk.join('\n') + '\n');
        chunk = [];
      }
    }
    if (chunk.length > 0) size += fs.writeSync(fd, chunk.join('\n') + '\n');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    fs.fsyncSync(dir);
    fs.closeSync(dir);
    if (this.syncing) this.retired.push(this.fd);
    else fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'r+');
    this.end = this.allocated = size;
    this.records = count;
  }

  close(): void {
    if (this.closed) return;
    // What was appended without waiting for the disk gets there now, with the rest.
    this.commitNow(true);
    this.closed = true;
    // A closed log is its records alone. Should the cut not happen, the next open ends at the zeros anyway.
    try {
      fs.ftruncateSync(this.fd, this.end);
    } catch {
      // the zeros stay
    }
    // A sync in flight still uses the descriptor: it is closed when that sync ends.
    if (this.syncing) this.retired.push(this.fd);
    else fs.closeSync(this.fd);
  }
}
