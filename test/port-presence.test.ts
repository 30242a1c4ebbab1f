// The Presence contract against the in-process maps and the real Redis of test/stack, and what only the
// cluster adapter does: a node whose heartbeat stops has its users taken offline by another node, once.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { EmbeddedPresence } from '../broker/presence-embedded.ts';
import { RedisPresence } from '../broker/presence-redis.ts';
import { presenceContract } from './contracts/presence.ts';
import { rand, redisSandbox, sleep, type RedisSandbox } from './contracts/support.ts';

presenceContract('embedded (in-process)', 7, async () => {
  const presence = new EmbeddedPresence(7);
  return { adapter: presence, cleanup: () => presence.close() };
});

presenceContract('redis', 1, async () => {
  const sandbox = await redisSandbox();
  const presence = new RedisPresence(sandbox.client(), 1, 1000);
  return {
    adapter: presence,
    cleanup: async () => {
      await presence.close();
      await sandbox.cleanup();
    },
  };
});

describe('RedisPresence across nodes', () => {
  const HEARTBEAT_MS = 100; // a node is dead 3 heartbeats (300 ms) after its last one
  let sandbox: RedisSandbox;
  const nodes: RedisPresence[] = [];
  // Each node has its own connection, as separate processes would.
  const node = (id: number) => {
    const p = new RedisPresence(sandbox.client(), id, HEARTBEAT_MS);
    nodes.push(p);
    return p;
  };
  const user = () => `u${rand()}`;

  before(async () => {
    sandbox = await redisSandbox();
  });
  after(async () => {
    for (const p of nodes) await p.close();
    await sandbox?.cleanup();
  });

  it("a surviving node takes a dead node's users offline exactly once, and keeps its own online", async () => {
    const [a, b, c] = [node(1), node(2), node(12)];
    const [onA, onA2, onB, both] = [user(), user(), user(), user()];
    await a.heartbeat(Date.now());
    await b.heartbeat(Date.now());
    await c.heartbeat(Date.now());
    await a.deviceUp(onA, 'phone');
    await a.deviceUp(onA2, 'phone');
    await a.deviceUp(onA2, 'laptop');
    await a.deviceUp(both, 'phone');
    await b.deviceUp(onB, 'phone');
    assert.equal(await b.deviceUp(both, 'laptop'), false, 'already online through node 1');
    assert.deepEqual((await b.heartbeat(Date.now())).offline, [], 'node 1 is alive');
    assert.deepEqual((await c.nodesOf(both)).sort(), [1, 2], 'any node sees where each device is');
    assert.deepEqual(await c.nodesOf(onB), [2]);

    // Node 1 stops heartbeating; nodes 2 and 12 keep going.
    await sleep(HEARTBEAT_MS * 3 + 150);
    const now = Date.now();
    const [fromB, fromC] = (await Promise.all([b.heartbeat(now), c.heartbeat(now)])).map((r) => r.offline);
    const reported = [...fromB, ...fromC].sort();
    assert.deepEqual(reported, [onA, onA2].sort(), 'each of node 1\'s users reported once, by one node');
    assert.ok(fromB.length === 0 || fromC.length === 0, 'one node sweeps a dead one');

    for (const u of [onA, onA2]) {
      assert.equal(await b.isOnline(u), false);
      assert.equal(await b.lastSeen(u), now);
    }
    assert.equal(await b.isOnline(onB), true, "node 2's own user stays online");
    assert.equal(await b.isOnline(both), true, 'a user with a device on a live node stays online');
    assert.deepEqual(await c.nodesOf(both), [2], "the dead node's device is gone from where the user is");
    assert.deepEqual(await c.nodesOf(onA), []);
    assert.deepEqual((await c.liveNodes()).sort((x, y) => x - y), [2, 12], 'a dead node is not live');
    assert.equal(await b.lastSeen(both), null);

    assert.deepEqual((await b.heartbeat(Date.now())).offline, [], 'not reported a second time');
    assert.deepEqual((await c.heartbeat(Date.now())).offline, [], 'nor by another node');
    await sleep(HEARTBEAT_MS * 3);
    assert.deepEqual((await b.heartbeat(Date.now())).offline, [], 'nor after the sweep lock expired');

    // Node 1 comes back (a long pause, not a crash): its heartbeat says it lapsed, so it re-registers its devices.
    const back = await a.heartbeat(Date.now());
    assert.equal(back.lapsed, true, 'a swept node learns that it lapsed');
    assert.equal((await a.heartbeat(Date.now())).lapsed, false);

    // The user's last device goes on node 2: now they are offline.
    assert.equal(await b.deviceDown(both, 'laptop', now + 1), true);
    assert.equal(await b.isOnline(both), false);
  });

  it('a node id that is a prefix of another (1 and 12) never sweeps or resets the other', async () => {
    const [n1, n12] = [node(1), node(12)];
    const u1 = user();
    const u12 = user();
    await n1.deviceUp(u1, 'phone');
    await n12.deviceUp(u12, 'phone');
    assert.deepEqual(await n1.resetNode(Date.now()), [u1]);
    assert.equal(await n12.isOnline(u12), true);
    assert.equal(await n12.deviceDown(u12, 'phone', Date.now()), true);
  });
});
