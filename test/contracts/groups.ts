// The Groups contract: who is in which group, with which role since when. A group is created once (its id
// stays taken), members are added, re-roled and removed, and every answer about a group that does not
// exist is "nothing". When the owner leaves, ownership passes on in the same atomic step, so a group with
// members always has exactly one owner; one whose last member left has ended and takes no one. A backend
// with `reopen` must keep all of it across a restart.
//
// Ids are what callers let through: group ids of GROUP_ID (`^[A-Za-z0-9_-]{1,64}$`, checked by
// broker/group-routes.ts and generated as base64url by broker/group-service.ts) and user ids of USER_ID
// (`^[a-z0-9][a-z0-9._-]{1,31}$`); names are 1 to 100 characters without control characters. The suite
// tries the edges of those sets, not ids no caller can pass.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Group, Groups, Member, Role } from '../../broker/groups.ts';
import { rand, type Fixture } from './support.ts';

export type GroupsFactory = () => Promise<Fixture<Groups>>;

/** Members in a fixed order: the port promises who is in a group, not in which order they are listed. */
const byUser = (ms: readonly Member[]) => [...ms].sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
const sorted = (ids: readonly string[]) => [...ids].sort();
const normal = (g: Group | null) => (g ? { ...g, members: byUser(g.members) } : g);

export function groupsContract(name: string, make: GroupsFactory): void {
  describe(`Groups contract: ${name}`, () => {
    let f: Fixture<Groups>;
    let groups: Groups;
    const groupId = () => rand(9).replace(/^(.{4})/, '$1_-'); // GROUP_ID characters, as base64url would give
    const user = () => `u${rand()}`;
    // A distinct, recognisable time per call, so a timestamp can only come from the call that set it.
    let clock = Date.UTC(2030, 0, 1, 12, 0, 0, 123);
    const tick = () => (clock += 1001);
    const member = (userId: string, role: Role = 'member'): Member => ({ userId, role, joinedAt: tick() });
    /** A group as GroupService.create makes it: the owner first, with role owner, everyone joined at creation. */
    const group = (opts: { id?: string; name?: string; owner?: string; others?: string[] } = {}): Group => {
      const owner = opts.owner ?? user();
      const createdAt = tick();
      return {
        id: opts.id ?? groupId(),
        name: opts.name ?? `Group ${rand(2)}`,
        owner,
        createdAt,
        members: [owner, ...(opts.others ?? [user(), user()])].map((userId) => ({ userId, role: userId === owner ? 'owner' : 'member', joinedAt: createdAt })),
      };
    };

    before(async () => {
      f = await make();
      groups = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('creates a group and gets it back whole: name, owner, createdAt, every member with role and joinedAt', async () => {
      const g = group();
      g.members.push(member(user(), 'admin'));
      assert.equal(await groups.create(g), true);
      const got = await groups.get(g.id);
      assert.deepEqual(normal(got), normal(g));
      assert.equal(typeof got!.createdAt, 'number');
      assert.equal(typeof got!.members[0].joinedAt, 'number');
    });

    it('lists the member ids and answers each one\'s role; null for anyone else', async () => {
      const [owner, admin, plain, outsider] = [user(), user(), user(), user()];
      const g = group({ owner, others: [plain] });
      g.members.push(member(admin, 'admin'));
      await groups.create(g);
      assert.deepEqual(sorted(await groups.members(g.id)), sorted([owner, admin, plain]));
      assert.equal(await groups.role(g.id, owner), 'owner');
      assert.equal(await groups.role(g.id, admin), 'admin');
      assert.equal(await groups.role(g.id, plain), 'member');
      assert.equal(await groups.role(g.id, outsider), null);
      assert.equal(await groups.role(groupId(), owner), null, 'a member of one group has no role in another');
    });

    it('refuses to create an id that exists, and keeps the first group exactly as it was', async () => {
      const first = group();
      assert.equal(await groups.create(first), true);
      const second = group({ id: first.id, name: 'The usurper' });
      assert.equal(await groups.create(second), false);
      assert.deepEqual(normal(await groups.get(first.id)), normal(first), 'nothing of the second is merged in');
      assert.deepEqual(sorted(await groups.members(first.id)), sorted(first.members.map((m) => m.userId)));
    });

    it('lets exactly one of concurrent creates of one id win, and keeps the winner whole', async () => {
      const id = groupId();
      const candidates = Array.from({ length: 8 }, (_, i) => group({ id, name: `candidate ${i}` }));
      const results = await Promise.all(candidates.map((g) => groups.create(g)));
      assert.equal(results.filter(Boolean).length, 1, 'exactly one create wins');
      const winner = candidates[results.indexOf(true)];
      assert.deepEqual(normal(await groups.get(id)), normal(winner));
    });

    it('answers "nothing" for a group that does not exist', async () => {
      const id = groupId();
      assert.equal(await groups.get(id), null);
      assert.deepEqual(await groups.members(id), []);
      assert.equal(await groups.role(id, user()), null);
      assert.equal(await groups.removeMember(id, user()), false);
      assert.equal(await groups.get(id), null, 'asking created nothing');
    });

    it('adds a member and returns the count after; adding again re-roles without counting twice', async () => {
      const g = group({ others: [user()] }); // owner and one member
      await groups.create(g);
      const newcomer = member(user());
      assert.equal(await groups.addMember(g.id, newcomer), 3);
      assert.equal(await groups.role(g.id, newcomer.userId), 'member');
      assert.deepEqual(sorted(await groups.members(g.id)), sorted([...g.members.map((m) => m.userId), newcomer.userId]));

      const promoted: Member = { ...newcomer, role: 'admin' };
      assert.equal(await groups.addMember(g.id, promoted), 3, 'a re-role is not a new member');
      assert.equal(await groups.role(g.id, newcomer.userId), 'admin');
      const demoted: Member = { userId: g.members[1].userId, role: 'member', joinedAt: tick() };
      assert.equal(await groups.addMember(g.id, demoted), 3);
      const got = await groups.get(g.id);
      assert.equal(got!.members.length, 3);
      assert.deepEqual(
        got!.members.find((m) => m.userId === newcomer.userId),
        promoted,
      );
      assert.deepEqual(
        got!.members.find((m) => m.userId === demoted.userId),
        demoted,
        'the member is stored as given, joinedAt included',
      );
      assert.equal(got!.name, g.name, 'adding leaves the rest of the group alone');
      assert.equal(got!.owner, g.owner);
      assert.equal(got!.createdAt, g.createdAt);
    });

    it('adds members concurrently without losing one, each answer counting its own add', async () => {
      const g = group({ others: [] });
      await groups.create(g);
      const newcomers = Array.from({ length: 20 }, () => member(user()));
      const counts = await Promise.all(newcomers.map((m) => groups.addMember(g.id, m)));
      assert.deepEqual(
        [...counts].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i + 2),
      );
      assert.deepEqual(sorted(await groups.members(g.id)), sorted([g.owner, ...newcomers.map((m) => m.userId)]));
    });

    it('removes a member once (true, then false), leaving the others and the rest of the group', async () => {
      const [a, b] = [user(), user()];
      const g = group({ others: [a, b] });
      await groups.create(g);
      assert.equal(await groups.removeMember(g.id, a), true);
      assert.equal(await groups.removeMember(g.id, a), false, 'a second removal finds no one');
      assert.equal(await groups.removeMember(g.id, user()), false, 'a user who never was a member');
      assert.deepEqual(sorted(await groups.members(g.id)), sorted([g.owner, b]));
      assert.equal(await groups.role(g.id, a), null);
      const got = await groups.get(g.id);
      assert.deepEqual(byUser(got!.members), byUser(g.members.filter((m) => m.userId !== a)));
      assert.equal(got!.name, g.name);

      const back = member(a);
      assert.equal(await groups.addMember(g.id, back), 3, 'a removed member can join again');
      assert.deepEqual(
        (await groups.get(g.id))!.members.find((m) => m.userId === a),
        back,
        'with the new joinedAt, not the old one',
      );
    });

    it('hands the owner\'s role to the longest-standing admin when the owner leaves, over earlier plain members', async () => {
      const [early, admin1, admin2] = [user(), user(), user()];
      const g = group({ others: [early] });
      await groups.create(g);
      const a1 = member(admin1, 'admin');
      await groups.addMember(g.id, a1);
      await groups.addMember(g.id, member(admin2, 'admin')); // later than admin1
      assert.equal(await groups.removeMember(g.id, g.owner), true);
      const got = (await groups.get(g.id))!;
      assert.equal(got.owner, admin1);
      assert.deepEqual(got.members.find((m) => m.userId === admin1), { ...a1, role: 'owner' }, 'joinedAt is kept');
      assert.equal(await groups.role(g.id, admin1), 'owner');
      assert.equal(await groups.role(g.id, admin2), 'admin');
      assert.equal(await groups.role(g.id, early), 'member');
      assert.equal(await groups.role(g.id, g.owner), null);
      assert.deepEqual(sorted(await groups.members(g.id)), sorted([early, admin1, admin2]));
      assert.equal(got.name, g.name);
      assert.equal(got.createdAt, g.createdAt);
    });

    it('hands it to the longest-standing member when there is no admin, equal joinedAt going to the smaller id in byte order', async () => {
      const p = `t${rand()}`;
      // Byte order puts "-" before "." before letters; a locale's collation (which ignores punctuation) need not.
      const [dash, dot, letter] = [`${p}-z`, `${p}.a`, `${p}a`];
      const g = group({ others: [letter, dot, dash] });
      const late = member(user());
      await groups.create(g);
      await groups.addMember(g.id, late);
      assert.equal(await groups.removeMember(g.id, g.owner), true);
      assert.equal((await groups.get(g.id))!.owner, dash);
      assert.equal(await groups.role(g.id, dash), 'owner');
      assert.equal(await groups.removeMember(g.id, dash), true, 'the new owner may leave in turn');
      assert.equal((await groups.get(g.id))!.owner, dot);
      assert.equal(await groups.removeMember(g.id, dot), true);
      assert.equal(await groups.removeMember(g.id, letter), true);
      assert.equal((await groups.get(g.id))!.owner, late.userId, 'the one who joined last, when no one else is left');
      assert.deepEqual((await groups.get(g.id))!.members, [{ ...late, role: 'owner' }]);
    });

    it('keeps the owner when asked to (keepOwner) and never re-roles the owner through addMember', async () => {
      const [a] = [user()];
      const g = group({ others: [a] });
      await groups.create(g);
      assert.equal(await groups.removeMember(g.id, g.owner, { keepOwner: true }), false);
      assert.equal(await groups.addMember(g.id, { userId: g.owner, role: 'member', joinedAt: tick() }), 2);
      assert.deepEqual(normal(await groups.get(g.id)), normal(g), 'the owner is untouched');
      assert.equal(await groups.removeMember(g.id, a, { keepOwner: true }), true, 'anyone else is removed as usual');
    });

    it('keeps a group whose last member left: memberless, its last owner named, its id taken, no one added', async () => {
      const g = group({ others: [] });
      await groups.create(g);
      assert.equal(await groups.removeMember(g.id, g.owner), true);
      assert.deepEqual(await groups.members(g.id), []);
      assert.deepEqual(await groups.get(g.id), { id: g.id, name: g.name, owner: g.owner, createdAt: g.createdAt, members: [] });
      assert.equal(await groups.role(g.id, g.owner), null);
      assert.equal(await groups.create(group({ id: g.id })), false);
      assert.equal(await groups.addMember(g.id, member(user())), 0, 'an ended group takes no one: there would be no owner');
      assert.equal(await groups.addMember(g.id, member(g.owner, 'owner')), 0);
      assert.deepEqual(await groups.members(g.id), []);
    });

    /** A group with members has exactly one member whose role is owner, and its `owner` names them. */
    const assertOneOwner = async (id: string) => {
      const g = (await groups.get(id))!;
      if (g.members.length === 0) return;
      const owners = g.members.filter((m) => m.role === 'owner').map((m) => m.userId);
      assert.deepEqual(owners, [g.owner], `one owner, named by the group: ${JSON.stringify(g)}`);
    };

    it('keeps exactly one owner through concurrent leaves, re-roles and adds', async () => {
      for (let round = 0; round < 10; round++) {
        const admins = Array.from({ length: 4 }, () => member(user(), 'admin'));
        const g = group({ others: [user(), user()] });
        await groups.create(g);
        for (const a of admins) await groups.addMember(g.id, a);
        const [first, second, ...rest] = admins;
        // The owner and the first two in line leave at once, one heir is re-roled, a newcomer joins.
        await Promise.all([
          groups.removeMember(g.id, g.owner),
          groups.removeMember(g.id, first.userId),
          groups.removeMember(g.id, second.userId),
          groups.addMember(g.id, { ...rest[0], role: 'member' }),
          groups.addMember(g.id, member(user())),
        ]);
        await assertOneOwner(g.id);
        assert.equal((await groups.members(g.id)).length, 5);
      }
    });

    it('ends a group cleanly when its last two members leave at once, or its last member leaves as one is added', async () => {
      const pair = group({ others: [user()] });
      await groups.create(pair);
      assert.deepEqual(await Promise.all(pair.members.map((m) => groups.removeMember(pair.id, m.userId))), [true, true]);
      assert.deepEqual(await groups.members(pair.id), []);

      for (let round = 0; round < 10; round++) {
        const alone = group({ others: [] });
        await groups.create(alone);
        const newcomer = member(user());
        const [, count] = await Promise.all([groups.removeMember(alone.id, alone.owner), groups.addMember(alone.id, newcomer)]);
        await assertOneOwner(alone.id);
        assert.deepEqual(await groups.members(alone.id), count === 0 ? [] : [newcomer.userId], 'added before the leave, or refused after it');
      }
    });

    it('creates a group given with no members, which then has none', async () => {
      const g = { ...group(), members: [] };
      assert.equal(await groups.create(g), true);
      assert.deepEqual(await groups.get(g.id), g);
      assert.deepEqual(await groups.members(g.id), []);
      assert.equal(await groups.create(group({ id: g.id })), false);
    });

    // Redis: RedisGroups.addMember writes group:{id}:members whether or not group:{id} exists, so a
    // member lands in a group that get() says does not exist, and a later create() of that id inherits it.
    it('does not put a member into a group that does not exist', async () => {
      const id = groupId();
      const stray = member(user(), 'admin');
      const count = await groups.addMember(id, stray);
      assert.equal(await groups.get(id), null);
      assert.deepEqual(await groups.members(id), [], 'members() of a group that does not exist is empty (groups.ts)');
      assert.equal(await groups.role(id, stray.userId), null);
      assert.equal(count, 0, 'the member count of a group that does not exist');
      const g = group({ id, others: [] });
      assert.equal(await groups.create(g), true);
      assert.deepEqual((await groups.get(id))!.members, g.members, 'a group created later has only its own members');
    });

    // Redis: RedisGroups.create writes the name (HSETNX) and the owner, createdAt and members (MULTI) in two
    // round trips; a get() in between answers a Group with owner undefined, createdAt NaN and no members.
    it('hands out a group being created whole or not at all', async () => {
      const g = group();
      const creating = groups.create(g);
      const seen = await groups.get(g.id);
      assert.equal(await creating, true);
      if (seen !== null) assert.deepEqual(normal(seen), normal(g));
      assert.deepEqual(normal(await groups.get(g.id)), normal(g));
    });

    it('keeps ids and names byte-exact at the edges of what callers allow', async () => {
      // Literal ids: each fixture starts empty (a new directory, a new Redis key prefix).
      const ids = ['A'.repeat(64), 'Z', 'abc', 'ABC', 'aBc', '-_-', '_', '0', 'members', 'ab', 'ab-members', 'name', 'owner'];
      const users = ['ab', '0z', `${'a'.repeat(31)}9`, 'dot.ted_under-dash', 'x.', '9-9'];
      const names = [
        'ünïcødé 🌸 李小龍 עברית e\u0301',
        'x'.repeat(100),
        'with: colons: and "quotes" and \\ backslash',
        '007',
        '{"name":"json-looking"}',
        'owner:123 member:456',
        '  inner   spaces  ',
        '\u2028\u2029\u00a0\ufeff',
        '0',
        'true',
        '🌸',
      ];
      const made: Group[] = ids.map((id, i) => {
        const createdAt = tick();
        const owner = users[i % users.length];
        const role = (userId: string): Role => (userId === owner ? 'owner' : i % 2 === 0 ? 'admin' : 'member');
        return { id, name: names[i % names.length], owner, createdAt, members: users.map((userId, j) => ({ userId, role: role(userId), joinedAt: createdAt + j })) };
      });
      for (const g of made) assert.equal(await groups.create(g), true, `create ${g.id}`);
      for (const g of made) {
        assert.deepEqual(normal(await groups.get(g.id)), normal(g), `group ${JSON.stringify(g.id)}`);
        assert.deepEqual(sorted(await groups.members(g.id)), sorted(users));
        assert.equal(await groups.role(g.id, g.owner), 'owner');
      }
      // Ids differing only in case, or one a prefix of another, are different groups.
      assert.equal(await groups.removeMember('abc', users[1]), true);
      assert.deepEqual(sorted(await groups.members('abc')), sorted(users.filter((u) => u !== users[1])));
      assert.deepEqual(sorted(await groups.members('ABC')), sorted(users));
      assert.deepEqual(sorted(await groups.members('aBc')), sorted(users));
      assert.equal(await groups.removeMember('ab', users[2]), true);
      assert.deepEqual(sorted(await groups.members('ab-members')), sorted(users));
      assert.equal(await groups.get('a'), null, 'a prefix of an existing id is not a group');
      assert.equal(await groups.get('ABCD'), null);
      assert.equal(await groups.get('A'.repeat(63)), null);
    });

    it('keeps a group of 1,024 members (the default cap) and answers for each of them', async () => {
      const others = Array.from({ length: 1023 }, (_, i) => `m${i}.${rand(3)}`);
      const g = group({ others });
      assert.equal(await groups.create(g), true);
      const ids = await groups.members(g.id);
      assert.equal(ids.length, 1024);
      assert.deepEqual(sorted(ids), sorted(g.members.map((m) => m.userId)));
      assert.deepEqual(normal(await groups.get(g.id)), normal(g));
      assert.equal(await groups.role(g.id, others[777]), 'member');
      assert.equal(await groups.removeMember(g.id, others[500]), true);
      assert.equal(await groups.addMember(g.id, member(user())), 1024);
    });

    describe('across a reopen', () => {
      it('keeps groups, members, roles and joinedAt; removals stay removed; ids stay taken', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const [a, b, c] = [user(), user(), user()];
        const g1 = group({ name: 'ünï 🌸 "one"', others: [a, b] });
        const g2 = group({ others: [c] });
        await groups.create(g1);
        await groups.create(g2);
        const admin = member(c, 'admin');
        await groups.addMember(g1.id, admin);
        await groups.removeMember(g1.id, a);
        await groups.removeMember(g2.id, c);
        const expected1 = { ...g1, members: [...g1.members.filter((m) => m.userId !== a), admin] };
        const expected2 = { ...g2, members: g2.members.filter((m) => m.userId !== c) };
        groups = await f.reopen();
        assert.deepEqual(normal(await groups.get(g1.id)), normal(expected1));
        assert.deepEqual(normal(await groups.get(g2.id)), normal(expected2));
        assert.deepEqual(sorted(await groups.members(g1.id)), sorted([g1.owner, b, c]));
        assert.equal(await groups.role(g1.id, c), 'admin');
        assert.equal(await groups.role(g1.id, a), null);
        assert.equal(await groups.create(group({ id: g1.id })), false, 'the id is still taken');
        assert.equal(await groups.get(groupId()), null);
        await groups.removeMember(g1.id, b);
        groups = await f.reopen();
        assert.deepEqual(sorted(await groups.members(g1.id)), sorted([g1.owner, c]), 'a change after the reopen lasts too');
      });

      it('keeps a hand-over of ownership and an ended group', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const heir = member(user(), 'admin');
        const g = group();
        const ended = group({ others: [] });
        await groups.create(g);
        await groups.create(ended);
        await groups.addMember(g.id, heir);
        await groups.removeMember(g.id, g.owner);
        await groups.removeMember(ended.id, ended.owner);
        groups = await f.reopen();
        assert.equal((await groups.get(g.id))!.owner, heir.userId);
        assert.equal(await groups.role(g.id, heir.userId), 'owner');
        assert.deepEqual((await groups.get(ended.id))!.members, []);
        assert.equal(await groups.addMember(ended.id, member(user())), 0);
      });

      it('keeps 200 groups made one after another', async (t) => {
        if (!f.reopen) return t.skip('this fixture has no reopen');
        const many = Array.from({ length: 200 }, () => group({ others: [user()] }));
        for (const g of many) await groups.create(g);
        groups = await f.reopen();
        for (const g of many) assert.deepEqual(normal(await groups.get(g.id)), normal(g));
      });
    });
  });
}
