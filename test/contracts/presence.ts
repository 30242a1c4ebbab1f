// The Presence contract: online is "at least one device connected", offline and last seen are announced
// once, when the last device leaves or its node is reset.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { Presence } from '../../broker/presence.ts';
import { rand, type Fixture } from './support.ts';

/** `nodeId`: the node the adapter under test speaks for. */
export function presenceContract(name: string, nodeId: number, make: () => Promise<Fixture<Presence>>): void {
  describe(`Presence contract: ${name}`, () => {
    let f: Fixture<Presence>;
    let presence: Presence;
    const user = () => `u${rand()}`;
    const device = () => `d-${rand()}`;
    // A distinct, recognisable time per call, so a lastSeen can only come from the call that set it.
    let clock = Date.UTC(2030, 0, 1);
    const tick = () => (clock += 1000);

    before(async () => {
      f = await make();
      presence = f.adapter;
    });
    after(async () => {
      await f?.cleanup();
    });

    it('knows nothing of a user who never connected', async () => {
      const u = user();
      assert.equal(await presence.isOnline(u), false);
      assert.equal(await presence.lastSeen(u), null);
    });

    it('reports the first device up as the user coming online, a second device not', async () => {
      const u = user();
      assert.equal(await presence.deviceUp(u, device()), true);
      assert.equal(await presence.isOnline(u), true);
      assert.equal(await presence.deviceUp(u, device()), false);
      assert.equal(await presence.isOnline(u), true);
      assert.equal(await presence.lastSeen(u), null, 'online users have no last seen yet');
    });

    it('goes offline only when the last device leaves, with last seen = that moment', async () => {
      const u = user();
      const [phone, laptop] = [device(), device()];
      await presence.deviceUp(u, phone);
      await presence.deviceUp(u, laptop);
      assert.equal(await presence.deviceDown(u, phone, tick()), false, 'one device left, one still up');
      assert.equal(await presence.isOnline(u), true);
      assert.equal(await presence.lastSeen(u), null);
      const now = tick();
      assert.equal(await presence.deviceDown(u, laptop, now), true, 'the last device left');
      assert.equal(await presence.isOnline(u), false);
      assert.equal(await presence.lastSeen(u), now);
    });

    it('comes online again after being offline, and updates last seen on the next departure', async () => {
      const u = user();
      const d = device();
      await presence.deviceUp(u, d);
      await presence.deviceDown(u, d, tick());
      assert.equal(await presence.deviceUp(u, d), true, 'first device again');
      assert.equal(await presence.isOnline(u), true);
      const later = tick();
      assert.equal(await presence.deviceDown(u, d, later), true);
      assert.equal(await presence.lastSeen(u), later);
    });

    it('does not announce a departure twice: a device that is not up leaving changes nothing', async () => {
      const u = user();
      const d = device();
      await presence.deviceUp(u, d);
      const now = tick();
      assert.equal(await presence.deviceDown(u, d, now), true);
      assert.equal(await presence.deviceDown(u, d, tick()), false, 'the same disconnect reported again');
      assert.equal(await presence.deviceDown(u, device(), tick()), false, 'a device never seen');
      assert.equal(await presence.lastSeen(u), now, 'last seen stays the real departure');
      assert.equal(await presence.deviceDown(user(), device(), tick()), false, 'a user never seen');
    });

    it("names this node as where a user's devices are, once, and no node once they left", async () => {
      const u = user();
      const [phone, laptop] = [device(), device()];
      assert.deepEqual(await presence.nodesOf(u), [], 'never connected');
      await presence.deviceUp(u, phone);
      await presence.deviceUp(u, laptop);
      assert.deepEqual(await presence.nodesOf(u), [nodeId], 'two devices on one node name it once');
      await presence.deviceDown(u, phone, tick());
      assert.deepEqual(await presence.nodesOf(u), [nodeId]);
      await presence.deviceDown(u, laptop, tick());
      assert.deepEqual(await presence.nodesOf(u), [], 'the last device left');
      assert.deepEqual(await presence.nodesOf(user()), []);
    });

    it('keeps users independent', async () => {
      const [a, b] = [user(), user()];
      const d = device();
      await presence.deviceUp(a, d);
      await presence.deviceUp(b, d);
      assert.equal(await presence.deviceDown(a, d, tick()), true);
      assert.equal(await presence.isOnline(b), true);
      assert.equal(await presence.lastSeen(b), null);
    });

    it('resetNode takes every user of this node offline once and reports them', async () => {
      const [a, b, gone] = [user(), user(), user()];
      await presence.deviceUp(a, device());
      await presence.deviceUp(a, device());
      await presence.deviceUp(b, device());
      const g = device();
      await presence.deviceUp(gone, g);
      const left = tick();
      await presence.deviceDown(gone, g, left);
      const now = tick();
      const offline = await presence.resetNode(now);
      // Users of the earlier tests are online on this node too; only this test's are asserted on.
      assert.deepEqual(offline.filter((u) => [a, b, gone].includes(u)).sort(), [a, b].sort());
      assert.equal(new Set(offline).size, offline.length, 'each user reported once');
      for (const u of [a, b]) {
        assert.equal(await presence.isOnline(u), false);
        assert.equal(await presence.lastSeen(u), now);
      }
      assert.equal(await presence.lastSeen(gone), left, 'a user already offline keeps their last seen');
      assert.deepEqual(await presence.resetNode(tick()), [], 'nothing left to reset');
      assert.deepEqual(await presence.nodesOf(a), [], 'no node after the reset');
      assert.equal(await presence.deviceUp(a, device()), true, 'online again after the reset');
    });

    it('heartbeat of a lone node reports nobody and leaves users online', async () => {
      const u = user();
      await presence.deviceUp(u, device());
      assert.deepEqual(await presence.heartbeat(Date.now()), { offline: [], lapsed: false });
      assert.deepEqual(await presence.heartbeat(Date.now()), { offline: [], lapsed: false });
      assert.equal(await presence.isOnline(u), true);
    });

    it('names this node among the live ones once it has heartbeated', async () => {
      await presence.heartbeat(Date.now());
      const live = await presence.liveNodes();
      assert.ok(live.includes(nodeId), `live nodes ${JSON.stringify(live)} include ${nodeId}`);
      assert.equal(new Set(live).size, live.length, 'each once');
    });
  });
}
