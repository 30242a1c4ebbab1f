// The Throttle contract: failures counted per key in a fixed window that starts at the first failure.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Throttle } from '../../auth/throttle.ts';
import { rand, sleep, type Fixture } from './support.ts';

export function throttleContract(name: string, make: () => Promise<Fixture<Throttle>>): void {
  describe(`Throttle contract: ${name}`, () => {
    let f: Fixture<Throttle>;
    let throttle: Throttle;
    const key = (kind = 'user') => `${kind}:${rand()}`;

    before(async () => {
      f = await make();
      throttle = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('counts hits up and reads the count', async () => {
      const k = key();
      assert.equal(await throttle.count(k), 0, 'no hits yet');
      assert.equal(await throttle.hit(k, 60), 1);
      assert.equal(await throttle.hit(k, 60), 2);
      assert.equal(await throttle.hit(k, 60), 3);
      assert.equal(await throttle.count(k), 3);
      assert.equal(await throttle.count(k), 3, 'count does not hit');
    });

    it('resets a key to zero, and counts again from one', async () => {
      const k = key();
      await throttle.hit(k, 60);
      await throttle.hit(k, 60);
      await throttle.reset(k);
      assert.equal(await throttle.count(k), 0);
      assert.equal(await throttle.hit(k, 60), 1);
      await throttle.reset(key()); // a key never hit is fine
    });

    it('keeps keys independent', async () => {
      const [account, address] = [key('user'), key('ip')];
      await throttle.hit(account, 60);
      await throttle.hit(account, 60);
      assert.equal(await throttle.hit(address, 60), 1);
      assert.equal(await throttle.count(account), 2);
      await throttle.reset(account);
      assert.equal(await throttle.count(address), 1);
    });

    it('counts every one of concurrent hits', async () => {
      const k = key();
      const counts = await Promise.all(Array.from({ length: 25 }, () => throttle.hit(k, 60)));
      assert.deepEqual([...counts].sort((a, b) => a - b), Array.from({ length: 25 }, (_, i) => i + 1));
      assert.equal(await throttle.count(k), 25);
    });

    it('forgets the hits when the window ends', async () => {
      const k = key();
      await throttle.hit(k, 1);
      await throttle.hit(k, 1);
      await sleep(1200);
      assert.equal(await throttle.count(k), 0);
      assert.equal(await throttle.hit(k, 1), 1, 'a new window starts at one');
    });

    it('keeps the window fixed from the first hit: later hits do not extend it', async () => {
      const k = key();
      await throttle.hit(k, 1);
      await sleep(600);
      assert.equal(await throttle.hit(k, 1), 2);
      await sleep(600);
      assert.equal(await throttle.count(k), 0, 'the window started at the first hit, 1.2 s ago');
    });
  });
}
