// Where the embedded accept store keeps its claims once the journal compacts: files of claim lines
// (`{expiresAt} {sender} {cid} {claim}`, as in the journal's `d` records), appended and never rewritten.
//
// A claim is written to the journal with its message (one fdatasync for both). When the journal compacts,
// the claims written since the last compaction move here, instead of every live claim being written into
// the new journal again: a compaction then costs what was written since the one before, not a day of
// claims (which held the event loop for 0.3–0.7 s at a million claims; bench/HISTORY.md, round 13). A file
// goes whole once its newest claim has expired, or once the index keeps no claim stored before the file's
// end (it let them go past its cap); files go oldest first. A file is rolled after ROLL_BYTES. At start the files are read, oldest first, before the journal's own `d` records.
import fs from 'node:fs';
import path from 'node:path';
import { syncDirAsync } from '../common/append-log.ts';

const ROLL_BYTES = 32 * 1024 * 1024;
const NEWLINE = 0x0a;

interface ArchiveFile {
  name: string;
  size: number;
  /** The latest expiry of a claim in it (ms): the file goes once that has passed. */
  lastExpiry: number;
  /**
   * Where the owner's claims stood when this file's last claim was stored (its `mark`): once the owner
   * keeps nothing from before it, the file goes. Infinity when not told.
   */
  through: number;
}

/**
 * The latest expiry at the start of the lines in `buf` (whole lines), -Infinity for none. A line that does
 * not start with one (never written by this code) is no claim: replay skips it, and so does this.
 */
function latestExpiry(buf: Buffer): number {
  let latest = -Infinity;
  let lineStart = 0;
  while (lineStart < buf.length) {
    let i = lineStart;
    while (i < buf.length && ((buf[i] >= 0x30 && buf[i] <= 0x39) || buf[i] === 0x2e)) i++;
    if (i > lineStart && buf[i] === 0x20) {
      const expiry = Number(buf.toString('latin1', lineStart, i));
      if (expiry > latest) latest = expiry;
    }
    const end = buf.indexOf(NEWLINE, i);
    if (end < 0) break;
    lineStart = end + 1;
  }
  return latest;
}

export class ClaimArchive {
  private readonly files: ArchiveFile[] = [];
  /** The newest file, open for appending (a FileHandle: closing it waits for a write in flight). */
  private handle: fs.promises.FileHandle | null = null;
  private closed = false;

  constructor(
    private readonly dir: string,
    /** Files are `{name}-{seq}.log` in `dir`. */
    private readonly name: string,
    private readonly fsync: boolean,
  ) {}

  private fileName(seq: number): string {
    return `${this.name}-${String(seq).padStart(10, '0')}.log`;
  }

  /**
   * Hands every claim line of the files to `replay`, oldest first, and forgets the files whose claims have
   * all expired. A line torn by a crash (no newline yet) is cut off: it was in the journal too. `mark` is
   * asked after each file, for where the owner's claims then stand (see append).
   */
  load(replay: (line: string) => void, now = Date.now(), mark: () => number = () => Infinity): void {
    const prefix = `${this.name}-`;
    const names = fs.existsSync(this.dir) ? fs.readdirSync(this.dir).filter((n) => n.startsWith(prefix) && /^\d{10}\.log$/.test(n.slice(prefix.length))) : [];
    for (const name of names.sort()) {
      const file = path.join(this.dir, name);
      let bytes = fs.readFileSync(file);
      const end = bytes.lastIndexOf(NEWLINE) + 1;
      if (end !== bytes.length) {
        fs.truncateSync(file, end);
        bytes = bytes.subarray(0, end);
      }
      const lastExpiry = latestExpiry(bytes);
      if (lastExpiry <= now) {
        fs.rmSync(file, { force: true });
        continue;
      }
      for (const line of bytes.toString('utf8').split('\n')) if (line.length > 0) replay(line);
      this.files.push({ name, size: bytes.length, lastExpiry, through: mark() });
    }
  }

  /**
   * Appends whole claim lines and resolves once they are durable (the journal is rewritten without them
   * after that); the writes and syncs run on libuv's pool, not on the event loop. One append at a time.
   * Rolls to a new file past ROLL_BYTES. Drops the files whose claims have all expired, and those whose
   * `mark` is at or before `keptFrom`: the owner's claims stood at `mark` (a number that grows with what it
   * stores: ClaimIndex.position) when the file's last claim was stored, and it keeps none stored before
   * `keptFrom` (past its cap, or expired).
   */
  async append(lines: Iterable<Buffer>, now = Date.now(), mark = Infinity, keptFrom = -Infinity): Promise<void> {
    for (const buf of lines) {
      if (this.closed) throw new Error(`claim archive ${this.name} is closed`);
      if (buf.length === 0) continue;
      let current = this.files[this.files.length - 1];
      if (!current || current.size >= ROLL_BYTES) current = await this.roll();
      const handle = await this.open(current);
      try {
        for (let at = 0; at < buf.length; ) at += (await handle.write(buf, at, buf.length - at)).bytesWritten;
      } catch (err) {
        // A line cut short in the middle of the file would swallow the next one: the file goes back to
        // where it was (the claims stay in the journal, and the next compaction tries again).
        await handle.truncate(current.size).catch(() => undefined);
        throw err;
      }
      current.size += buf.length;
      current.lastExpiry = Math.max(current.lastExpiry, latestExpiry(buf));
      current.through = mark;
    }
    if (this.closed) throw new Error(`claim archive ${this.name} is closed`);
    if (this.handle && this.fsync) await this.handle.datasync();
    await this.dropExpired(now, keptFrom);
  }

  /** The files kept (for tests and diagnostics). */
  get fileCount(): number {
    return this.files.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.closeFile();
  }

  private async closeFile(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
  }

  private async roll(): Promise<ArchiveFile> {
    const last = this.files[this.files.length - 1];
    const seq = last ? Number(last.name.slice(last.name.lastIndexOf('-') + 1, -4)) + 1 : 1;
    if (this.handle) {
      if (this.fsync) await this.handle.datasync();
      await this.closeFile();
    }
    const file: ArchiveFile = { name: this.fileName(seq), size: 0, lastExpiry: -Infinity, through: Infinity };
    this.files.push(file);
    return file;
  }

  /** The newest file, opened for appending (created, and its directory entry synced). */
  private async open(file: ArchiveFile): Promise<fs.promises.FileHandle> {
    if (this.handle) return this.handle;
    await fs.promises.mkdir(this.dir, { recursive: true });
    const full = path.join(this.dir, file.name);
    const created = !fs.existsSync(full);
    this.handle = await fs.promises.open(full, 'a');
    if (created && this.fsync) await syncDirAsync(this.dir);
    return this.handle;
  }

  /**
   * Deletes the files whose claims have all expired, or that the owner keeps nothing of (claims it let go
   * past its cap would only be read at the next start to be dropped again). Either is told by the claims'
   * order of storage, not by their expiry, which a change of the claims' ttl between starts can reorder.
   */
  private async dropExpired(now: number, keptFrom: number): Promise<void> {
    // Never the newest: it is the one appended to. Unlinked on libuv's pool: freeing 32 MB of blocks takes ms.
    while (this.files.length > 1 && (this.files[0].lastExpiry <= now || this.files[0].through <= keptFrom)) {
      try {
        await fs.promises.rm(path.join(this.dir, this.files[0].name), { force: true });
      } catch {
        return; // kept, and tried again at the next append
      }
      this.files.shift();
    }
  }
}
