// The producer's partitioner against kafkajs's DefaultPartitioner, which it replaces: the same partition for
// every key (strings of any script, lone surrogates, long keys, Buffers) and partition count, so a
// conversation stays on its partition across the change; a record's own partition wins; keyless records
// go round robin over the partitions that have a leader.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import type { PartitionMetadata } from 'kafkajs';
import { KeyHashPartitioner, murmur2, kafkaPartitionOf } from '../common/kafka-partitioner.ts';

const kafkajsDefault = kafkajs.Partitioners.DefaultPartitioner();
const ours = KeyHashPartitioner();

const metadata = (n: number, leaderless: number[] = []): PartitionMetadata[] =>
  Array.from({ length: n }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: leaderless.includes(partitionId) ? -1 : 0,
    replicas: [0],
    isr: [0],
  }));

/** A seeded generator, so a failure names a key that fails again. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// ASCII, Latin-1, Greek, CJK, an astral emoji (a surrogate pair), and a lone surrogate (encoded as U+FFFD).
const ALPHABET = ['a', 'Z', '0', '|', ':', '-', '\t', '\u00e9', '\u03a9', '\u4e2d', '\u{1f600}', '\ud800'];

function randomKey(next: () => number, maxUnits: number): string {
  let key = '';
  const length = Math.floor(next() * maxUnits);
  while (key.length < length) key += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return key;
}

describe('Kafka partitioner', () => {
  it('puts every key on the partition kafkajs’s DefaultPartitioner chose, for 1–12 partitions', () => {
    const next = random(8);
    let checked = 0;
    for (let i = 0; i < 20_000; i++) {
      const key = randomKey(next, i < 19_900 ? 60 : 900); // the last hundred past the scratch buffer
      const n = 1 + (i % 12);
      const args = { topic: 't', partitionMetadata: metadata(n, [0]), message: { key, value: 'v' } };
      assert.equal(ours(args), kafkajsDefault(args), `key ${JSON.stringify(key)} with ${n} partitions`);
      checked++;
    }
    assert.equal(checked, 20_000);
  });

  it('hashes Buffer keys as their bytes, and a string key as its UTF-8', () => {
    const next = random(21);
    for (let i = 0; i < 2_000; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(next() * 40) }, () => Math.floor(next() * 256)));
      const args = { topic: 't', partitionMetadata: metadata(7), message: { key: bytes, value: 'v' } };
      assert.equal(ours(args), kafkajsDefault(args), `key bytes ${bytes.toString('hex')}`);
    }
    assert.equal(kafkaPartitionOf('conv:\u00e9', 5), kafkaPartitionOf(Buffer.from('conv:\u00e9', 'utf8'), 5));
  });

  it('is Kafka’s murmur2: the Java client’s values for known inputs', () => {
    // From Apache Kafka's UtilsTest.testMurmur2.
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ];
    for (const [text, expected] of cases) assert.equal(murmur2(Buffer.from(text, 'utf8')), expected, text);
    assert.equal(murmur2(Buffer.from([0x61, 0x62, 0x63])), murmur2(Buffer.from('abcdef'), 3), 'a length shorter than the buffer');
  });

  it('keeps a record’s own partition, whatever its key', () => {
    const args = { topic: 't', partitionMetadata: metadata(6), message: { key: 'k', value: 'v', partition: 4 } };
    assert.equal(ours(args), 4);
    assert.equal(ours({ ...args, message: { key: 'k', value: 'v', partition: 0 } }), 0);
  });

  it('sends keyless records round robin over the partitions with a leader, or over all when none has one', () => {
    const partitioner = KeyHashPartitioner();
    const seen = new Map<number, number>();
    for (let i = 0; i < 400; i++) {
      const p = partitioner({ topic: 'a', partitionMetadata: metadata(5, [1, 3]), message: { value: 'v' } });
      seen.set(p, (seen.get(p) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), [0, 2, 4], 'never a partition without a leader');
    for (const count of seen.values()) assert.ok(count >= 133 && count <= 134, `an even share: ${count}`);
    const leaderless = new Set<number>();
    for (let i = 0; i < 8; i++) leaderless.add(partitioner({ topic: 'b', partitionMetadata: metadata(4, [0, 1, 2, 3]), message: { value: 'v', key: null } }));
    assert.deepEqual([...leaderless].sort(), [0, 1, 2, 3]);
  });
});
