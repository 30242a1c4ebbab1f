// The Groups contract against the embedded JSON file and the real Redis of test/stack, and what only one
// adapter promises: the embedded file is replaced whole on every change (never left half written); Redis
// keeps a group in the hashes `group:{id}` and `group:{id}:members` that operators read.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EmbeddedGroups } from '../broker/groups-embedded.ts';
import { RedisGroups } from '../broker/groups-redis.ts';
import type { Group } from '../broker/groups.ts';
import { groupsContract } from './contracts/groups.ts';
import { rand, redisSandbox, tempDir, type RedisSandbox } from './contracts/support.ts';

groupsContract('embedded (JSON file)', async () => {
  const tmp = await tempDir('groups');
  let current = new EmbeddedGroups(tmp.dir);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = new EmbeddedGroups(tmp.dir));
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

groupsContract('redis (hashes)', async () => {
  const sandbox = await redisSandbox();
  return {
    adapter: new RedisGroups(sandbox.client()),
    // A new connection: what another process, or this one restarted, would see.
    reopen: async () => new RedisGroups(sandbox.client()),
    cleanup: () => sandbox.cleanup(),
  };
});

const sample = (): Group => {
  const createdAt = Date.UTC(2030, 5, 1);
  return {
    id: `g_${rand()}`,
    name: 'ünï 🌸 "crew"',
    owner: 'alice',
    createdAt,
    members: [
      { userId: 'alice', role: 'owner', joinedAt: createdAt },
      { userId: 'bob', role: 'member', joinedAt: createdAt + 5 },
    ],
  };
};

describe('EmbeddedGroups file', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  before(async () => {
    tmp = await tempDir('groups-file');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('replaces groups.json whole on every change, leaving no temp file', async () => {
    const groups = new EmbeddedGroups(tmp.dir);
    const g = sample();
    await groups.create(g);
    await groups.addMember(g.id, { userId: 'carol', role: 'admin', joinedAt: g.createdAt + 9 });
    await groups.removeMember(g.id, 'bob');
    const file = path.join(tmp.dir, 'groups.json');
    assert.equal(fs.existsSync(`${file}.tmp`), false);
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as Group[];
    assert.deepEqual(saved, [{ ...g, members: [g.members[0], { userId: 'carol', role: 'admin', joinedAt: g.createdAt + 9 }] }]);
    await groups.close();
  });
});

describe('RedisGroups keys', () => {
  let sandbox: RedisSandbox;
  before(async () => {
    sandbox = await redisSandbox();
  });
  after(async () => {
    await sandbox?.cleanup();
  });

  it('keeps a group in the hashes group:{id} and group:{id}:members ("{role}:{joinedAt}") under the key prefix', async () => {
    const groups = new RedisGroups(sandbox.client());
    const g = sample();
    await groups.create(g);
    const raw = sandbox.raw();
    const key = `${sandbox.prefix}group:${g.id}`;
    assert.equal(await raw.type(key), 'hash');
    assert.deepEqual(await raw.hgetall(key), { name: g.name, owner: 'alice', createdAt: String(g.createdAt) });
    assert.deepEqual(await raw.hgetall(`${key}:members`), { alice: `owner:${g.createdAt}`, bob: `member:${g.createdAt + 5}` });
    await groups.removeMember(g.id, 'bob');
    assert.deepEqual(await raw.hgetall(`${key}:members`), { alice: `owner:${g.createdAt}` });
  });
});
