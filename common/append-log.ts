// An append-only file of text records with group commit. Records appended in one turn of the event loop are
// written together with one write() at the end of that turn, to the page cache on the main thread (so they
// stay in append order): from then on they survive the death of this process, and an append can be told so
// (`written`). Everything written is then made durable by one fdatasync() on libuv's thread pool, so the event
// loop keeps serving while the disk works; records written while a sync is in flight wait for the next one,
// and the busier the log, the more records share one sync. Used by the embedded adapters, whose promise is
// the same as Redis with appendfsync always: an append resolves once its records are on disk.
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
const noop = () => {};

/** Writes all of `data` at the file's position; returns its length. */
function writeAll(fd: number, data: Buffer): number {
  for (let at = 0; at < data.length; ) at += fs.writeSync(fd, data, at, data.length - at);
  return data.length;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  durable: boolean;
  /** Told once the records are written (before `resolve` when they wait for the disk). */
  written: (() => void) | undefined;
}

export class AppendLog {
  private fd: number;
  /** Where the next record goes: the end of the last record written. */
  private end: number;
  /** The file's size: from `end` to here it holds zeros. */
  private allocated: number;
  private pending: string[] = [];
  /** Appends whose records are not written yet. */
  private waiters: Waiter[] = [];
  /** Appends written and waiting for an fdatasync: the next sync takes them all. */
  private unsynced: Waiter[] = [];
  private scheduled = false;
  /** A commit whose fdatasync is in flight: the next one waits for it, and so does closing its fd. */
  private syncing = false;
  /** Descriptors replaced by rewrite() while a sync on them was in flight: closed when it ends. */
  private retired: number[] = [];
  private closed = false;
  /** Records in the file, live or dead; the owner compacts when most are dead. */
  records = 0;
  /** Bytes of records in the file (what a compaction would shrink). */
  get bytes(): number {
    return this.end;
  }

  /** Told how long each group commit's fdatasync took, in seconds (the owner's latency metric). */
  onSync: ((seconds: number) => void) | null = null;

  private constructor(
    readonly file: string,
    readonly fsync: boolean,
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
   * Appends records (no newlines inside); resolves once they are on disk, and calls `written` before that,
   * once they are in the page cache (they then survive the death of this process, not the machine's). With
   * `durable` false it resolves once they are written: they reach the disk with the next durable commit, at
   * close, or when the kernel writes back. For records whose loss in a crash only repeats work (a queue
   * removal: the message is delivered again; a consumed offset: the batch is handled again).
   */
  append(records: readonly string[], durable = true, written?: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`append log ${this.file} is closed`));
    for (const r of records) {
      // Either would cut the log short on the next start (see the top of this file).
      if (r.includes('\n') || r.includes('\0')) return Promise.reject(new Error(`a record of append log ${this.file} contains a newline or NUL`));
    }
    if (records.length === 0 && !written) return Promise.resolve();
    for (const r of records) this.pending.push(r);
    this.records += records.length;
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject, durable, written });
      if (!this.scheduled) {
        this.scheduled = true;
        // Let the rest of this turn's records join the write.
        setImmediate(this.commit);
      }
    });
  }

  /**
   * Resolves once everything appended so far is on disk: what an answer waits for when it rests on records
   * some other append wrote (a resend acked under the first message's claim).
   */
  synced(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return this.append([], true, noop);
  }

  /** Writes what this turn appended, and syncs it after any sync in flight. */
  private readonly commit = (): void => {
    this.scheduled = false;
    if (this.closed) return;
    const waiters = this.write();
    if (!waiters) return;
    for (const w of waiters) {
      w.written?.();
      if (this.fsync && w.durable) this.unsynced.push(w);
      else w.resolve();
    }
    this.sync();
  };

  /** Starts an fdatasync for everything written and not yet synced, unless one is in flight (its end starts the next). */
  private sync(): void {
    if (this.syncing || this.unsynced.length === 0) return;
    const batch = this.unsynced;
    this.unsynced = [];
    this.syncing = true;
    const started = process.hrtime.bigint();
    fs.fdatasync(this.fd, (err) => {
      this.syncing = false;
      if (!err) this.onSync?.(Number(process.hrtime.bigint() - started) / 1e9);
      for (const fd of this.retired.splice(0)) fs.closeSync(fd);
      for (const w of batch) (err ? w.reject(err) : w.resolve());
      if (!this.closed) this.sync();
    });
  }

  /** Writes the pending records to the page cache; answers their waiters, or null when the write failed. */
  private write(): Waiter[] | null {
    const records = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (records.length === 0) return waiters;
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
   * Writes and syncs what is pending on the calling thread, with what was written and not yet synced (for
   * rewrite and close); `always` syncs even when nothing durable is waiting, so records appended without
   * waiting reach the disk too.
   */
  private commitNow(always = false): boolean {
    const wrote = this.write();
    const written = wrote ?? [];
    for (const w of written) w.written?.();
    const waiters = this.unsynced.concat(written);
    this.unsynced = [];
    try {
      if (this.fsync && (always || waiters.some((w) => w.durable))) fs.fdatasyncSync(this.fd);
      for (const w of waiters) w.resolve();
      return wrote !== null;
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
      return false;
    }
  }

  /** Writes what is pending and syncs everything written, on the calling thread; false when either failed. */
  syncNow(): boolean {
    if (this.closed) return false;
    return this.commitNow(true);
  }

  /** Replaces the file with `records` (the live state), atomically: temp file, fsync, rename, fsync dir. */
  rewrite(records: Iterable<string>): void {
    this.commitNow();
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    let count = 0;
    let size = 0;
    let chunk: string[] = [];
    const flush = () => {
      if (chunk.length > 0) size += writeAll(fd, Buffer.from(chunk.join('\n') + '\n'));
      chunk = [];
    };
    try {
      for (const r of records) {
        chunk.push(r);
        count++;
        if (chunk.length >= 4096) flush();
      }
      flush();
      fs.fsyncSync(fd);
    } catch (err) {
      // The log stays as it was; the temp file goes.
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
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
