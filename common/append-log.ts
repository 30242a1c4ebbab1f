// An append-only file of text records with group commit. Records appended while the previous commit is on
// its way to disk are written together with one write() and made durable with one fdatasync() before any of
// their promises resolve. The write goes to the page cache on the main thread (so records stay in append
// order); the fdatasync runs on libuv's thread pool, so the event loop keeps serving while the disk works,
// and the busier the log, the more records share one sync. Used by the embedded adapters, whose promise is
// the same as Redis with appendfsync always.
import fs from 'node:fs';
import path from 'node:path';

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  durable: boolean;
}

export class AppendLog {
  private fd: number;
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
  ) {
    this.fd = fs.openSync(file, 'a');
  }

  /** Opens (creating) the file and hands every complete record to `replay`, in order. */
  static open(file: string, fsync: boolean, replay: (record: string) => void): AppendLog {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    let count = 0;
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, 'utf8');
      // A record torn by a crash has no newline yet: it was never acknowledged, so it is dropped.
      const end = text.lastIndexOf('\n');
      if (end >= 0) {
        for (const line of text.slice(0, end).split('\n')) {
          if (line.length > 0) {
            replay(line);
            count++;
          }
        }
      }
      if (end + 1 !== Buffer.byteLength(text)) fs.truncateSync(file, Buffer.byteLength(text.slice(0, end + 1)));
    }
    const log = new AppendLog(file, fsync);
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
      fs.writeSync(this.fd, records.join('\n') + '\n');
      return waiters;
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
      return null;
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
    let chunk: string[] = [];
    for (const r of records) {
      chunk.push(r);
      count++;
      if (chunk.length >= 4096) {
        fs.writeSync(fd, chunk.join('\n') + '\n');
        chunk = [];
      }
    }
    if (chunk.length > 0) fs.writeSync(fd, chunk.join('\n') + '\n');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, this.file);
    const dir = fs.openSync(path.dirname(this.file), 'r');
    fs.fsyncSync(dir);
    fs.closeSync(dir);
    if (this.syncing) this.retired.push(this.fd);
    else fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
    this.records = count;
  }

  close(): void {
    if (this.closed) return;
    // What was appended without waiting for the disk gets there now, with the rest.
    this.commitNow(true);
    this.closed = true;
    // A sync in flight still uses the descriptor: it is closed when that sync ends.
    if (this.syncing) this.retired.push(this.fd);
    else fs.closeSync(this.fd);
  }
}
