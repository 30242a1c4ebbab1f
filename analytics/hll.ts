// HyperLogLog (Flajolet et al. 2007) with 2^12 registers: about 1.6 % standard error in 4 KiB, mergeable
// by taking the larger register. Written here (some 60 lines) rather than taken from npm because its
// registers go into checkpoints and partial rows: the hash and the layout must stay the same in every
// process and every version, which is simplest to promise for code we own. 64-bit hash (the first 8 bytes
// of MD5), so no large-range correction is needed; the small-range correction is linear counting.
import { createHash } from 'node:crypto';

export const HLL_BITS = 12;
const M = 1 << HLL_BITS;
const ALPHA = 0.7213 / (1 + 1.079 / M);

export class HyperLogLog {
  readonly registers: Uint8Array;

  constructor(registers?: Uint8Array) {
    if (registers && registers.length !== M) throw new RangeError(`a HyperLogLog has ${M} registers, got ${registers.length}`);
    this.registers = registers ?? new Uint8Array(M);
  }

  add(item: string): void {
    const h = createHash('md5').update(item, 'utf8').digest();
    const hi = h.readUInt32BE(0);
    const lo = h.readUInt32BE(4);
    const index = hi >>> (32 - HLL_BITS);
    // The 52 bits after the index: rank = position of the first 1 bit, counted from 1.
    const restHi = (hi << HLL_BITS) >>> 0; // 20 bits, left-aligned
    let rank: number;
    if (restHi !== 0) rank = Math.clz32(restHi) + 1;
    else rank = lo !== 0 ? 32 - HLL_BITS + Math.clz32(lo) + 1 : 64 - HLL_BITS + 1;
    if (rank > this.registers[index]) this.registers[index] = rank;
  }

  merge(other: HyperLogLog): void {
    for (let i = 0; i < M; i++) if (other.registers[i] > this.registers[i]) this.registers[i] = other.registers[i];
  }

  estimate(): number {
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < M; i++) {
      sum += 2 ** -this.registers[i];
      if (this.registers[i] === 0) zeros++;
    }
    const raw = (ALPHA * M * M) / sum;
    if (raw <= 2.5 * M && zeros > 0) return M * Math.log(M / zeros);
    return raw;
  }

  toJSON(): string {
    return Buffer.from(this.registers).toString('base64');
  }

  static fromJSON(text: string): HyperLogLog {
    return new HyperLogLog(new Uint8Array(Buffer.from(text, 'base64')));
  }
}
