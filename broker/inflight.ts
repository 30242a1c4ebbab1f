// What is in flight to one device, by MQTT packet id (1–65535), until its PUBACK.
//
// A Map would do, but V8 reallocates a Map's table when it empties (its delete shrinks the table, down to
// a fresh one of the smallest size), and a device that gets one message at a time empties it on every
// PUBACK. The device, and so its Map, lives in the old generation, so every new table outlives the young
// one: ~150 bytes a message promoted, a seventh of all the broker promoted at 1,000 msg/s (bench/HISTORY.md,
// round 13), which is what brings its major GCs.
//
// Here each id has one slot, its id modulo the capacity (a power of two). The broker hands ids out in
// sequence, so ids in flight at once fall in different slots until more are in flight than the capacity,
// or an old one stays unacknowledged; only then does the table grow. At 65,536 slots each id has its own.
// Nothing is allocated per message.

const INITIAL = 8;
const MAX = 65536;
/** Emptied after a burst (a drain of a long queue), a table this big goes back to the initial size. */
const SHRINK_FROM = 1024;

const isPacketId = (id: number) => Number.isInteger(id) && id >= 1 && id <= 65535;

export class InflightTable<T> {
  /** The id in each slot, 0 for none (no packet id is 0). */
  private ids = new Uint16Array(INITIAL);
  private slots: (T | undefined)[] = new Array<T | undefined>(INITIAL).fill(undefined);
  private mask = INITIAL - 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return isPacketId(id) && this.ids[id & this.mask] === id;
  }

  get(id: number): T | undefined {
    if (!isPacketId(id)) return undefined;
    const i = id & this.mask;
    return this.ids[i] === id ? this.slots[i] : undefined;
  }

  set(id: number, value: T): void {
    if (!isPacketId(id)) throw new RangeError(`not an MQTT packet id: ${id}`);
    let i = id & this.mask;
    while (this.ids[i] !== id && this.ids[i] !== 0) {
      this.resize(this.ids.length * 2);
      i = id & this.mask;
    }
    if (this.ids[i] === 0) this.count++;
    this.ids[i] = id;
    this.slots[i] = value;
  }

  /** Takes `id` out; returns what it held, or undefined when it was not in flight. */
  take(id: number): T | undefined {
    // A PUBACK of id 0 (which mqtt-packet parses) must not match an empty slot, whose id is 0.
    if (!isPacketId(id)) return undefined;
    const i = id & this.mask;
    if (this.ids[i] !== id) return undefined;
    const value = this.slots[i];
    this.ids[i] = 0;
    this.slots[i] = undefined;
    if (--this.count === 0 && this.ids.length >= SHRINK_FROM) this.resize(INITIAL);
    return value;
  }

  /** What is in flight, in no particular order. */
  *values(): IterableIterator<T> {
    for (let i = 0; i < this.ids.length; i++) if (this.ids[i] !== 0) yield this.slots[i] as T;
  }

  private resize(capacity: number): void {
    if (capacity > MAX) throw new Error('the in-flight table cannot grow past one slot per packet id');
    const ids = this.ids;
    const slots = this.slots;
    this.ids = new Uint16Array(capacity);
    this.slots = new Array<T | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === 0) continue;
      // Unique within the old table, so unique here too: the new mask keeps more bits of each id.
      const j = ids[i] & this.mask;
      this.ids[j] = ids[i];
      this.slots[j] = slots[i];
    }
  }
}
