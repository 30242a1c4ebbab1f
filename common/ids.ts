// Snowflake ids: 41 bits of ms since EPOCH · 10 bits node · 12 bits sequence, as a decimal string.
// Written here rather than taken from a package because Parley's ordering guarantee needs ids that never
// go backwards, even when the wall clock does or more than 4096 ids are asked for in one ms: then the
// generator borrows the next ms instead of wrapping the sequence.
export const EPOCH = Date.UTC(2024, 0, 1);
const NODE_BITS = 10n;
const SEQ_BITS = 12n;
const MAX_SEQ = (1 << 12) - 1;

export class IdGenerator {
  private lastMs = 0;
  private seq = 0;
  private readonly node: bigint;

  constructor(nodeId: number) {
    if (!Number.isInteger(nodeId) || nodeId < 0 || nodeId > 1023) throw new RangeError('node id must be 0..1023');
    this.node = BigInt(nodeId);
  }

  /** The next id and the time it stands for; synchronous, so callers number messages in arrival order. */
  next(now = Date.now()): { id: string; ts: number } {
    let ms = now - EPOCH;
    if (ms <= this.lastMs) {
      ms = this.lastMs;
      if (this.seq === MAX_SEQ) {
        ms += 1;
        this.seq = 0;
      } else {
        this.seq += 1;
      }
    } else {
      this.seq = 0;
    }
    this.lastMs = ms;
    const id = (BigInt(ms) << (NODE_BITS + SEQ_BITS)) | (this.node << SEQ_BITS) | BigInt(this.seq);
    return { id: id.toString(), ts: ms + EPOCH };
  }
}

export const ID_PATTERN = /^[0-9]{1,20}$/;

/** The parts of an id, for analysts and for checks. */
export function parseId(id: string): { ts: number; node: number; seq: number } {
  const n = BigInt(id);
  return {
    ts: Number(n >> (NODE_BITS + SEQ_BITS)) + EPOCH,
    node: Number((n >> SEQ_BITS) & 1023n),
    seq: Number(n & 4095n),
  };
}

/** Compares two decimal ids numerically. */
export function compareIds(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** The smallest id a message accepted at `ts` can have (for time ranges over id-ordered data). */
export function firstIdAt(ts: number): string {
  return (BigInt(Math.max(0, ts - EPOCH)) << (NODE_BITS + SEQ_BITS)).toString();
}
