// The Directory contract: what sign-in and registration rely on, whichever backend holds the users.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Directory } from '../../auth/directory.ts';
import { ParleyError } from '../../common/errors.ts';
import { USER_ID } from '../../common/envelope.ts';
import { rand, type Fixture } from './support.ts';

const isConflict = (err: unknown) => err instanceof ParleyError && err.code === 'conflict';

export function directoryContract(name: string, make: () => Promise<Fixture<Directory>>): void {
  describe(`Directory contract: ${name}`, () => {
    let f: Fixture<Directory>;
    let dir: Directory;
    // Every name of this run shares a random tag, so runs never collide on a shared server.
    const tag = `t${rand(3)}`;
    const username = (label: string) => {
      const u = `${tag}-${label}-${rand(2)}`;
      assert.match(u, USER_ID);
      return u;
    };

    before(async () => {
      f = await make();
      dir = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('answers ping', async () => {
      assert.equal(await dir.ping(), true);
    });

    it('verifies a created user: ok, wrong_password, unknown', async () => {
      const u = username('ann');
      await dir.create({ username: u, password: 'correct horse battery', displayName: 'Ann' });
      assert.equal(await dir.verify(u, 'correct horse battery'), 'ok');
      assert.equal(await dir.verify(u, 'correct horse batter'), 'wrong_password');
      assert.equal(await dir.verify(u, 'Correct horse battery'), 'wrong_password');
      assert.equal(await dir.verify(u, 'correct horse battery '), 'wrong_password');
      assert.equal(await dir.verify(username('nobody'), 'correct horse battery'), 'unknown');
    });

    it('finds a user with the display name it was created with; null for an unknown name', async () => {
      const u = username('zoe');
      const displayName = 'Zoë Ünïcødé 🌸 李小龍';
      await dir.create({ username: u, password: 'pw-zoe-1', displayName });
      assert.deepEqual(await dir.find(u), { username: u, displayName });
      assert.equal(await dir.find(username('ghost')), null);
    });

    it('refuses a taken name with ParleyError conflict and keeps the first password', async () => {
      const u = username('dup');
      await dir.create({ username: u, password: 'first-password', displayName: 'First' });
      await assert.rejects(dir.create({ username: u, password: 'second-password', displayName: 'Second' }), isConflict);
      assert.equal(await dir.verify(u, 'first-password'), 'ok');
      assert.equal(await dir.verify(u, 'second-password'), 'wrong_password');
      assert.equal((await dir.find(u))?.displayName, 'First');
    });

    it('lets exactly one of concurrent registrations of one name win', async () => {
      const u = username('race');
      const results = await Promise.allSettled([1, 2, 3].map((i) => dir.create({ username: u, password: `pw-${i}-race`, displayName: `Racer ${i}` })));
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, 'one registration succeeds');
      for (const r of lost) assert.ok(isConflict(r.reason), `the others get conflict, not ${String(r.reason)}`);
      const winner = results.findIndex((r) => r.status === 'fulfilled') + 1;
      assert.equal(await dir.verify(u, `pw-${winner}-race`), 'ok');
      assert.equal((await dir.find(u))?.displayName, `Racer ${winner}`);
    });

    it('never accepts an empty password (an LDAP unauthenticated bind)', async () => {
      const u = username('empty');
      await dir.create({ username: u, password: 'not-empty', displayName: 'Empty' });
      assert.equal(await dir.verify(u, ''), 'wrong_password');
      assert.equal(await dir.verify(username('nobody'), ''), 'unknown');
    });

    it('stores passwords with unicode and LDAP/DN/filter special characters exactly', async () => {
      const passwords = [
        'pä$$wörd ✓ 🔐 密码',
        '*)(uid=*)(|(objectClass=*)',
        '\\2a\\00 \\5c,+"<>;#= ',
        ' leading and trailing spaces ',
        '{SSHA}abc=',
        'x'.repeat(200),
      ];
      for (const [i, password] of passwords.entries()) {
        const u = username(`pw${i}`);
        await dir.create({ username: u, password, displayName: `Pw ${i}` });
        assert.equal(await dir.verify(u, password), 'ok', `password #${i} ${JSON.stringify(password)}`);
        assert.equal(await dir.verify(u, password.slice(0, -1)), 'wrong_password', `prefix of password #${i}`);
        assert.equal(await dir.verify(u, '*'), 'wrong_password', `wildcard against password #${i}`);
      }
    });

    it('treats hostile names as plain names: no wildcard or filter injection reaches another user', async () => {
      const victim = username('victim');
      const password = 'victim-password';
      await dir.create({ username: victim, password, displayName: 'Victim' });
      // Each of these would match the victim if it reached an LDAP filter unescaped.
      const hostile = [
        '*',
        '*)(uid=*',
        'a)(|(uid=*',
        '*)(|(uid=*',
        `${victim})(uid=*`,
        `${victim.slice(0, 6)}*`,
        `*${victim.slice(-5)}`,
        `${victim}*`,
        'admin\\2a',
        `${victim.slice(0, 6)}\\2a`,
        '(uid=*)',
        `${victim},ou=users`,
        '__proto__',
        'constructor',
      ];
      for (const h of hostile) {
        assert.equal(await dir.find(h), null, `find(${JSON.stringify(h)})`);
        assert.equal(await dir.verify(h, password), 'unknown', `verify(${JSON.stringify(h)}, victim's password)`);
        assert.equal(await dir.verify(h, ''), 'unknown', `verify(${JSON.stringify(h)}, '')`);
      }
      assert.equal(await dir.verify(victim, password), 'ok', 'the victim is untouched');
    });

    it('keeps users across a reopen (a new instance on the same storage)', async (t) => {
      if (!f.reopen) return t.skip('this fixture has no reopen');
      const u = username('durable');
      await dir.create({ username: u, password: 'survives ✓', displayName: 'Dürable' });
      dir = await f.reopen();
      assert.equal(await dir.verify(u, 'survives ✓'), 'ok');
      assert.equal(await dir.verify(u, 'survives'), 'wrong_password');
      assert.deepEqual(await dir.find(u), { username: u, displayName: 'Dürable' });
      await assert.rejects(dir.create({ username: u, password: 'again', displayName: 'Again' }), isConflict);
    });
  });
}
