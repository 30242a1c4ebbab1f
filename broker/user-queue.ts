// One user's offline queue in memory (the embedded adapter's): message ids and payloads, oldest first.
//
// A Map per user would do, and was what the queue used, but a user who is online has a queue that fills
// and empties with every message (stored, delivered, PUBACKed), and a V8 Map reallocates its table when it
// empties; the queue was also dropped and made anew each time. Each message thus left a Map and its tables
// that outlived the young generation, as the user's entry is old: a tenth of all the broker promoted at
// 1,000 msg/s (bench/HISTORY.md, round 13). Here two arrays keep their storage when the queue empties, and a
// queue short enough is searched in place; only a long one (an offline user's) keeps an index by id.

/** From this many messages on, the queue keeps an index by id (searching it in place would cost too much). */
const INDEXED_FROM = 16;
/** An emptied queue whose arrays grew this big (a long queue drained) lets them go. */
const SHRINK_FROM = 1024;

/** The messages in slots from..to-1 of the two arrays, skipping holes. */
function* present(ids: readonly (string | undefined)[], payloads: readonly (string | undefined)[], from: number, to: number): IterableIterator<[string, string]> {
  for (let i = from; i < to; i++) {
    const id = ids[i];
    if (id !== undefined) yield [id, payloads[i] as string];
  }
}

export class UserQueue {
  /** Slots head..end-1 in the order queued; an undefined id is a message removed out of order. */
  private ids: (string | undefined)[] = [];
  private payloads: (string | undefined)[] = [];
  private head = 0;
  private end = 0;
  /** id → slot, while the queue is long. */
  private index: Map<string, number> | null = null;
  private count = 0;
  /**
   * Slots below this are read by copies entriesNow() handed out (a compaction's snapshot, read over many
   * turns): the arrays are copied once before a write there, and the copies keep the old ones. Back to 0
   * once the owner says the copies are read no more (released).
   */
  private sharedUpTo = 0;

  get size(): number {
    return this.count;
  }

  has(id: string): boolean {
    return this.slotOf(id) >= 0;
  }

  /** The oldest message's id, or undefined when the queue is empty. */
  oldest(): string | undefined {
    return this.count === 0 ? undefined : this.ids[this.head];
  }

  /** Queues `id` at the end, or replaces its payload where it is. Returns true when it was not queued. */
  set(id: string, payload: string): boolean {
    const at = this.slotOf(id);
    if (at >= 0) {
      this.writable(at);
      this.payloads[at] = payload;
      return false;
    }
    if (this.end === this.ids.length && this.count * 2 <= this.end) this.compact();
    this.writable(this.end);
    const slot = this.end++;
    this.ids[slot] = id;
    this.payloads[slot] = payload;
    this.count++;
    if (this.index) this.index.set(id, slot);
    else if (this.count >= INDEXED_FROM) this.buildIndex();
    return true;
  }

  /** Removes `id`; false when it was not queued. */
  delete(id: string): boolean {
    const at = this.slotOf(id);
    if (at < 0) return false;
    this.writable(at);
    this.ids[at] = undefined;
    this.payloads[at] = undefined;
    this.count--;
    this.index?.delete(id);
    if (this.count === 0) this.emptied();
    else if (at === this.head) while (this.ids[this.head] === undefined) this.head++;
    return true;
  }

  /** The messages in the order queued. */
  entries(): IterableIterator<[string, string]> {
    return present(this.ids, this.payloads, this.head, this.end);
  }

  /**
   * The messages in the order queued as they are now: what the queue does later does not show. A copy on
   * write: taking it costs nothing, and the first change to a slot it reads copies the arrays (a 1,000,000
   * message snapshot held the event loop 14–20 ms copying them up front; bench/HISTORY.md, round 16).
   */
  entriesNow(): IterableIterator<[string, string]> {
    this.sharedUpTo = Math.max(this.sharedUpTo, this.end);
    return present(this.ids, this.payloads, this.head, this.end);
  }

  /** The copies entriesNow() handed out are read no more: writes need not copy the arrays for them. */
  released(): void {
    this.sharedUpTo = 0;
  }

  /** Before a write to `slot`: arrays a copy still reads there are left to it. */
  private writable(slot: number): void {
    if (slot >= this.sharedUpTo) return;
    this.ids = this.ids.slice();
    this.payloads = this.payloads.slice();
    this.sharedUpTo = 0;
  }

  private slotOf(id: string): number {
    if (this.index) {
      const at = this.index.get(id);
      return at === undefined ? -1 : at;
    }
    for (let i = this.head; i < this.end; i++) if (this.ids[i] === id) return i;
    return -1;
  }

  private buildIndex(): void {
    this.index = new Map();
    for (let i = this.head; i < this.end; i++) {
      const id = this.ids[i];
      if (id !== undefined) this.index.set(id, i);
    }
  }

  /**
   * Moves the messages to the front of the arrays, which keep their storage, closing the holes that
   * out-of-order removals left (a message never acknowledged would otherwise hold the head while the
   * arrays grow behind it). Run only when the arrays are full and at most half of their slots hold a
   * message, so each slot is moved at most once per filling: the arrays stay under twice what is queued.
   */
  private compact(): void {
    this.writable(0);
    let to = 0;
    for (let i = this.head; i < this.end; i++) {
      const id = this.ids[i];
      if (id === undefined) continue;
      this.ids[to] = id;
      this.payloads[to] = this.payloads[i];
      to++;
    }
    for (let i = to; i < this.end; i++) {
      this.ids[i] = undefined;
      this.payloads[i] = undefined;
    }
    this.head = 0;
    this.end = to;
    if (this.index) this.buildIndex();
  }

  private emptied(): void {
    // Every slot from head to end is a hole now, and their contents are cleared already.
    this.head = this.end = 0;
    this.index = null;
    if (this.ids.length >= SHRINK_FROM) {
      this.ids = [];
      this.payloads = [];
      this.sharedUpTo = 0;
    }
  }
}
