// Groups end to end (PROTOCOL.md, `send/group/{id}` and `/v1/groups`): fan-out to every member, live or
// queued, one ack, copies to the sender's devices, non-members refused, removed members cut off at once,
// the owner free to leave (ownership passes on; the last one out ends the group).
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { connectDevice, PASSWORD, registerUser, sleep, startTestParley, type Backend, type TestParley } from './helpers/parley.ts';

async function token(p: TestParley, user: string): Promise<string> {
  return (await p.http('/v1/auth/login', { body: { username: user, password: PASSWORD } })).body.token;
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`groups, ${backend} adapters`, () => {
    let p: TestParley;
    before(async () => {
      p = await startTestParley(backend, { PARLEY_GROUP_MAX_MEMBERS: '4' });
    });
    after(async () => p.stop());

    it('fans a message out to every member, queues it for the offline one, and acks once', async () => {
      const [ann, ben, cat] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const created = await p.http('/v1/groups', { body: { name: 'Trio', members: [ben, cat] }, token: await token(p, ann) });
      assert.equal(created.status, 201);
      const g = created.body;
      assert.equal(g.owner, ann);
      assert.deepEqual(g.members.map((m: any) => m.userId).sort(), [ann, ben, cat].sort());
      const a1 = await connectDevice(p, 'tcp', ann);
      const a2 = await connectDevice(p, 'ws', ann);
      const b = await connectDevice(p, 'ws', ben);
      // cat is offline
      const cids = [];
      for (let i = 0; i < 20; i++) cids.push(a1.send(g.id, { body: `g${i}` }, `send/group/${g.id}`));
      await a1.waitFor(() => a1.received.filter((r) => r.body.kind === 'ack').length === 20, '20 acks');
      const got = await b.waitForInbox(20);
      assert.deepEqual(got.map((m) => m.cid), cids);
      assert.ok(got.every((m) => m.group === g.id && m.from === ann && m.to === ben), 'each member is the `to` of its copy');
      const copies = await a2.waitForInbox(20);
      assert.deepEqual(copies.map((m) => m.cid), cids, "the sender's other device gets copies");
      assert.equal(a1.inbox().length, 0, 'the sending device gets only acks');
      const c = await connectDevice(p, 'tcp', cat);
      const queued = await c.waitForInbox(20);
      assert.deepEqual(queued.map((m) => m.cid), cids, 'the offline member gets everything, in order, on return');
      // Typing goes live to each online member, its copy naming that member as `to`; no id, no ack.
      const typingCid = a1.send(g.id, { kind: 'typing', body: undefined }, `send/group/${g.id}`);
      for (const [d, user] of [[b, ben], [c, cat]] as const) {
        const t = await d.waitFor(() => d.received.find((r) => r.body.kind === 'typing' && r.body.cid === typingCid)?.body, `typing at ${user}`);
        assert.deepEqual({ ...t, ts: 0 }, { kind: 'typing', cid: typingCid, from: ann, to: user, ts: 0, group: g.id });
      }
      await Promise.all([a1, a2, b, c].map((d) => d.close()));
    });

    it('refuses non-members and stops delivering to a removed member at once', async () => {
      const [ann, ben, cat, eve] = [await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p)];
      const annToken = await token(p, ann);
      const g = (await p.http('/v1/groups', { body: { name: 'Pair+', members: [ben, cat] }, token: annToken })).body;
      const e = await connectDevice(p, 'tcp', eve);
      const refused = await e.waitForAnswer(e.send(g.id, { body: 'let me in' }, `send/group/${g.id}`));
      assert.equal(refused.kind, 'error');
      assert.equal(refused.code, 'forbidden');
      assert.equal((await p.http(`/v1/groups/${g.id}`, { token: await token(p, eve) })).status, 403);

      const b = await connectDevice(p, 'tcp', ben);
      const a = await connectDevice(p, 'tcp', ann);
      const first = await a.waitForAnswer(a.send(g.id, { body: 'before' }, `send/group/${g.id}`));
      await b.waitFor(() => b.inbox().some((m) => m.id === first.id), 'ben gets the first');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${ben}`, { method: 'DELETE', token: annToken })).status, 204);
      const second = await a.waitForAnswer(a.send(g.id, { body: 'after' }, `send/group/${g.id}`));
      assert.equal(second.kind, 'ack');
      await sleep(300);
      assert.ok(!b.inbox().some((m) => m.id === second.id), 'a removed member receives nothing more');
      const benSend = await b.waitForAnswer(b.send(g.id, { body: 'still here?' }, `send/group/${g.id}`));
      assert.equal(benSend.code, 'forbidden');
      await Promise.all([a, b, e].map((d) => d.close()));
    });

    it('shows group history to members from when they joined', async () => {
      const [ann, ben, cat] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const annT = await token(p, ann);
      const g = (await p.http('/v1/groups', { body: { name: 'History', members: [ben] }, token: annT })).body;
      const a = await connectDevice(p, 'tcp', ann);
      const start = (await p.running.consumers!.archived());
      const early = await a.waitForAnswer(a.send(g.id, { body: 'before cat' }, `send/group/${g.id}`));
      await sleep(5); // a later millisecond than cat's join
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: cat }, token: annT })).status, 200);
      await sleep(5);
      const late = await a.waitForAnswer(a.send(g.id, { body: 'after cat' }, `send/group/${g.id}`));
      for (let i = 0; i < 100 && (await p.running.consumers!.archived()) < start + 2; i++) await sleep(100);
      const asBen = await p.http(`/v1/conversations/group/${g.id}/messages`, { token: await token(p, ben) });
      assert.deepEqual(asBen.body.messages.map((m: any) => m.id), [late.id, early.id]);
      assert.ok(asBen.body.messages.every((m: any) => m.to === g.id && m.group === g.id));
      const asCat = await p.http(`/v1/conversations/group/${g.id}/messages`, { token: await token(p, cat) });
      assert.deepEqual(asCat.body.messages.map((m: any) => m.id), [late.id], 'a new member sees from when they joined');
      assert.equal(asCat.body.next, null);
      const catSync = await p.http('/v1/sync', { token: await token(p, cat) });
      assert.deepEqual(catSync.body.messages.map((m: any) => m.id), [late.id]);
      await a.close();
    });

    it('manages members by role and enforces the size limit', async () => {
      const [ann, ben, cat, dan, eve] = [await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p)];
      const [annT, benT, catT] = [await token(p, ann), await token(p, ben), await token(p, cat)];
      const g = (await p.http('/v1/groups', { body: { name: 'Club', members: [ben] }, token: annT })).body;
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: cat }, token: benT })).status, 403, 'a member cannot add');
      const added = await p.http(`/v1/groups/${g.id}/members`, { body: { userId: cat, role: 'admin' }, token: annT });
      assert.equal(added.status, 200);
      assert.equal(added.body.members.find((m: any) => m.userId === cat).role, 'admin');
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: dan }, token: catT })).status, 200, 'an admin can add');
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: eve }, token: annT })).status, 400, 'at most 4 members');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${ann}`, { method: 'DELETE', token: catT })).status, 409, 'the owner stays');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${ben}`, { method: 'DELETE', token: benT })).status, 204, 'anyone may leave');
      assert.equal((await p.http(`/v1/groups/${g.id}`, { token: benT })).status, 403);
      // A group that does not exist answers as one the caller is not in: ids cannot be probed.
      for (const [method, path] of [['GET', '/v1/groups/no-such-group'], ['POST', '/v1/groups/no-such-group/members'], ['DELETE', `/v1/groups/no-such-group/members/${ann}`]] as const) {
        const res = await p.http(path, { method, token: annT, ...(method === 'POST' ? { body: { userId: ben } } : {}) });
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.equal(res.body.error.message, 'not a member of this group');
      }
      assert.equal((await p.http('/v1/groups', { body: { name: '', members: [] }, token: annT })).status, 400);
      assert.equal((await p.http('/v1/groups', { body: { name: 'x', members: ['*)(uid=*'] }, token: annT })).status, 400);
      assert.equal((await p.http('/v1/groups', { body: { name: 'x', members: ['nobody-known'] }, token: annT })).status, 400);
    });

    it('lets the owner leave, handing the group to the longest-standing admin, who then runs it', async () => {
      const [ann, ben, cat, dan] = [await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p)];
      const [annT, benT, catT, danT] = [await token(p, ann), await token(p, ben), await token(p, cat), await token(p, dan)];
      const g = (await p.http('/v1/groups', { body: { name: 'Handover', members: [ben, cat] }, token: annT })).body;
      await sleep(5); // dan joins later than ben and cat, yet is the admin
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: dan, role: 'admin' }, token: annT })).status, 200);
      const a = await connectDevice(p, 'tcp', ann);
      assert.equal((await a.waitForAnswer(a.send(g.id, { body: 'bye' }, `send/group/${g.id}`))).kind, 'ack');

      assert.equal((await p.http(`/v1/groups/${g.id}/members/${ann}`, { method: 'DELETE', token: annT })).status, 204, 'the owner may leave');
      const handed = await p.http(`/v1/groups/${g.id}`, { token: danT });
      assert.equal(handed.status, 200);
      assert.equal(handed.body.owner, dan);
      assert.deepEqual(
        handed.body.members.map((m: any) => `${m.userId}:${m.role}`).sort(),
        [`${ben}:member`, `${cat}:member`, `${dan}:owner`].sort(),
      );

      // The old owner is out: the group, its history and its topic are closed to them.
      assert.equal((await p.http(`/v1/groups/${g.id}`, { token: annT })).status, 403);
      assert.equal((await p.http(`/v1/conversations/group/${g.id}/messages`, { token: annT })).status, 403);
      const refused = await a.waitForAnswer(a.send(g.id, { body: 'one more' }, `send/group/${g.id}`));
      assert.equal(refused.code, 'forbidden');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${dan}`, { method: 'DELETE', token: annT })).status, 403);
      const d = await connectDevice(p, 'tcp', dan);
      const fromDan = await d.waitForAnswer(d.send(g.id, { body: 'I run this now' }, `send/group/${g.id}`));
      assert.equal(fromDan.kind, 'ack');
      await sleep(300);
      assert.ok(!a.inbox().some((m) => m.id === fromDan.id), 'the old owner receives nothing more');

      // The new owner manages members, makes admins; no one else removes them.
      const promoted = await p.http(`/v1/groups/${g.id}/members`, { body: { userId: ben, role: 'admin' }, token: danT });
      assert.equal(promoted.status, 200, 'only the owner makes admins');
      assert.equal(promoted.body.members.find((m: any) => m.userId === ben).role, 'admin');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${dan}`, { method: 'DELETE', token: benT })).status, 409, 'an admin cannot remove the new owner');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${dan}`, { method: 'DELETE', token: catT })).status, 409, 'nor can a member');
      assert.equal((await p.http(`/v1/groups/${g.id}/members/${cat}`, { method: 'DELETE', token: danT })).status, 204);
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: ann }, token: danT })).status, 200, 'and can take the old owner back, as a member');
      assert.equal((await p.http(`/v1/groups/${g.id}`, { token: annT })).body.members.find((m: any) => m.userId === ann).role, 'member');
      await Promise.all([a, d].map((x) => x.close()));
    });

    it('passes the group to the longest-standing member when there is no admin, and ends it when the last one leaves', async () => {
      const [ann, ben, cat, dan] = [await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p)];
      const t = { [ann]: await token(p, ann), [ben]: await token(p, ben), [cat]: await token(p, cat), [dan]: await token(p, dan) };
      const g = (await p.http('/v1/groups', { body: { name: 'Last one out', members: [cat, ben] }, token: t[ann] })).body;
      await sleep(5);
      assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: dan }, token: t[ann] })).status, 200);
      // ben and cat joined in the same millisecond: the smaller id goes first; dan, who joined later, last.
      const line = [...[ben, cat].sort(), dan];
      const leave = async (who: string) => assert.equal((await p.http(`/v1/groups/${g.id}/members/${who}`, { method: 'DELETE', token: t[who] })).status, 204, `${who} leaves`);
      await leave(ann);
      for (const [i, heir] of line.entries()) {
        const now = await p.http(`/v1/groups/${g.id}`, { token: t[heir] });
        assert.equal(now.body.owner, heir, `owner after ${i + 1} left`);
        assert.equal(now.body.members.find((m: any) => m.userId === heir).role, 'owner');
        assert.equal(now.body.members.filter((m: any) => m.role === 'owner').length, 1);
        await leave(heir);
      }

      // Ended: the group and its history stay, for no one; nothing can be sent to it or added to it.
      for (const who of [ann, dan]) {
        assert.equal((await p.http(`/v1/groups/${g.id}`, { token: t[who] })).status, 403);
        assert.equal((await p.http(`/v1/conversations/group/${g.id}/messages`, { token: t[who] })).status, 403);
        assert.equal((await p.http(`/v1/groups/${g.id}/members`, { body: { userId: ben }, token: t[who] })).status, 403);
        assert.equal((await p.http(`/v1/groups/${g.id}/members/${who}`, { method: 'DELETE', token: t[who] })).status, 403);
      }
      const d = await connectDevice(p, 'tcp', dan);
      assert.equal((await d.waitForAnswer(d.send(g.id, { body: 'anyone?' }, `send/group/${g.id}`))).code, 'forbidden');
      await d.close();
    });
  });
}
