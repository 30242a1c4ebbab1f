// The message ids a job's open minute window has taken (the duplicate filter) or is waiting on (the backlog's
// pending ids), outside the JS heap.
//
// They were a Set<string> each: per id a Set slot holding the id's string, so each job kept every id of the
// minute alive and six sets grew by doubling (five duplicate filters, the backlog). At 5,000 msg/s that was
// ~35 MB of tables and strings in 20 s that outlived the young generation, a major GC of the consumer thread
// every 6–7 s (bench/HISTORY.md, round 22). Here a Snowflake id is its 64-bit number in two 32-bit halves of one
// Uint32Array, found by linear probing: 8 bytes a slot the GC never looks into, and the id's string can die
// with its batch. Anything that is not a canonical decimal below 2^63 (a leading zero, a larger number, not
// digits: no id Parley stamps) goes to a Set<string> beside it, so the set means exactly what a Set<string>
// of the same strings would.

const INITIAL_SLOTS = 1024;
/** Slots in use at most this share of the table; past it the table doubles. */
const LOAD = 0.6;
const TWO_32 = 4294967296;

/** The halves parse() found: module scratch, so a lookup allocates nothing. */
let hiOut = 0;
let loOut = 0;

/**
 * Reads a canonical decimal below 2^63 into hiOut and loOut. False for anything else: empty, longer than 19
 * digits, a leading zero ("0" itself is canonical), a character other than a digit, or 2^63 and above.
 */
function parse(id: string): boolean {
  const n = id.length;
  if (n === 0 || n > 19 || (n > 1 && id.charCodeAt(0) === 48)) return false;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < n; i++) {
    const d = id.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    // lo·10 + 9 < 2^36 and hi·10 + carry < 2^35: exact in a double.
    lo = lo * 10 + d;
    const carry = Math.floor(lo / TWO_32);
    lo -= carry * TWO_32;
    hi = hi * 10 + carry;
    if (hi >= 0x80000000) return false;
  }
  hiOut = hi;
  loOut = lo;
  return true;
}

/** A slot's start for the halves (murmur3's 32-bit finaliser over both). */
function home(hi: number, lo: number, mask: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

export class IdSet {
  /** Slot i: [2i] = hi + 1 (0: empty), [2i + 1] = lo. */
  private slots = new Uint32Array(INITIAL_SLOTS * 2);
  private mask = INITIAL_SLOTS - 1;
  private count = 0;
  /** Ids that are not canonical decimals below 2^63. */
  private other: Set<string> | null = null;

  constructor(ids?: Iterable<string>) {
    if (ids) for (const id of ids) this.add(id);
  }

  get size(): number {
    return this.count + (this.other?.size ?? 0);
  }

  /** Adds the id; false when it was there already. */
  add(id: string): boolean {
    if (!parse(id)) {
      this.other ??= new Set();
      const before = this.other.size;
      return this.other.add(id).size !== before;
    }
    const i = this.find(hiOut, loOut);
    if (this.slots[i] !== 0) return false;
    this.slots[i] = hiOut + 1;
    this.slots[i + 1] = loOut;
    if (++this.count > (this.mask + 1) * LOAD) this.grow();
    return true;
  }

  has(id: string): boolean {
    if (!parse(id)) return this.other?.has(id) ?? false;
    return this.slots[this.find(hiOut, loOut)] !== 0;
  }

  /** Removes the id; false when it was not there. */
  delete(id: string): boolean {
    if (!parse(id)) return this.other?.delete(id) ?? false;
    const slots = this.slots;
    const mask = this.mask;
    let hole = this.find(hiOut, loOut);
    if (slots[hole] === 0) return false;
    this.count--;
    // Backward shift: each later id of the run moves into the hole unless its home lies cyclically after the
    // hole (then the hole does not stand between it and its home), so lookups need no tombstones.
    let j = hole >> 1;
    for (;;) {
      j = (j + 1) & mask;
      const at = j * 2;
      if (slots[at] === 0) break;
      const k = home(slots[at] - 1, slots[at + 1], mask);
      const h = hole >> 1;
      if (h <= j ? h < k && k <= j : h < k || k <= j) continue;
      slots[hole] = slots[at];
      slots[hole + 1] = slots[at + 1];
      hole = at;
    }
    slots[hole] = 0;
    slots[hole + 1] = 0;
    return true;
  }

  /** The index in `slots` of the id's slot, or of the empty slot where it would go. */
  private find(hi: number, lo: number): number {
    const slots = this.slots;
    const mask = this.mask;
    const tag = hi + 1;
    for (let s = home(hi, lo, mask); ; s = (s + 1) & mask) {
      const at = s * 2;
      const t = slots[at];
      if (t === 0 || (t === tag && slots[at + 1] === lo)) return at;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.mask = old.length - 1;
    for (let at = 0; at < old.length; at += 2) {
      if (old[at] === 0) continue;
      const i = this.find(old[at] - 1, old[at + 1]);
      this.slots[i] = old[at];
      this.slots[i + 1] = old[at + 1];
    }
  }
}
