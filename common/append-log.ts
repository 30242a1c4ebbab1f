// An append-only file of text records with group commit: records appended in the same turn of the event
// loop are written with one write() and made durable with one fdatasync() before any of their promises
// resolve. Used by the embedded adapters, whose promise is the same as Redis with appendfsync always.
import fs from 'node:fs';
import path from 'node:path';

export class AppendLog {
  private fd: number;
  private pending: string[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  private closed = false;
  /** Records in the file, live or dead; the owner compacts when most are dead. */
  records = 0;

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

  /** Appends records (no newlines inside); resolves once they are on disk. */
  append(records: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`append log ${this.file} is closed`));
    for (const r of records) this.pending.push(r);
    this.records += records.length;
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const records = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (records.length === 0) return;
    try {
      fs.writeSync(this.fd, records.join('\n') + '\n');
      if (this.fsync) fs.fdatasyncSync(this.fd);
      for (const w of waiters) w.resolve();
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
    }
  }

  /** Replaces the file with `records` (the live state), atomically: temp file, fsync, rename, fsync dir. */
  rewrite(records: Iterable<string>): void {
    this.flush();
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
    fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
    this.records = count;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    fs.closeSync(this.fd);
  }
}
