// test/stack's Kafka cluster id: the storage tool's argument parser takes an id that begins with '-' for an
// option, which failed one CI run in 64 at `stack up` ("argument --cluster-id/-t: expected one argument").
import assert from './helpers/assert.ts';
import { test } from 'node:test';
import { newClusterId } from './stack/kafka.ts';

test('a KRaft cluster id never begins with "-": one that would is drawn again', () => {
  const leadingDash = Buffer.alloc(16, 0xf8); // 0b111110… is 62, '-' in URL-safe base64
  const plain = Buffer.alloc(16, 0x41);
  assert.ok(leadingDash.toString('base64url').startsWith('-'), 'the first draw would begin with "-"');
  const draws = [leadingDash, leadingDash, plain];
  let n = 0;
  assert.equal(newClusterId(() => draws[n++]), plain.toString('base64url'));
  assert.equal(n, 3, 'drew until an id did not begin with "-"');
});

test('KRaft cluster ids are 22 characters of URL-safe base64, random, and none begins with "-"', () => {
  const ids = Array.from({ length: 2000 }, () => newClusterId());
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  assert.equal(new Set(ids).size, ids.length);
});
