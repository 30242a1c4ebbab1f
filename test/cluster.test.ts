// Several broker processes on one Redis (DESIGN.md, "Scaling out"): a message reaches the receiver's devices
// on whichever node they are connected, live and in order; presence and logout reach every node; a node
// killed with SIGKILL loses nothing acked, and its users go offline for the others.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import { after, before, describe, it } from 'node:test';
import { startParleyProcess, type ParleyProcess } from './helpers/child.ts';
import { connectDevice, PASSWORD, registerUser, sleep, testEnv, uniqueName, type TestDevice } from './helpers/parley.ts';

const HEARTBEAT_MS = 300; // a node is given up three heartbeats after its last one

describe('a cluster of broker processes on the real Redis', () => {
  // One deployment: the same Redis key prefix and directory; each node its own id and data folder.
  const shared = testEnv('real', { PARLEY_PRESENCE_HEARTBEAT_MS: String(HEARTBEAT_MS) });
  const nodes: ParleyProcess[] = [];
  const dirs: string[] = [];
  const devices: TestDevice[] = [];
  let redis: Redis;
  let n1: ParleyProcess;
  let n2: ParleyProcess;

  const startNode = async (id: number) => {
    const dir = fs.mkdtempSync(`${shared.PARLEY_DATA_DIR}-n${id}-`);
    dirs.push(dir);
    const node = await startParleyProcess({ ...shared, PARLEY_NODE_ID: String(id), PARLEY_DATA_DIR: dir }, 'broker');
    nodes.push(node);
    return node;
  };
  const connect = async (node: ParleyProcess, user: string, opts: Parameters<typeof connectDevice>[3] = {}) => {
    const d = await connectDevice(node.parley, 'tcp', user, opts);
    devices.push(d);
    return d;
  };
  const queued = (user: string) => redis.llen(`${shared.PARLEY_REDIS_KEY_PREFIX}offline:${user}`);
  const waitUntil = async (check: () => Promise<boolean>, what: string, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  };

  before(async () => {
    redis = new Redis(shared.PARLEY_REDIS_URL);
    [n1, n2] = [await startNode(1), await startNode(2)];
  });
  after(async () => {
    for (const d of devices) d.client.end(true);
    for (const n of nodes) await n.kill();
    for (const dir of [...dirs, shared.PARLEY_DATA_DIR]) fs.rmSync(dir, { recursive: true, force: true });
    await redis?.quit();
  });

  it('delivers a message to a receiver on another node live, acks it, and takes it off the queue after the PUBACK', async () => {
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n2.parley)];
    const a = await connect(n1, alice);
    const b = await connect(n2, bob);
    const ack = await a.sendAndAck(bob, { body: 'across' });
    assert.equal(ack.kind, 'ack');
    const [got] = await b.waitForInbox(1);
    assert.equal(got.id, ack.id);
    assert.equal(got.from, alice);
    assert.equal(got.body, 'across');
    await waitUntil(async () => (await queued(bob)) === 0, "bob's queue to empty after his PUBACK");
    assert.equal(a.inbox().length, 0, 'the sending device gets the ack only');
  });

  it('keeps a burst from one sender in order across nodes, each message once', async () => {
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    const b = await connect(n2, bob);
    const cids = Array.from({ length: 300 }, (_, i) => a.send(bob, { body: `m${i}` }));
    const got = await b.waitForInbox(300, 30_000);
    assert.deepEqual(got.map((m) => m.cid), cids);
    await sleep(200);
    assert.equal(b.inbox().length, 300, 'nothing twice');
    await waitUntil(async () => (await queued(bob)) === 0, 'the queue to empty');
  });

  it("reaches every device of the receiver and the sender's other devices, wherever each is connected", async () => {
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const aliceHere = await connect(n1, alice);
    const aliceThere = await connect(n2, alice);
    const bobHere = await connect(n1, bob);
    const bobThere = await connect(n2, bob);
    const ack = await aliceHere.sendAndAck(bob, { body: 'to all of you' });
    for (const d of [bobHere, bobThere, aliceThere]) {
      const [m] = await d.waitForInbox(1);
      assert.equal(m.id, ack.id);
    }
    await sleep(200);
    assert.equal(aliceHere.inbox().length, 0);
    for (const d of [bobHere, bobThere, aliceThere]) assert.equal(d.inbox().length, 1, 'once per device');
  });

  it('carries typing, receipts and group messages across nodes', async () => {
    const [alice, bob, carol] = [await registerUser(n1.parley), await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    const b = await connect(n2, bob);
    const c = await connect(n1, carol);

    a.send(bob, { kind: 'typing' });
    const typing = await b.waitFor(() => b.received.find((r) => r.body.kind === 'typing')?.body, 'typing');
    assert.equal(typing.from, alice);

    const ack = await a.sendAndAck(bob, { body: 'read me' });
    await b.waitForInbox(1);
    await b.sendAndAck(alice, { kind: 'receipt', ref: ack.id, state: 'read' });
    const [receipt] = await a.waitForInbox(1);
    assert.equal(receipt.kind, 'receipt');
    assert.equal(receipt.ref, ack.id);

    const login = await n1.parley.http('/v1/auth/login', { body: { username: alice, password: PASSWORD } });
    const group = await n1.parley.http('/v1/groups', { body: { name: 'both nodes', members: [bob, carol] }, token: login.body.token });
    assert.equal(group.status, 201);
    const from = a.received.length;
    const cid = a.send('', { body: 'hello group' }, `send/group/${group.body.id}`);
    const groupAck = await a.waitForAnswer(cid, undefined, from);
    assert.equal(groupAck.kind, 'ack');
    for (const [d, user] of [[b, bob], [c, carol]] as const) {
      const m = await d.waitFor(() => d.inbox().find((e) => e.id === groupAck.id), `the group message at ${user}`);
      assert.equal(m.group, group.body.id);
      assert.equal(m.to, user);
    }
  });

  it('shows presence changes on every node, and the current state on a node started later', async () => {
    const [watcher, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const w = await connect(n1, watcher);
    await w.client.subscribeAsync(`presence/${bob}`, { qos: 0 });
    const states = () => w.received.filter((r) => r.topic === `presence/${bob}`).map((r) => r.body.state);

    const b = await connect(n2, bob);
    await w.waitFor(() => states().includes('online'), 'bob online, seen on node 1');

    const n3 = await startNode(3);
    const late = await connect(n3, await registerUser(n1.parley));
    const retainFlags: boolean[] = [];
    late.client.on('message', (topic, _payload, packet) => topic === `presence/${bob}` && retainFlags.push(packet.retain));
    await late.client.subscribeAsync(`presence/${bob}`, { qos: 0 });
    const seen = await late.waitFor(() => late.received.find((r) => r.topic === `presence/${bob}`)?.body, 'bob online, seen on node 3');
    assert.equal(seen.state, 'online', 'a node that started after bob came online reads his state');
    assert.deepEqual(retainFlags, [true], "it comes as the topic's retained message, once");
    // Bob's own node retains it for its subscribers as well.
    const here = await connect(n2, await registerUser(n1.parley));
    const hereFlags: boolean[] = [];
    here.client.on('message', (topic, _payload, packet) => topic === `presence/${bob}` && hereFlags.push(packet.retain));
    await here.client.subscribeAsync(`presence/${bob}`, { qos: 0 });
    await here.waitFor(() => hereFlags.length > 0, "bob's retained presence on node 2");
    assert.deepEqual(hereFlags, [true]);

    await b.close();
    await w.waitFor(() => states().at(-1) === 'offline', 'bob offline, seen on node 1');
    await late.waitFor(() => late.received.filter((r) => r.topic === `presence/${bob}`).at(-1)?.body.state === 'offline', 'bob offline, seen on node 3');
  });

  it("closes a token's MQTT sessions on every node when it is logged out on one", async () => {
    const bob = await registerUser(n1.parley);
    const login = await n1.parley.http('/v1/auth/login', { body: { username: bob, password: PASSWORD } });
    const token = login.body.token as string;
    const there = await connect(n2, bob, { password: token });
    const closed = new Promise<void>((resolve) => there.client.once('close', () => resolve()));
    assert.equal((await n1.parley.http('/v1/auth/logout', { method: 'POST', token })).status, 204);
    await Promise.race([closed, sleep(5000).then(() => assert.fail('the session on node 2 stayed open'))]);
    await assert.rejects(
      mqtt.connectAsync(`mqtt://127.0.0.1:${n2.parley.running.mqttPort}`, { username: bob, password: token, clientId: uniqueName('x-'), reconnectPeriod: 0 }),
      'the revoked token no longer signs in',
    );
  });

  it('a device that connects on one node while another node is accepting a burst for it gets all of it, live, without reconnecting', async () => {
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    const total = 600;
    const acks = () => a.received.filter((r) => r.body.kind === 'ack').length;
    const cids = Array.from({ length: total }, (_, i) => a.send(bob, { body: `m${i}` }));
    // Bob subscribes mid-burst: his queue read races node 1 storing and routing the next messages. What the
    // read missed must reach him live; what it had must not come again.
    await a.waitFor(() => acks() >= 50, 'the burst under way', 30_000);
    const b = await connect(n2, bob);
    const ackedAtConnect = acks();
    await a.waitFor(() => acks() === total, 'every ack', 30_000);
    assert.ok(ackedAtConnect < total, `bob connected while the burst was still being accepted (${ackedAtConnect} of ${total} acked)`);
    const got = await b.waitForInbox(total, 30_000);
    assert.deepEqual(got.map((m) => m.cid), cids, 'all of it, in the order sent, each once');
    await sleep(200);
    assert.equal(b.inbox().length, total, 'nothing twice');
    await waitUntil(async () => (await queued(bob)) === 0, 'the queue to empty');
  });

  it('delivers what was sent while a node had lost its connection to the others, once it is back, without a reconnect', async () => {
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    const b = await connect(n2, bob);
    await a.sendAndAck(bob, { body: 'before' });
    await b.waitForInbox(1);
    // Cut node 2's bus connection on the server; the burst right after it is routed while node 2 is away.
    const list = (await redis.client('LIST')) as string;
    const name = `parley-bus-${shared.PARLEY_REDIS_KEY_PREFIX}2`.replace(/[^\w:.-]/g, '_');
    const line = list.split('\n').find((l) => l.includes(` name=${name} `)) ?? assert.fail(`no connection named ${name}`);
    await redis.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]);
    const cids = Array.from({ length: 100 }, (_, i) => a.send(bob, { body: `during ${i}` }));
    const got = await b.waitFor(() => {
      const have = new Set(b.inbox().map((m) => m.cid));
      return cids.every((c) => have.has(c)) && b.inbox();
    }, 'every message sent during the gap', 15_000);
    const order = got.filter((m) => cids.includes(m.cid)).map((m) => cids.indexOf(m.cid));
    assert.deepEqual([...new Set(order)], cids.map((_, i) => i), 'first arrivals in the order sent');
    await waitUntil(async () => (await queued(bob)) === 0, 'the queue to empty');
  });

  it("routes to a node again after it was paused long enough to be given up for dead, and delivers what it missed meanwhile", async () => {
    const n5 = await startNode(5);
    const [alice, bob] = [await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    const b = await connect(n5, bob);
    await a.sendAndAck(bob, { body: 'before the pause' });
    await b.waitForInbox(1);
    n5.child.proc.kill('SIGSTOP');
    try {
      // Swept by the others: bob's device is no longer where node 1 routes to.
      await waitUntil(async () => (await redis.hlen(`${shared.PARLEY_REDIS_KEY_PREFIX}presence:devices:${bob}`)) === 0, "node 5's devices swept", HEARTBEAT_MS * 3 + 10_000);
      for (let i = 0; i < 20; i++) await a.sendAndAck(bob, { body: `while paused ${i}` });
    } finally {
      n5.child.proc.kill('SIGCONT');
    }
    const got = await b.waitForInbox(21, 15_000);
    assert.deepEqual(got.slice(1).map((m) => m.body), Array.from({ length: 20 }, (_, i) => `while paused ${i}`));
    // Registered again: a message now goes live.
    await waitUntil(async () => (await redis.hlen(`${shared.PARLEY_REDIS_KEY_PREFIX}presence:devices:${bob}`)) === 1, "bob's device registered again");
    const ack = await a.sendAndAck(bob, { body: 'after' });
    await b.waitFor(() => b.inbox().some((m) => m.id === ack.id), 'the message after the pause');
  });

  it("loses nothing acked when the receiver's node is killed, and its users go offline for the other nodes", async () => {
    const n4 = await startNode(4);
    const [alice, bob, watcher] = [await registerUser(n1.parley), await registerUser(n1.parley), await registerUser(n1.parley)];
    const a = await connect(n1, alice);
    // Watchers on two surviving nodes: whichever node sweeps node 4, at least one of them hears of it over the bus.
    const watchers = [await connect(n1, watcher), await connect(n2, watcher)];
    for (const w of watchers) await w.client.subscribeAsync(`presence/${bob}`, { qos: 0 });
    const b = await connect(n4, bob, { clientId: `${bob}-phone` });
    for (const w of watchers) await w.waitFor(() => w.received.some((r) => r.topic === `presence/${bob}` && r.body.state === 'online'), 'bob online');
    b.client.on('error', () => {}); // its node is about to vanish

    await n4.kill('SIGKILL');
    const cids = Array.from({ length: 50 }, (_, i) => a.send(bob, { body: `while away ${i}` }));
    await a.waitFor(() => a.received.filter((r) => r.body.kind === 'ack').length === 50, 'every ack');
    for (const w of watchers) {
      await w.waitFor(
        () => w.received.some((r) => r.topic === `presence/${bob}` && r.body.state === 'offline'),
        "bob offline once node 4's heartbeat stops",
        HEARTBEAT_MS * 3 + 5000,
      );
    }
    assert.equal(await queued(bob), 50, 'every acked message waits in his queue');

    const back = await connect(n2, bob);
    const got = await back.waitForInbox(50, 15_000);
    assert.deepEqual(got.map((m) => m.cid), cids);
    await waitUntil(async () => (await queued(bob)) === 0, 'the queue to empty');
  });
});

describe('a single broker on Redis', () => {
  // A deployment of its own: its nodes start and stop inside this test.
  const env = testEnv('real');
  const nodes: ParleyProcess[] = [];
  const devices: TestDevice[] = [];
  let redis: Redis;
  before(() => {
    redis = new Redis(env.PARLEY_REDIS_URL);
  });
  after(async () => {
    for (const d of devices) d.client.end(true);
    for (const n of nodes) await n.kill();
    await redis?.quit();
    fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
  });
  const start = async (id: number) => {
    const node = await startParleyProcess({ ...env, PARLEY_NODE_ID: String(id), PARLEY_DATA_DIR: fs.mkdtempSync(`${env.PARLEY_DATA_DIR}-n${id}-`) }, 'broker');
    nodes.push(node);
    return node;
  };
  /** Routing lookups (HVALS of presence:devices) Redis has served, server-wide. */
  const lookups = async () => Number(/cmdstat_hvals:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const chat = async (a: TestDevice, b: TestDevice, n: number) => {
    const before = b.inbox().length;
    for (let i = 0; i < n; i++) await a.sendAndAck(b.userId);
    await b.waitForInbox(before + n);
  };

  it('looks up no routes until a second node says hello, and stops once it says bye', async () => {
    const one = await start(1);
    const [alice, bob] = [await registerUser(one.parley), await registerUser(one.parley)];
    const a = await connectDevice(one.parley, 'tcp', alice);
    const b = await connectDevice(one.parley, 'tcp', bob);
    devices.push(a, b);
    let before = await lookups();
    await chat(a, b, 20);
    assert.equal((await lookups()) - before, 0, 'one node: nobody to route to');

    const two = await start(2);
    const there = await connectDevice(two.parley, 'tcp', bob);
    devices.push(there);
    before = await lookups();
    await chat(a, b, 20);
    assert.ok((await lookups()) - before >= 20, 'two nodes: a lookup per message');
    await there.waitForInbox(20); // bob's device on node 2 gets them live

    there.client.end(true);
    await two.kill('SIGTERM'); // a clean stop says bye
    before = await lookups();
    await chat(a, b, 20);
    assert.equal((await lookups()) - before, 0, 'alone again');
  });
});
