// The Dedupe contract: a resent (sender, cid) gets the first acceptance back instead of a second delivery.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Dedupe } from '../../broker/dedupe.ts';
import { rand, sleep, type Fixture } from './support.ts';

const DAY = 86_400;

export function dedupeContract(name: string, make: () => Promise<Fixture<Dedupe>>): void {
  describe(`Dedupe contract: ${name}`, () => {
    let f: Fixture<Dedupe>;
    let dedupe: Dedupe;
    const sender = () => `u${rand()}`;
    const cid = () => `c-${rand()}`;
    const accepted = () => `${BigInt('0x' + rand(7))}:${Date.now()}`;

    before(async () => {
      f = await make();
      dedupe = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('claims a new (sender, cid) and hands the first value back to every later claim', async () => {
      const [s, c, first, second] = [sender(), cid(), accepted(), accepted()];
      assert.equal(await dedupe.claim(s, c, first, DAY), null);
      assert.equal(await dedupe.claim(s, c, second, DAY), first);
      assert.equal(await dedupe.claim(s, c, accepted(), DAY), first, 'a later claim does not overwrite');
    });

    it('keeps different cids of one sender, and one cid of different senders, apart', async () => {
      const [alice, bob, c] = [sender(), sender(), cid()];
      const v = accepted();
      assert.equal(await dedupe.claim(alice, c, v, DAY), null);
      assert.equal(await dedupe.claim(alice, cid(), accepted(), DAY), null, 'another cid of the same sender');
      assert.equal(await dedupe.claim(bob, c, accepted(), DAY), null, 'the same cid from another sender');
      assert.equal(await dedupe.claim(alice, c, accepted(), DAY), v);
    });

    it('makes a released claim claimable again, with the new value', async () => {
      const [s, c, first, second] = [sender(), cid(), accepted(), accepted()];
      await dedupe.claim(s, c, first, DAY);
      await dedupe.release(s, c);
      assert.equal(await dedupe.claim(s, c, second, DAY), null);
      assert.equal(await dedupe.claim(s, c, accepted(), DAY), second);
      await dedupe.release(sender(), cid()); // releasing what was never claimed is fine
    });

    it('lets exactly one of concurrent claims win; the rest see its value', async () => {
      const [s, c] = [sender(), cid()];
      const values = Array.from({ length: 10 }, accepted);
      const results = await Promise.all(values.map((v) => dedupe.claim(s, c, v, DAY)));
      const winners = results.flatMap((r, i) => (r === null ? [values[i]] : []));
      assert.equal(winners.length, 1, 'exactly one claim wins');
      for (const r of results) if (r !== null) assert.equal(r, winners[0]);
    });

    it('forgets a claim after its ttl', async () => {
      const [s, c, first, second] = [sender(), cid(), accepted(), accepted()];
      const [s2, c2, kept] = [sender(), cid(), accepted()];
      assert.equal(await dedupe.claim(s, c, first, 1), null);
      await dedupe.claim(s2, c2, kept, 60);
      await sleep(1200);
      assert.equal(await dedupe.claim(s, c, second, DAY), null, 'claimable again after the ttl');
      assert.equal(await dedupe.claim(s2, c2, accepted(), DAY), kept, 'a longer ttl is unaffected');
    });

    it('keeps values byte-exact', async () => {
      const [s, c] = [sender(), cid()];
      const value = '7193846519238656 1718000000000 ünï 🌸 "quoted" \\ :';
      await dedupe.claim(s, c, value, DAY);
      assert.equal(await dedupe.claim(s, c, 'other', DAY), value);
    });
  });
}
