// One user's queue in the embedded offline queue (broker/user-queue.ts): the same answers as the Map of id to
// payload it replaced (insertion order, replace in place, remove anywhere), short and long (indexed), with a
// message that is never acknowledged, and without new storage per message once it has its size.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { UserQueue } from '../broker/user-queue.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function sameAs(q: UserQueue, model: Map<string, string>, where: string): void {
  assert.equal(q.size, model.size, `${where}: size`);
  assert.deepEqual([...q.entries()], [...model.entries()], `${where}: entries in order`);
  assert.equal(q.oldest(), model.keys().next().value, `${where}: oldest`);
  for (const id of model.keys()) assert.equal(q.has(id), true, `${where}: has ${id}`);
}

describe('UserQueue', () => {
  it('keeps messages in the order queued, replaces a payload in place, removes from anywhere', () => {
    const q = new UserQueue();
    assert.equal(q.oldest(), undefined);
    assert.equal(q.set('a', '1'), true);
    assert.equal(q.set('b', '2'), true);
    assert.equal(q.set('c', '3'), true);
    assert.equal(q.set('a', '1b'), false, 'queued already');
    assert.deepEqual([...q.entries()], [['a', '1b'], ['b', '2'], ['c', '3']]);
    assert.equal(q.delete('b'), true);
    assert.equal(q.delete('b'), false, 'removed once');
    assert.equal(q.delete('zz'), false, 'never queued');
    assert.deepEqual([...q.entries()], [['a', '1b'], ['c', '3']]);
    assert.equal(q.delete('a'), true);
    assert.equal(q.oldest(), 'c', 'the head moves past what was removed');
    assert.equal(q.delete('c'), true);
    assert.equal(q.size, 0);
    assert.deepEqual([...q.entries()], []);
    q.set('d', '4');
    assert.deepEqual([...q.entries()], [['d', '4']], 'usable once emptied');
  });

  for (const [name, seed, longest] of [['short', 1, 10], ['long (indexed)', 2, 3000]] as const) {
    it(`agrees with a Map through random queueing and removals: ${name}`, () => {
      const random = rng(seed);
      const q = new UserQueue();
      const model = new Map<string, string>();
      let n = 0;
      for (let step = 0; step < 30_000; step++) {
        const r = random();
        if ((r < 0.5 && model.size < longest) || model.size === 0) {
          const id = `m${n++}`;
          assert.equal(q.set(id, `p${step}`), true);
          model.set(id, `p${step}`);
        } else if (r < 0.55) {
          // The same id again (a replayed journal record): replaced where it is.
          const ids = [...model.keys()];
          const id = ids[Math.floor(random() * ids.length)];
          assert.equal(q.set(id, `r${step}`), false);
          model.set(id, `r${step}`);
        } else {
          // PUBACKs: mostly the oldest, sometimes any queued, sometimes an id that is not.
          const ids = [...model.keys()];
          const id = r < 0.85 ? ids[0] : r < 0.97 ? ids[Math.floor(random() * ids.length)] : `x${step}`;
          assert.equal(q.delete(id), model.delete(id), `step ${step}: delete ${id}`);
        }
        if (step % 1009 === 0) sameAs(q, model, `step ${step}`);
      }
      sameAs(q, model, 'end');
    });
  }

  it('does not grow behind a message that is never acknowledged', () => {
    const q = new UserQueue();
    q.set('stuck', 'never acked');
    for (let i = 0; i < 100_000; i++) {
      q.set(`m${i}`, 'x');
      assert.equal(q.delete(`m${i}`), true);
    }
    assert.deepEqual([...q.entries()], [['stuck', 'never acked']]);
    const slots = (q as unknown as { ids: unknown[] }).ids.length;
    assert.ok(slots <= 4, `the arrays hold ${slots} slots for one message`);
  });

  it('allocates no new storage per message once it has its size', () => {
    const q = new UserQueue();
    const storage = () => (q as unknown as { ids: unknown[] }).ids;
    q.set('warm', 'x');
    q.delete('warm');
    const first = storage();
    for (let i = 0; i < 10_000; i++) {
      q.set(`m${i}`, 'x');
      q.delete(`m${i}`);
    }
    assert.equal(storage(), first, 'the same arrays after 10,000 messages');
  });
  it('gives its messages as they are now: what it does afterwards does not show (a compaction\'s snapshot; copy on write)', () => {
    const q = new UserQueue();
    for (let i = 0; i < 40; i++) q.set(`m${i}`, `p${i}`);
    const before = [...q.entries()];
    const now = q.entriesNow();
    // Out-of-order removals, then messages that fill the arrays: the queue moves its slots (compact) and
    // replaces a payload, all before the copy is read.
    for (let i = 1; i < 40; i += 2) q.delete(`m${i}`);
    q.delete('m0');
    for (let i = 40; i < 80; i++) q.set(`m${i}`, `p${i}`);
    q.set('m2', 'replaced');
    assert.deepEqual([...now], before, 'the copy yields the queue as it was when taken');
    assert.notDeepEqual([...q.entries()], before);
    // A short queue emptied keeps its arrays and starts again at slot 0, where a copy still reads.
    const short = new UserQueue();
    short.set('a', '1');
    short.set('b', '2');
    const copy = short.entriesNow();
    short.delete('a');
    short.delete('b');
    short.set('c', '3');
    short.set('d', '4');
    assert.deepEqual([...copy], [['a', '1'], ['b', '2']]);
    assert.deepEqual([...short.entries()], [['c', '3'], ['d', '4']]);
    // Holes before the copy, then a message that makes the queue close them (its own compaction moves
    // messages to lower slots): the copy still reads each message once, where it was.
    const holey = new UserQueue();
    for (let i = 0; i < 32; i++) holey.set(`h${i}`, `p${i}`);
    for (let i = 1; i < 32; i += 2) holey.delete(`h${i}`);
    const beforeFill = [...holey.entries()];
    const holeyCopy = holey.entriesNow();
    // Read part of the way, as a compaction does a slice per turn.
    const readFirst = [holeyCopy.next().value, holeyCopy.next().value, holeyCopy.next().value];
    holey.set('h32', 'p32'); // the arrays are full and half empty: compact() runs first
    holey.delete('h0');
    assert.deepEqual([...readFirst, ...holeyCopy], beforeFill);
    assert.deepEqual([...holey.entries()], [...beforeFill.slice(1), ['h32', 'p32']]);
    // Once the copies are released, writes change the arrays in place again.
    holey.released();
    const kept = (holey as unknown as { ids: unknown[] }).ids;
    holey.delete('h2');
    holey.set('h2', 'again');
    assert.equal((holey as unknown as { ids: unknown[] }).ids, kept, 'no copy once released');
    // Two copies at once, and a queue that only grows: no copy of the arrays is needed for it.
    const growing = new UserQueue();
    growing.set('x', '1');
    const first = growing.entriesNow();
    const storage = (growing as unknown as { ids: unknown[] }).ids;
    growing.set('y', '2');
    const second = growing.entriesNow();
    growing.set('z', '3');
    assert.equal((growing as unknown as { ids: unknown[] }).ids, storage, 'new messages go after what the copies read');
    growing.delete('x');
    assert.deepEqual([...first], [['x', '1']]);
    assert.deepEqual([...second], [['x', '1'], ['y', '2']]);
  });
});
