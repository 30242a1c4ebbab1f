// The Throttle contract: `limit` failures within any span of the window (a sliding window, not one fixed at
// the first failure) lock the key for the whole window from the failure that reached the limit; failures
// older than the window do not count; concurrent failures all count; reset forgets failures and lock.
// Windows of a second keep it fast; each timed check has at least 200 ms either side of where it flips.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Throttle } from '../../auth/throttle.ts';
import { rand, sleep, type Fixture } from './support.ts';

const until = (t: number) => sleep(Math.max(0, t - Date.now()));

export function throttleContract(name: string, make: () => Promise<Fixture<Throttle>>): void {
  describe(`Throttle contract: ${name}`, () => {
    let f: Fixture<Throttle>;
    let throttle: Throttle;
    const key = (kind = 'user') => `${kind}:${rand()}`;
    const fails = (k: string, n: number, limit: number, windowMs = 60_000) =>
      Promise.all(Array.from({ length: n }, () => throttle.fail(k, { limit, windowMs })));

    before(async () => {
      f = await make();
      throttle = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('locks a key at the limit-th failure and not before, keeping keys apart', async () => {
      const [k, other] = [key(), key('addr')];
      assert.equal(await throttle.locked(k), false, 'never failed');
      assert.equal(await throttle.fail(k, { limit: 3, windowMs: 60_000 }), false);
      assert.equal(await throttle.fail(k, { limit: 3, windowMs: 60_000 }), false);
      assert.equal(await throttle.fail(other, { limit: 3, windowMs: 60_000 }), false);
      assert.equal(await throttle.locked(k), false, 'two of three');
      assert.equal(await throttle.fail(k, { limit: 3, windowMs: 60_000 }), true, 'the third locks');
      assert.equal(await throttle.locked(k), true);
      assert.equal(await throttle.locked(other), false, 'another key is not locked');
      assert.equal(await throttle.fail(key(), { limit: 1, windowMs: 60_000 }), true, 'a limit of one locks at once');
      // Keys are taken whole: ones that look like a backend's own names or syntax touch nothing else.
      for (const odd of [`lock:${k}`, `fails:${k}`, `${k}*`, `${k} \r\n*1 "{}"`]) assert.equal(await throttle.fail(odd, { limit: 1, windowMs: 60_000 }), true);
      await throttle.reset(`lock:${k}`);
      assert.equal(await throttle.locked(k), true, 'still locked after the odd keys');
    });

    it('counts failures within any span of the window, not in windows fixed at the first failure', async () => {
      // PROTOCOL.md's "10 within 15 min" straddling two fixed windows: 1 + 1 in the first, 2 in the next.
      const k = key();
      const rule = { limit: 3, windowMs: 1000 };
      const t0 = Date.now();
      assert.equal(await throttle.fail(k, rule), false);
      await until(t0 + 700);
      const t1 = Date.now();
      assert.equal(await throttle.fail(k, rule), false);
      await until(t0 + 1200); // a window fixed at the first failure has ended
      assert.equal(await throttle.fail(k, rule), false, 'the first failure has aged out: two within the window');
      assert.equal(await throttle.fail(k, rule), true, `three within ${Date.now() - t1} ms lock`);
      assert.equal(await throttle.locked(k), true);
    });

    it('keeps the lock for the whole window from the locking failure, after the earlier failures age out', async () => {
      const k = key();
      const rule = { limit: 3, windowMs: 1000 };
      const t0 = Date.now();
      await throttle.fail(k, rule);
      await until(t0 + 500);
      await throttle.fail(k, rule);
      assert.equal(await throttle.fail(k, rule), true);
      const lockedAt = Date.now();
      await until(lockedAt + 300);
      assert.equal(await throttle.fail(k, rule), true, 'a failure while locked is refused too');
      await until(lockedAt + 750); // the first failure is 1.25 s old; the lock has 250 ms to go
      assert.equal(await throttle.locked(k), true, 'locked for the window from the third failure, not from the first');
      await until(lockedAt + 1250);
      assert.equal(await throttle.locked(k), false, 'the lock is over, not extended by the failure during it');
      assert.equal(await throttle.fail(k, rule), false, 'counting starts afresh: the failure during the lock did not count');
      assert.equal(await throttle.locked(k), false);
    });

    it('does not count failures older than the window, however often newer ones come', async () => {
      const k = key();
      const rule = { limit: 3, windowMs: 1000 };
      const t0 = Date.now();
      assert.equal(await throttle.fail(k, rule), false);
      await until(t0 + 600);
      assert.equal(await throttle.fail(k, rule), false);
      await until(t0 + 1200);
      assert.equal(await throttle.fail(k, rule), false, 'only two of the three are within the window');
      assert.equal(await throttle.locked(k), false);
    });

    it('counts every one of concurrent failures', async () => {
      const k = key();
      assert.deepEqual(await fails(k, 24, 25), Array(24).fill(false));
      assert.equal(await throttle.locked(k), false);
      assert.equal(await throttle.fail(k, { limit: 25, windowMs: 60_000 }), true, 'the 25th locks');
      const racing = key();
      const verdicts = await fails(racing, 40, 25);
      assert.equal(verdicts.filter((v) => !v).length, 24, 'of 40 at once, 24 before the lock and the rest refused');
      assert.equal(await throttle.locked(racing), true);
    });

    it('forgets the failures and lifts the lock on reset', async () => {
      const k = key();
      await fails(k, 2, 3);
      await throttle.reset(k);
      assert.deepEqual(await fails(k, 2, 3), [false, false], 'the two before the reset are forgotten');
      assert.equal(await throttle.fail(k, { limit: 3, windowMs: 60_000 }), true);
      await throttle.reset(k);
      assert.equal(await throttle.locked(k), false, 'the lock is lifted');
      assert.equal(await throttle.fail(k, { limit: 3, windowMs: 60_000 }), false, 'and counting starts again');
      await throttle.reset(key()); // a key never failed is fine
    });
  });
}
