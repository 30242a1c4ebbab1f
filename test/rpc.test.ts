// Calls between threads (common/rpc.ts), over a real MessageChannel: errors keep their class (callers
// branch on ParleyError codes and RangeError), values that cannot be cloned fail that call with a clear
// error and nothing else, unknown methods are refused, and a closed endpoint fails pending and later calls.
import assert from './helpers/assert.ts';
import { after, describe, it } from 'node:test';
import { ParleyError } from '../common/errors.ts';
import { rpcPair } from './contracts/support.ts';

describe('RPC between threads', () => {
  const pair = rpcPair();
  const { serving, calling } = pair;
  serving.serve('echo', (x: unknown) => x);
  serving.serve('refuse', () => {
    throw new ParleyError('bad_request', 'no such page');
  });
  serving.serve('range', () => {
    throw new RangeError('id out of range');
  });
  serving.serve('uncloneable', () => () => 1);
  serving.serve('never', () => new Promise(() => {}));
  after(() => pair.close());

  it('returns structured clones of values', async () => {
    const value = { a: [1, 2, { b: 'ünï 🌸\u0000' }], big: 'x'.repeat(100_000), when: new Date(5) };
    assert.deepEqual(await calling.call('echo', value), value);
  });

  it('keeps the class of an error: ParleyError with its code, RangeError', async () => {
    await assert.rejects(calling.call('refuse'), (e: unknown) => e instanceof ParleyError && e.code === 'bad_request' && e.message === 'no such page');
    await assert.rejects(calling.call('range'), (e: unknown) => e instanceof RangeError && e.message === 'id out of range');
  });

  it('fails one call, clearly, on what cannot be cloned, and keeps serving', async () => {
    await assert.rejects(calling.call('uncloneable'), /could not be cloned/);
    await assert.rejects(calling.call('echo', () => 1), /could not be cloned/);
    assert.equal(await calling.call('echo', 7), 7);
  });

  it('refuses a method nobody serves, and serving one twice', async () => {
    await assert.rejects(calling.call('nope'), /rpc method nope is not served here/);
    assert.throws(() => serving.serve('echo', () => 0), /already served/);
  });

  it('fails pending and later calls with unavailable once closed', async () => {
    const other = rpcPair();
    other.serving.serve('never', () => new Promise(() => {}));
    const pending = other.calling.call('never');
    other.close();
    await assert.rejects(pending, (e: unknown) => e instanceof ParleyError && e.code === 'unavailable');
    await assert.rejects(other.calling.call('never'), (e: unknown) => e instanceof ParleyError && e.code === 'unavailable');
    assert.equal(other.calling.closed, true);
  });
});
