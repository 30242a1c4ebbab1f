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
// CPU when the disk was otherwise idle, ~15 % less time under the bench's load (bench/HISTORY.md, round 8). The zeros are why a record may contain neither a
// newline nor a NUL: on opening, the log ends at the first NUL, and what follows the last newline before it
// (a record torn by a crash) is dropped. Whatever a crash leaves after a hole was never synced, so never
// acknowledged. close() cuts the zeros off.
//
// An owner shrinks the file to its live state with rewrite() (on the calling thread: small states) or
// rewriteInBackground() (the writes and syncs on libuv's pool while appends go on; see there).
import fs from 'node:fs';
import path from 'node:path';

/** How far ahead of the records the file is zero-filled, in one write at a time. */
const PREALLOCATE_BYTES = 1 << 20;
let zeros: Buffer | null = null;
const noop = () => {};

/**
 * Calls a waiter's `written`; when it throws (a bug in its owner), that append is rejected with the error
 * and the others of the commit go on: their records are written all the same. False when it threw.
 */
function told(w: { written: (() => void) | undefined; reject(err: Error): void }): boolean {
  try {
    w.written?.();
    return true;
  } catch (err) {
    w.reject(err instanceof Error ? err : new Error(String(err)));
    return false;
  }
}

/** Writes all of `data` at `position` (the file's position when null); returns its length. */
function writeAll(fd: number, data: Buffer, position: number | null = null): number {
  for (let at = 0; at < data.length; ) at += fs.writeSync(fd, data, at, data.length - at, position === null ? null : position + at);
  return data.length;
}

/**
 * How much of a background rewrite's snapshot is encoded in one turn: p50 0.08 ms, at most 0.4 ms of the
 * event loop here. The whole snapshot at once held it 104–139 ms for 100,000 queued messages of ~300 bytes
 * (bench/HISTORY.md, round 16).
 */
const REWRITE_SLICE_BYTES = 64 * 1024;

/** The next records of `records` as file contents, up to REWRITE_SLICE_BYTES (of UTF-16 units); null at the end. */
function nextSlice(records: Iterator<string>): { data: Buffer; count: number } | null {
  const batch: string[] = [];
  let length = 0;
  while (length < REWRITE_SLICE_BYTES) {
    const next = records.next();
    if (next.done) break;
    batch.push(next.value);
    length += next.value.length + 1;
  }
  if (batch.length === 0) return null;
  return { data: Buffer.from(batch.join('\n') + '\n'), count: batch.length };
}

/** Records as file contents, in slices (nextSlice). */
function encode(records: Iterable<string>): { chunks: Buffer[]; count: number; size: number } {
  const chunks: Buffer[] = [];
  const it = records[Symbol.iterator]();
  let count = 0;
  let size = 0;
  for (let slice = nextSlice(it); slice; slice = nextSlice(it)) {
    chunks.push(slice.data);
    count += slice.count;
    size += slice.data.length;
  }
  return { chunks, count, size };
}

/**
 * Hands the file's complete records to `replay`, in order, and cuts off what follows them. The records end
 * at the first NUL (the zeros ahead of them), and a record torn by a crash has no newline yet: it was never
 * acknowledged, so it is dropped, and so are the zeros. Returns the records and the bytes they take.
 */
function readRecords(file: string, replay: (record: string) => void, readBytes: number): { count: number; size: number } {
  if (!Number.isInteger(readBytes) || readBytes < 1) throw new Error(`append log ${file}: read ${readBytes} bytes at a time?`);
  const fd = fs.openSync(file, 'r');
  let count = 0;
  /** The end of the last complete record. */
  let size = 0;
  try {
    // (A small file, an offsets log say, needs no 16 MB buffer.)
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(readBytes, fs.fstatSync(fd).size)));
    /** A record begun in an earlier slice. */
    let carry: Buffer | null = null;
    for (let at = 0; ; ) {
      const n = fs.readSync(fd, buf, 0, buf.length, at);
      if (n === 0) break;
      const zero = buf.subarray(0, n).indexOf(0);
      const limit = zero < 0 ? n : zero;
      // (A negative offset would search from the end: a slice that starts with a NUL has no newline here.)
      const newline = limit === 0 ? -1 : buf.lastIndexOf(0x0a, limit - 1);
      if (newline >= 0) {
        const whole: Buffer = carry ? Buffer.concat([carry, buf.subarray(0, newline)]) : buf.subarray(0, newline);
        for (const line of whole.toString('utf8').split('\n')) {
          if (line.length > 0) {
            replay(line);
            count++;
          }
        }
        size = at + newline + 1;
        carry = null;
      }
      // What follows the last newline waits for the next slice (a copy: buf is read into again).
      const rest = buf.subarray(newline + 1, limit);
      if (rest.length > 0) carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
      at += n;
      if (zero >= 0) break;
    }
    if (size !== fs.fstatSync(fd).size) fs.truncateSync(file, size);
  } finally {
    fs.closeSync(fd);
  }
  return { count, size };
}

/** Makes a directory's entries durable (a file created, renamed or removed in it). */
export function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function syncDir(dir: string, done: (err: Error | null) => void): void {
  fs.open(dir, 'r', (err, fd) => {
    if (err) return done(err);
    fs.fsync(fd, (syncErr) => fs.close(fd, () => done(syncErr)));
  });
}

/** syncDirSync on libuv's pool. */
export function syncDirAsync(dir: string): Promise<void> {
  return new Promise((resolve, reject) => syncDir(dir, (err) => (err ? reject(err) : resolve())));
}

/**
 * Closes a replaced file's descriptor on libuv's pool: the file was renamed over, so this last close frees
 * its blocks, ~7.5 ms for 32 MB on this project's disk (more under load), which the event loop need not wait for.
 */
function closeInBackground(fd: number): void {
  fs.close(fd, () => undefined);
}

const call = <T>(fn: (cb: (err: Error | null, value: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

/** A rewriteInBackground() under way. */
interface Rewrite {
  /** What was written to the file since the snapshot, in order: the new file gets it after the snapshot. */
  tail: Buffer[];
  tailRecords: number;
  /** Durable appends written since the snapshot: they wait for the new file's sync instead of the old one's. */
  held: Waiter[];
  /** Set by close(): the rewrite stops at its next step and the file stays as it is. */
  aborted: boolean;
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
  private rewriting: Rewrite | null = null;
  /**
   * Renames of a new file into place (rewrites), and how many of them a directory sync has made durable:
   * while one is not, every sync syncs the directory too before it answers anyone.
   */
  private renames = 0;
  private renamesSynced = 0;
  /** Records in the file, live or dead; the owner compacts when most are dead. */
  records = 0;
  /** Bytes of records in the file (what a compaction would shrink). */
  get bytes(): number {
    return this.end;
  }

  /**
   * Told how long each group commit's fdatasync took, in seconds (the owner's latency metric): from its hand-off
   * to libuv's pool until its callback runs on the event loop, so a busy event loop lengthens it too (a 70 ms
   * stall of the loop read as a 73 ms fsync; bench/HISTORY.md, round 29).
   */
  onSync: ((seconds: number) => void) | null = null;

  private constructor(
    readonly file: string,
    readonly fsync: boolean,
    size: number,
  ) {
    this.fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.end = this.allocated = size;
  }

  /**
   * Opens (creating) the file and hands every complete record to `replay`, in order. The file is read
   * `readBytes` at a time: a journal is as big as what users have queued, and V8 cannot make a string of
   * more than ~512 MB (read whole, a journal past that could not be opened again).
   */
  static open(file: string, fsync: boolean, replay: (record: string) => void, readBytes = 16 << 20): AppendLog {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const { count, size } = fs.existsSync(file) ? readRecords(file, replay, readBytes) : { count: 0, size: 0 };
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

  /** Writes what this turn appended, and syncs it after any sync in flight; false when the write failed. */
  private readonly commit = (): boolean => {
    this.scheduled = false;
    if (this.closed) return false;
    const waiters = this.write();
    if (!waiters) return false;
    for (const w of waiters) {
      if (!told(w)) continue;
      if (this.fsync && w.durable) (this.rewriting?.held ?? this.unsynced).push(w);
      else w.resolve();
    }
    this.sync();
    return true;
  };

  /** Starts an fdatasync for everything written and not yet synced, unless one is in flight (its end starts the next). */
  private sync(): void {
    if (this.syncing || this.unsynced.length === 0) return;
    const batch = this.unsynced;
    this.unsynced = [];
    this.syncing = true;
    const renames = this.renames;
    const renamed = renames > this.renamesSynced;
    const started = process.hrtime.bigint();
    const done = (err: Error | null) => {
      this.syncing = false;
      if (!err) {
        this.onSync?.(Number(process.hrtime.bigint() - started) / 1e9);
        if (renamed) this.renamesSynced = Math.max(this.renamesSynced, renames);
      }
      for (const fd of this.retired.splice(0)) closeInBackground(fd);
      for (const w of batch) (err ? w.reject(err) : w.resolve());
      if (!this.closed) this.sync();
    };
    fs.fdatasync(this.fd, (err) => (err || !renamed ? done(err) : syncDir(path.dirname(this.file), done)));
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
      if (this.rewriting) {
        this.rewriting.tail.push(data);
        this.rewriting.tailRecords += records.length;
      }
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
    const written = (wrote ?? []).filter(told);
    const waiters = this.unsynced.concat(written);
    this.unsynced = [];
    try {
      if (this.fsync && (always || waiters.some((w) => w.durable))) {
        fs.fdatasyncSync(this.fd);
        // A rename not yet synced (a sync of it may be in flight) is made durable before anyone is answered.
        if (this.renames > this.renamesSynced) {
          syncDirSync(path.dirname(this.file));
          this.renamesSynced = this.renames;
        }
      }
      for (const w of waiters) w.resolve();
      return wrote !== null;
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
      return false;
    }
  }

  /**
   * Replaces the file with `records` (the live state), atomically, on the calling thread: temp file, fsync,
   * rename, fsync of the directory. For small states (the event log's offsets).
   */
  rewrite(records: Iterable<string>): void {
    if (this.closed) throw new Error(`append log ${this.file} is closed`);
    if (this.rewriting) throw new Error(`append log ${this.file}: a rewrite is under way`);
    this.commitNow();
    const tmp = `${this.file}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    let encoded: ReturnType<typeof encode>;
    try {
      encoded = encode(records);
      for (const chunk of encoded.chunks) writeAll(fd, chunk);
      fs.fsyncSync(fd);
      fs.renameSync(tmp, this.file);
    } catch (err) {
      // The log stays as it was; the temp file goes.
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    // The new file is the log from the rename on, even should the directory's sync fail (the next sync
    // tries it again, before it answers anyone).
    this.replaceFd(fd, encoded.size, encoded.count);
    if (!this.fsync) return;
    this.renames++;
    syncDirSync(path.dirname(this.file));
    this.renamesSynced = this.renames;
  }

  /**
   * Replaces the file with the live state `snapshot()` yields, while appends go on: the event loop is held
   * only for a turn at a time (bench/HISTORY.md, rounds 14 and 16).
   *
   * `snapshot()` is called once everything appended so far is written, so it is the state of exactly the
   * records in the file. What it returns is read afterwards, a slice at a time (REWRITE_SLICE_BYTES), each
   * encoded in a turn of its own between the writes: it must yield the records as they were when it was
   * called, whatever the owner does meanwhile (copy what changes in place; strings stay as they are).
   * Written to a temp file and synced on libuv's pool; meanwhile appends are written to the file as always,
   * and also kept (the tail). Then, in one turn: the tail goes after the snapshot, the temp file takes the
   * file's name, and appends go to it. Appends that wait for the disk and were written since the snapshot
   * are answered after the new file's sync, which also syncs the directory (the rename): until then a crash
   * leaves the old file with everything, after it the new one. Rejects, and leaves the file as it was, when
   * reading the snapshot, a write or a sync of the temp file fails, or the log is closed meanwhile.
   * Resolves to the longest the rewrite held the event loop at once, in seconds: taking the snapshot, one
   * slice, or the swap.
   */
  async rewriteInBackground(snapshot: () => Iterable<string>): Promise<number> {
    if (this.closed) throw new Error(`append log ${this.file} is closed`);
    if (this.rewriting) throw new Error(`append log ${this.file}: a rewrite is under way`);
    let started = process.hrtime.bigint();
    // The snapshot is of what is written: after a refused write, the owner's state may still show what the
    // write carried (a claim is let go when its promise settles), so no snapshot is taken then.
    if (!this.commit()) throw new Error(`append log ${this.file}: a write failed just before the rewrite; it is tried again later`);
    const r: Rewrite = { tail: [], tailRecords: 0, held: [], aborted: false };
    const records = snapshot()[Symbol.iterator]();
    this.rewriting = r;
    let longest = process.hrtime.bigint() - started;
    const tmp = `${this.file}.tmp`;
    let fd: number | null = null;
    const step = () => {
      if (r.aborted) throw new Error(`append log ${this.file} was closed during its rewrite`);
    };
    let size = 0;
    let count = 0;
    try {
      fd = await call<number>((cb) => fs.open(tmp, 'w', cb));
      step();
      for (;;) {
        started = process.hrtime.bigint();
        const slice = nextSlice(records);
        const took = process.hrtime.bigint() - started;
        if (took > longest) longest = took;
        if (!slice) break;
        for (let done = 0; done < slice.data.length; ) {
          const wrote = await call<number>((cb) => fs.write(fd as number, slice.data, done, slice.data.length - done, size + done, cb));
          done += wrote;
        }
        size += slice.data.length;
        count += slice.count;
        step();
      }
      if (this.fsync) await call<void>((cb) => fs.fsync(fd as number, (err) => cb(err, undefined)));
      step();
      // The swap, in this one turn.
      started = process.hrtime.bigint();
      for (const data of r.tail) size += writeAll(fd, data, size);
      fs.renameSync(tmp, this.file);
    } catch (err) {
      this.endRewrite(r);
      try {
        records.return?.();
      } catch {
        // the owner's cleanup failed: the rewrite's own error is the one to report
      }
      // The temp file goes, if this rewrite made it (what stood in its way stays, and so does its error).
      if (fd !== null) {
        try {
          fs.closeSync(fd);
          fs.rmSync(tmp, { force: true });
        } catch {
          // left for the next rewrite, which truncates it
        }
      }
      throw err;
    }
    // Records appended and not written yet go to the new file: they count there.
    this.replaceFd(fd, size, count + r.tailRecords + this.pending.length);
    // Those appends, and every durable one from now on, wait for a sync of the new file and its directory.
    if (this.fsync) this.renames++;
    this.endRewrite(r);
    const swap = process.hrtime.bigint() - started;
    return Number(swap > longest ? swap : longest) / 1e9;
  }

  /** Back to appending alone: the held appends wait for the next sync (of whichever file is the log now). */
  private endRewrite(r: Rewrite): void {
    if (this.rewriting === r) this.rewriting = null;
    for (const w of r.held.splice(0)) this.unsynced.push(w);
    if (!this.closed) this.sync();
  }

  /** Appends go to `fd` (the file, renamed into place, holding `size` bytes of `count` records) from now on. */
  private replaceFd(fd: number, size: number, count: number): void {
    // A sync in flight still uses the old descriptor: it is closed when that sync ends.
    if (this.syncing) this.retired.push(this.fd);
    else closeInBackground(this.fd);
    this.fd = fd;
    this.end = this.allocated = size;
    this.records = count;
  }

  close(): void {
    if (this.closed) return;
    if (this.rewriting) {
      // The rewrite stops at its next step; what it held waits for this last sync of the file as it is.
      this.rewriting.aborted = true;
      const r = this.rewriting;
      this.rewriting = null;
      for (const w of r.held.splice(0)) this.unsynced.push(w);
    }
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
