// The embedded accept store's claims, `(sender, cid)` → the message's first `id:ts`, kept 24 h (PROTOCOL.md,
// `cid`), outside the JS heap.
//
// They were an ExpiringMap: per message an entry object, its key and claim strings and a Map slot, ~200
// bytes in four places, all of them kept for a day. At 1,000 msg/s that is ~0.7 GB an hour until the cap of
// 8,000,000 claims (~1.6 GB), every byte of it marked by each major GC on the broker's thread: the heap
// grew by a third of a KB per message and the major GCs' pauses with it (bench/HISTORY.md, round 13).
//
// Here a claim is ~60–100 bytes in Buffers and typed arrays that the GC does not look into: the key and
// claim as UTF-8, with their expiry, appended to 4 MB chunks in the order stored, and found through an
// open-addressing table of typed arrays (0.03–2 bytes of JS heap a claim, measured at 200,000–3,000,000). Keys are compared in full (the hash only picks the slot), so two claims never mix. Every
// claim of a deployment lives equally long, so claims expire in the order stored, and the oldest chunk
// goes once all of it has expired, or when the claims are over the cap (the oldest making room, as
// before). Its slots are found stale then, and cleared by the next rebuild of the table. A rebuild moves
// the claims to the new table a few slots per store, not all at once: at once, it held the event loop
// ~45 ms at 1,000,000 claims and several times that at the cap (bench/HISTORY.md, round 16).
import crypto from 'node:crypto';

/** expiresAt (f64), key bytes (u16), claim bytes (u16), then the two. */
const HEAD_BYTES = 12;
const MAX_PART_BYTES = 0xffff;
/** Slots in use (claims and cleared ones) at most this share of the table before it is rebuilt. */
const LOAD = 0.6;
const INITIAL_SLOTS = 1024;
/** Slots of the table being emptied that each store moves at least (see rebuild). */
const MOVE_PER_STORE = 64;
/** The Buffers lines() fills: each holds at least one line (a key and a claim are at most 64 KB each). */
const LINES_BYTES = 1 << 20;

interface Chunk {
  seq: number;
  buf: Buffer;
  used: number;
  /** The latest expiry of a claim in it: the chunk goes once that has passed. */
  lastExpiry: number;
  /** Claims in it that the table points to. */
  current: number;
  /** The expiry of the first claim stored in it. */
  firstExpiry: number;
}

/**
 * Writes a safe integer's decimal digits at `at`; returns where they end. In two parts below 10^8, so the
 * arithmetic stays on 32-bit integers (division and modulo of a 13-digit double took half of lines()).
 */
function writeInteger(out: Buffer, at: number, n: number): number {
  if (n < 0) {
    out[at++] = 0x2d;
    n = -n;
  }
  const high = Math.floor(n / 1e8);
  const low = n - high * 1e8;
  if (high > 0) {
    at = writeSmall(out, at, high, 0);
    return writeSmall(out, at, low, 8);
  }
  return writeSmall(out, at, low, 0);
}

/** Writes 0 ≤ n < 2^31 in decimal, padded with zeros to `width` digits. */
function writeSmall(out: Buffer, at: number, value: number, width: number): number {
  // As a 32-bit integer: `%` of a double is a floating-point remainder, five times slower.
  let n = value | 0;
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits++;
  if (digits < width) digits = width;
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  }
  return at + digits;
}

/** A place in the claims, in the order stored: everything stored later is after it. */
export interface ClaimCursor {
  seq: number;
  offset: number;
}

export interface ClaimIndexOptions {
  /** The most claims kept; past it the oldest chunk makes room (default 8,000,000). */
  maxEntries?: number;
  /** Bytes of each chunk (default 4 MB; small ones for tests). */
  chunkBytes?: number;
}

export class ClaimIndex {
  private readonly maxEntries: number;
  private readonly chunkBytes: number;
  private readonly seed = crypto.randomBytes(4).readUInt32LE(0);
  /** Oldest first; chunks[i].seq === firstSeq + i. */
  private chunks: Chunk[] = [];
  private firstSeq = 0;
  private nextSeq = 0;
  /** Per slot: 0 empty, -1 cleared, else 1 + seq × chunkBytes + offset of the claim. */
  private locs = new Float64Array(INITIAL_SLOTS);
  private hashes = new Uint32Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  /** Slots not empty (claims, stale ones and cleared ones). */
  private used = 0;
  /**
   * The table before the last rebuild, while its claims move to the current one (`next` is where the move
   * stands, `perStore` how many slots each store moves). A claim is in one of the two, never both: find()
   * looks in this one too, and moves what it finds there. Its moved slots read as cleared, so the probes
   * through it still reach what is behind them.
   */
  private draining: { locs: Float64Array; hashes: Uint32Array; mask: number; next: number; perStore: number } | null = null;
  private count = 0;
  /** The key of the current call as UTF-8, written here rather than into a new Buffer each time. */
  private scratch = Buffer.allocUnsafe(2 * MAX_PART_BYTES);

  constructor(options: ClaimIndexOptions = {}) {
    this.maxEntries = options.maxEntries ?? 8_000_000;
    this.chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
    if (this.chunkBytes < HEAD_BYTES + 2 * MAX_PART_BYTES) throw new RangeError('a chunk must hold the longest claim');
  }

  /** Claims kept (some may have expired and not gone yet, as their chunk has not). */
  get size(): number {
    return this.count;
  }

  get(key: string, now = Date.now()): string | undefined {
    const slot = this.find(key, this.encode(key), this.hash(key));
    if (slot < 0) return undefined;
    const { chunk, offset } = this.at(this.locs[slot]);
    if (chunk.buf.readDoubleLE(offset) <= now) return undefined;
    return this.claimAt(chunk, offset);
  }

  /** Stores `claim` unless `key` has one that has not expired; returns that one then. */
  setIfAbsent(key: string, claim: string, ttlMs: number, now = Date.now()): string | undefined {
    const keyBytes = this.encode(key);
    const h = this.hash(key);
    const slot = this.find(key, keyBytes, h);
    if (slot >= 0) {
      const { chunk, offset } = this.at(this.locs[slot]);
      if (chunk.buf.readDoubleLE(offset) > now) return this.claimAt(chunk, offset);
    }
    this.put(slot, keyBytes, h, claim, now + ttlMs, now);
    return undefined;
  }

  /** Stores `claim` for `key`, replacing what it had. */
  set(key: string, claim: string, ttlMs: number, now = Date.now()): void {
    const keyBytes = this.encode(key);
    const h = this.hash(key);
    this.put(this.find(key, keyBytes, h), keyBytes, h, claim, now + ttlMs, now);
  }

  delete(key: string): void {
    const slot = this.find(key, this.encode(key), this.hash(key));
    if (slot < 0) return;
    this.retire(this.locs[slot]);
    this.count--;
    this.locs[slot] = -1;
  }

  /** The claim at `loc` is no longer the table's (replaced or deleted): it reads as expired from now on. */
  private retire(loc: number): void {
    const { chunk, offset } = this.at(loc);
    chunk.current--;
    chunk.buf.writeDoubleLE(0, offset);
  }

  /**
   * The claims not expired at `now` (those stored after `from` and before `to`, when given), in the order stored, as
   * journal lines, `{prefix}{expiresAt} {key with its first newline as a space} {claim}\n`, copied as bytes
   * into Buffers of about 1 MB: what ClaimArchive keeps. A claim replaced or deleted reads as expired
   * (retire), so every one written is the table's.
   */
  *lines(prefix: string, now = Date.now(), from?: ClaimCursor, to?: ClaimCursor): Generator<Buffer> {
    const pre = Buffer.from(prefix);
    const chunks = this.chunks.filter((c) => (!from || c.seq >= from.seq) && (!to || c.seq <= to.seq));
    const cursor = { chunk: 0, offset: from && chunks[0]?.seq === from.seq ? from.offset : 0 };
    while (cursor.chunk < chunks.length) {
      const out = Buffer.allocUnsafe(LINES_BYTES);
      const end = this.fillLines(out, pre, chunks, cursor, now, to);
      if (end > 0) yield out.subarray(0, end);
    }
  }

  /**
   * Writes lines into `out` from `cursor` on, until the next would not fit or the claims end; moves the
   * cursor past what it wrote and returns where the lines end. Keys and claims are short: a byte at a time
   * costs about what two native copies per claim do (174 against 188 ms for a million).
   */
  private fillLines(out: Buffer, pre: Buffer, chunks: Chunk[], cursor: { chunk: number; offset: number }, now: number, to?: ClaimCursor): number {
    let at = 0;
    for (; cursor.chunk < chunks.length; cursor.chunk++, cursor.offset = 0) {
      const chunk = chunks[cursor.chunk];
      if (chunk.seq < this.firstSeq) continue; // dropped while the caller wrote what came before
      const buf = chunk.buf;
      let offset = cursor.offset;
      const used = to && chunk.seq === to.seq ? Math.min(to.offset, chunk.used) : chunk.used;
      while (offset < used) {
        const keyLen = buf.readUInt16LE(offset + 8);
        const claimLen = buf.readUInt16LE(offset + 10);
        const expiresAt = buf.readDoubleLE(offset);
        const start = offset + HEAD_BYTES;
        const next = start + keyLen + claimLen;
        if (expiresAt <= now) {
          offset = next;
          continue;
        }
        const digits = Number.isSafeInteger(expiresAt) ? null : Buffer.from(String(expiresAt));
        if (at + pre.length + 20 + (digits?.length ?? 0) + keyLen + claimLen + 2 > out.length) {
          cursor.offset = offset;
          return at;
        }
        for (let i = 0; i < pre.length; i++) out[at++] = pre[i];
        if (digits) for (let i = 0; i < digits.length; i++) out[at++] = digits[i];
        else at = writeInteger(out, at, expiresAt);
        out[at++] = 0x20;
        let newline = false;
        for (let i = start; i < start + keyLen; i++) {
          const byte = buf[i];
          // The key's first newline (between sender and cid) is a space in the journal.
          if (byte === 0x0a && !newline) {
            newline = true;
            out[at++] = 0x20;
          } else out[at++] = byte;
        }
        out[at++] = 0x20;
        for (let i = start + keyLen; i < next; i++) out[at++] = buf[i];
        out[at++] = 0x0a;
        offset = next;
      }
    }
    return at;
  }

  /**
   * Where the claims still kept start, as a position (see position): every claim stored before it has
   * expired or made room past the cap.
   */
  keptFrom(): number {
    return (this.chunks.length === 0 ? this.nextSeq : this.chunks[0].seq) * this.chunkBytes;
  }

  /** A cursor as a number that grows with what is stored (comparable with keptFrom). */
  position(cursor: ClaimCursor): number {
    return cursor.seq * this.chunkBytes + cursor.offset;
  }

  /** The end of what is stored so far: lines(…, from) of it yields only what is stored after this call. */
  end(): ClaimCursor {
    const last = this.chunks[this.chunks.length - 1];
    return last ? { seq: last.seq, offset: last.used } : { seq: this.nextSeq, offset: 0 };
  }

  clear(): void {
    this.chunks = [];
    this.firstSeq = this.nextSeq;
    this.locs = new Float64Array(INITIAL_SLOTS);
    this.hashes = new Uint32Array(INITIAL_SLOTS);
    this.mask = INITIAL_SLOTS - 1;
    this.used = this.count = 0;
    this.draining = null;
  }

  /** Writes the key into the scratch buffer; returns its length in bytes. */
  private encode(key: string): number {
    const bytes = this.scratch.write(key, 0, 'utf8');
    if (bytes > MAX_PART_BYTES || bytes === this.scratch.length) throw new RangeError('claim key too long');
    return bytes;
  }

  /** A seeded string hash (a seed per process, so nobody can choose cids that all land in one slot). */
  private hash(key: string): number {
    let h = this.seed ^ key.length;
    for (let i = 0; i < key.length; i++) {
      h = Math.imul(h ^ key.charCodeAt(i), 0x5bd1e995);
      h ^= h >>> 15;
    }
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /**
   * The slot holding `key` (whose UTF-8 is in the scratch buffer, `keyBytes` long), or -(1 + the slot to
   * store it in) when it has none. A slot pointing into a chunk that has gone is cleared on the way.
   */
  private find(key: string, keyBytes: number, h: number): number {
    const slot = this.probe(this.locs, this.hashes, this.mask, keyBytes, h);
    if (slot >= 0 || !this.draining) return slot;
    // Not moved yet? Then it moves now, to the slot it would be stored in.
    const old = this.draining;
    const at = this.probe(old.locs, old.hashes, old.mask, keyBytes, h);
    if (at < 0) return slot;
    const to = -1 - slot;
    if (this.locs[to] === 0) this.used++;
    this.locs[to] = old.locs[at];
    this.hashes[to] = h;
    old.locs[at] = -1;
    return to;
  }

  /**
   * In one table: the slot holding the key whose UTF-8 is in the scratch buffer, `keyBytes` long, or
   * -(1 + the slot to store it in). A slot pointing into a chunk that has gone is cleared on the way.
   */
  private probe(locs: Float64Array, hashes: Uint32Array, mask: number, keyBytes: number, h: number): number {
    let free = -1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const loc = locs[i];
      if (loc === 0) return -1 - (free >= 0 ? free : i);
      if (loc < 0) {
        if (free < 0) free = i;
        continue;
      }
      if (hashes[i] !== h) continue;
      const seq = Math.floor((loc - 1) / this.chunkBytes);
      if (seq < this.firstSeq) {
        locs[i] = -1;
        if (free < 0) free = i;
        continue;
      }
      const chunk = this.chunks[seq - this.firstSeq];
      const offset = loc - 1 - seq * this.chunkBytes;
      if (chunk.buf.readUInt16LE(offset + 8) !== keyBytes) continue;
      const start = offset + HEAD_BYTES;
      if (this.scratch.compare(chunk.buf, start, start + keyBytes, 0, keyBytes) === 0) return i;
    }
  }

  private at(loc: number): { chunk: Chunk; offset: number } {
    const seq = Math.floor((loc - 1) / this.chunkBytes);
    return { chunk: this.chunks[seq - this.firstSeq], offset: loc - 1 - seq * this.chunkBytes };
  }

  private claimAt(chunk: Chunk, offset: number): string {
    const keyLen = chunk.buf.readUInt16LE(offset + 8);
    const start = offset + HEAD_BYTES + keyLen;
    return chunk.buf.toString('utf8', start, start + chunk.buf.readUInt16LE(offset + 10));
  }

  /** Appends the claim and points `slot` (found by find(): a claim's slot, or -(1 + free slot)) at it. */
  private put(slot: number, keyBytes: number, h: number, claim: string, expiresAt: number, now: number): void {
    const claimBytes = Buffer.byteLength(claim);
    if (claimBytes > MAX_PART_BYTES) throw new RangeError('claim too long');
    const size = HEAD_BYTES + keyBytes + claimBytes;
    let chunk = this.chunks[this.chunks.length - 1];
    if (!chunk || chunk.used + size > this.chunkBytes) {
      chunk = { seq: this.nextSeq++, buf: Buffer.allocUnsafeSlow(this.chunkBytes), used: 0, lastExpiry: 0, current: 0, firstExpiry: expiresAt };
      if (this.chunks.length === 0) this.firstSeq = chunk.seq;
      this.chunks.push(chunk);
    }
    const offset = chunk.used;
    chunk.buf.writeDoubleLE(expiresAt, offset);
    chunk.buf.writeUInt16LE(keyBytes, offset + 8);
    chunk.buf.writeUInt16LE(claimBytes, offset + 10);
    this.scratch.copy(chunk.buf, offset + HEAD_BYTES, 0, keyBytes);
    chunk.buf.write(claim, offset + HEAD_BYTES + keyBytes, claimBytes, 'utf8');
    chunk.used += size;
    if (expiresAt > chunk.lastExpiry) chunk.lastExpiry = expiresAt;
    chunk.current++;

    if (slot >= 0) {
      this.retire(this.locs[slot]);
    } else {
      slot = -1 - slot;
      if (this.locs[slot] === 0) this.used++;
      this.count++;
    }
    this.locs[slot] = 1 + chunk.seq * this.chunkBytes + offset;
    this.hashes[slot] = h;

    this.dropOld(now);
    if (this.draining) this.move(this.draining.perStore);
    if (this.used > this.locs.length * LOAD) this.rebuild();
  }

  /** Lets the oldest chunks go: those whose claims have all expired, and any past the cap. */
  private dropOld(now: number): void {
    while (this.chunks.length > 1 && (this.chunks[0].lastExpiry <= now || this.count > this.maxEntries)) {
      const gone = this.chunks.shift()!;
      this.count -= gone.current;
      this.firstSeq = gone.seq + 1;
    }
  }

  /**
   * A new table for the claims the chunks still hold, with room for a quarter more before the next. The
   * claims move to it a few slots per store (move), enough that the old table is empty well before the new
   * one is due for its own rebuild: half of the stores it has room for.
   */
  private rebuild(): void {
    if (this.draining) this.move(Infinity);
    let slots = INITIAL_SLOTS;
    while (slots * LOAD < this.count * 1.25) slots *= 2;
    const room = Math.max(1, Math.floor(slots * LOAD) - this.count);
    this.draining = {
      locs: this.locs,
      hashes: this.hashes,
      mask: this.mask,
      next: 0,
      perStore: Math.max(MOVE_PER_STORE, Math.ceil(this.locs.length / (room / 2))),
    };
    this.locs = new Float64Array(slots);
    this.hashes = new Uint32Array(slots);
    this.mask = slots - 1;
    this.used = 0;
  }

  /** Moves the claims of up to `slots` slots of the draining table to the current one. */
  private move(slots: number): void {
    const old = this.draining as NonNullable<ClaimIndex['draining']>;
    const end = Math.min(old.locs.length, old.next + slots);
    for (let i = old.next; i < end; i++) {
      const loc = old.locs[i];
      if (loc <= 0) continue;
      old.locs[i] = -1;
      // A claim of a chunk that has gone is left behind.
      if (Math.floor((loc - 1) / this.chunkBytes) < this.firstSeq) continue;
      let j = old.hashes[i] & this.mask;
      while (this.locs[j] > 0) j = (j + 1) & this.mask;
      if (this.locs[j] === 0) this.used++;
      this.locs[j] = loc;
      this.hashes[j] = old.hashes[i];
    }
    old.next = end;
    if (end === old.locs.length) this.draining = null;
  }
}
