// The TokenStore contract: a login token works until it expires or is revoked, and only for its user.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { hashToken, newToken, type TokenStore } from '../../auth/token-store.ts';
import { rand, sleep, type Fixture } from './support.ts';

export function tokenStoreContract(name: string, make: () => Promise<Fixture<TokenStore>>): void {
  describe(`TokenStore contract: ${name}`, () => {
    let f: Fixture<TokenStore>;
    let store: TokenStore;
    const user = () => `u${rand()}`;

    before(async () => {
      f = await make();
      store = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('looks up a saved token hash as its user', async () => {
      const [alice, bob] = [user(), user()];
      const a = hashToken(newToken());
      const b = hashToken(newToken());
      await store.save(a, alice, 3600);
      await store.save(b, bob, 3600);
      assert.equal(await store.lookup(a), alice);
      assert.equal(await store.lookup(b), bob);
    });

    it('answers null for a hash it never saw', async () => {
      assert.equal(await store.lookup(hashToken(newToken())), null);
      assert.equal(await store.lookup(''), null);
    });

    it('revokes one token and leaves the same user\'s other devices signed in', async () => {
      const u = user();
      const phone = hashToken(newToken());
      const laptop = hashToken(newToken());
      await store.save(phone, u, 3600);
      await store.save(laptop, u, 3600);
      await store.revoke(phone);
      assert.equal(await store.lookup(phone), null);
      assert.equal(await store.lookup(laptop), u);
      await store.revoke(phone); // twice is fine
      await store.revoke(hashToken(newToken())); // unknown is fine
      assert.equal(await store.lookup(laptop), u);
    });

    it('forgets a token after its ttl, and only that token', async () => {
      const u = user();
      const short = hashToken(newToken());
      const long = hashToken(newToken());
      await store.save(short, u, 1);
      await store.save(long, u, 60);
      assert.equal(await store.lookup(short), u, 'alive before its ttl');
      await sleep(1200);
      assert.equal(await store.lookup(short), null, 'gone after its ttl');
      assert.equal(await store.lookup(long), u, 'a longer ttl is unaffected');
    });

    it('lets a re-save replace the user and the ttl', async () => {
      const h = hashToken(newToken());
      const [first, second] = [user(), user()];
      await store.save(h, first, 1);
      await store.save(h, second, 60);
      await sleep(1200);
      assert.equal(await store.lookup(h), second);
    });
  });
}
