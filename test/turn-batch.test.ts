// TurnBatch: the calls of one event-loop turn go out as one request, in call order; a full batch goes at
// once; a request's failure (thrown or rejected, or a wrong number of answers) fails its items only.
import assert from './helpers/assert.ts';
import { describe, it } from 'node:test';
import { TurnBatch } from '../common/turn-batch.ts';

describe('TurnBatch', () => {
  it('sends one turn’s calls together, in call order, and answers each its own', async () => {
    const sent: number[][] = [];
    const b = new TurnBatch<number, number>(async (xs) => (sent.push(xs), xs.map((x) => x * 10)));
    const answers = Promise.all([b.add(1), b.add(2), b.add(3)]);
    assert.deepEqual(sent, [], 'nothing sent before the turn ends');
    assert.deepEqual(await answers, [10, 20, 30]);
    assert.deepEqual(await b.add(4), 40);
    assert.deepEqual(sent, [[1, 2, 3], [4]]);
  });

  it('sends a full batch at once, and the rest at the turn’s end', async () => {
    const sent: number[][] = [];
    const b = new TurnBatch<number, number>(async (xs) => (sent.push(xs), xs), 2);
    const answers = Promise.all([1, 2, 3, 4, 5].map((x) => b.add(x)));
    assert.deepEqual(sent, [[1, 2], [3, 4]], 'full batches go synchronously');
    assert.deepEqual(await answers, [1, 2, 3, 4, 5]);
    assert.deepEqual(sent, [[1, 2], [3, 4], [5]]);
  });

  it('fails an item answered with an Error alone', async () => {
    const b = new TurnBatch<number, number>(async (xs) => xs.map((x) => (x === 2 ? new Error(`refused ${x}`) : x)));
    const [one, two, three] = [b.add(1), b.add(2), b.add(3)];
    assert.equal(await one, 1);
    await assert.rejects(two, /refused 2/);
    assert.equal(await three, 3);
  });

  it('fails the items of a failed request, not the next batch', async () => {
    let calls = 0;
    const b = new TurnBatch<string, string>((xs) => {
      calls++;
      if (calls === 1) throw new Error('thrown');
      if (calls === 2) return Promise.reject(new Error('rejected'));
      if (calls === 3) return Promise.resolve(['one answer']);
      return Promise.resolve(xs.map((x) => x.toUpperCase()));
    });
    await assert.rejects(Promise.all([b.add('a'), b.add('b')]), /thrown/);
    await assert.rejects(b.add('c'), /rejected/);
    const short = [b.add('d'), b.add('e')];
    for (const p of short) await assert.rejects(p, /answered 1 results for 2 items/);
    assert.deepEqual(await Promise.all([b.add('f'), b.add('g')]), ['F', 'G']);
  });

  it('with a linger, gathers the calls of many turns until the linger ends, a full batch or flush()', async () => {
    const sent: number[][] = [];
    const b = new TurnBatch<number, number>(async (xs) => (sent.push(xs), xs), 3, 60_000);
    const first = [b.add(1)];
    await new Promise((r) => setImmediate(r));
    first.push(b.add(2));
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(sent, [], 'still lingering after two turns');
    first.push(b.add(3));
    assert.deepEqual(sent, [[1, 2, 3]], 'a full batch goes at once');
    assert.deepEqual(await Promise.all(first), [1, 2, 3]);
    const second = [b.add(4), b.add(5)];
    await new Promise((r) => setImmediate(r));
    b.flush();
    assert.deepEqual(await Promise.all(second), [4, 5]);
    assert.deepEqual(sent, [[1, 2, 3], [4, 5]]);
    // Without a full batch or a flush, the linger's end sends it.
    const alone: number[][] = [];
    const short = new TurnBatch<number, number>(async (xs) => (alone.push(xs), xs), 128, 20);
    assert.equal(await short.add(6), 6, 'a lingering call goes by itself when its linger ends');
    assert.deepEqual(alone, [[6]]);
  });
});
