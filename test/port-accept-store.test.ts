// The AcceptStore contract against the embedded journal and the real Redis of test/stack, and what only one
// adapter promises: the embedded store gives a claim back when the journal refuses its records; Redis writes
// the claim, the queues and the outbox in one command, under the keys operators read.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { EmbeddedAcceptStore } from '../broker/accept-store-embedded.ts';
import { RedisAcceptStore } from '../broker/accept-store-redis.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { RedisOfflineQueue } from '../broker/offline-queue-redis.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { RedisOutbox } from '../broker/outbox-redis.ts';
import { Journal } from '../common/journal.ts';
import { ACCEPT_STORE_MAX, acceptStoreContract, both, type AcceptStoreFixture } from './contracts/accept-store.ts';
import { rand, redisSandbox, tempDir, type RedisSandbox } from './contracts/support.ts';

const NODE = 3;

/** The store, queue and outbox on one journal in `dir`, as the broker opens them. */
function openEmbedded(dir: string, max: number) {
  const journal = Journal.open(dir, NODE, true);
  const queue = new EmbeddedOfflineQueue(journal, NODE, max);
  const outbox = new EmbeddedOutbox(journal, NODE);
  const adapter = new EmbeddedAcceptStore(journal, queue, outbox);
  return { adapter, queue, outbox, close: () => Promise.all([adapter.close(), queue.close(), outbox.close()]) };
}

async function embedded(max: number): Promise<AcceptStoreFixture & { dir: string; close(): Promise<unknown> }> {
  const tmp = await tempDir('accept-store');
  const opened = openEmbedded(tmp.dir, max);
  return {
    ...opened,
    dir: tmp.dir,
    cleanup: async () => {
      await opened.close();
      await tmp.remove();
    },
  };
}

async function redis(max: number, sandbox?: RedisSandbox): Promise<AcceptStoreFixture & { sandbox: RedisSandbox }> {
  const s = sandbox ?? (await redisSandbox());
  const client = s.client();
  return {
    adapter: new RedisAcceptStore(client, NODE, max),
    queue: new RedisOfflineQueue(client, max),
    outbox: new RedisOutbox(client, NODE),
    sandbox: s,
    cleanup: () => s.cleanup(),
  };
}

acceptStoreContract('embedded (claims in memory, queue and outbox in the journal)', ({ max }) => embedded(max));
acceptStoreContract('redis (one Lua script)', ({ max }) => redis(max));

describe('AcceptStore, embedded only', () => {
  it('remembers its claims across a restart, and forgets the expired ones', async () => {
    const f = await embedded(ACCEPT_STORE_MAX);
    const w = (cid: string, claim: string, ttlSeconds: number) => ({ sender: 'alice', cid, claim, ttlSeconds, queue: [{ userId: 'bob', message: { id: claim.split(':')[0], payload: '{}' } }], outbox: [{ key: 'alice:bob', value: '{}' }] });
    try {
      assert.equal(await both(f.adapter.store(w('kept', '1:100 with spaces', 3600))), null);
      assert.equal(await both(f.adapter.store(w('short', '2:200', 1))), null);
      await f.close();
      await new Promise((r) => setTimeout(r, 1100));
      const again = openEmbedded(f.dir, ACCEPT_STORE_MAX);
      try {
        assert.equal(await both(again.adapter.store(w('kept', '3:300', 3600))), '1:100 with spaces', 'a resend after the restart gets the first claim');
        assert.equal(await both(again.adapter.store(w('short', '4:400', 3600))), null, 'an expired claim is not replayed');
        assert.deepEqual((await again.queue.list('bob', 10)).map((m) => m.id), ['1', '2', '4']);
      } finally {
        await again.close();
      }
    } finally {
      await f.cleanup().catch(() => undefined);
    }
  });

  it('gives the claim back when the journal refuses the records, so a resend is stored', async () => {
    const f = await embedded(ACCEPT_STORE_MAX);
    try {
      const w = { sender: 'alice', cid: 'c1', claim: '1:2', ttlSeconds: 60, queue: [{ userId: 'bob', message: { id: '1', payload: '{}' } }], outbox: [{ key: 'alice:bob', value: '{}' }] };
      // A record the journal cannot hold (a newline would cut the file short on the next start): the whole
      // append is refused, claim included.
      const torn = { ...w, outbox: [{ key: 'alice:bob', value: '{\n}' }] };
      await assert.rejects(both(f.adapter.store(torn)), /newline or NUL/);
      assert.equal(await both(f.adapter.store({ ...w, claim: '3:4' })), null, 'the resend is stored');
      assert.equal(await both(f.adapter.store(w)), '3:4');
    } finally {
      await f.cleanup();
    }
  });
});

describe('AcceptStore, redis only', () => {
  let f: AcceptStoreFixture & { sandbox: RedisSandbox };
  before(async () => {
    f = await redis(ACCEPT_STORE_MAX);
  });
  after(async () => {
    await f?.cleanup();
  });

  it('writes the claim, every queue and the outbox in one command, under the operators’ keys', async () => {
    const raw = f.sandbox.raw();
    const [alice, bob, carol] = [`u${rand()}`, `u${rand()}`, `u${rand()}`];
    const monitor = await raw.monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((a) => a.includes(alice))) seen.push(args);
    });
    const w = {
      sender: alice,
      cid: 'c-1',
      claim: '42:1700000000000',
      ttlSeconds: 60,
      queue: [bob, carol].map((userId) => ({ userId, message: { id: '42', payload: `{"to":"${userId}"}` } })),
      outbox: [{ key: `${alice}:${bob}`, value: '{"v":1}' }],
    };
    assert.equal(await both(f.adapter.store(w)), null);
    await new Promise((r) => setTimeout(r, 200));
    monitor.disconnect();
    // MONITOR shows the script's own calls too (as `lua` sourced lines); the client sent one EVAL/EVALSHA.
    const fromClient = seen.filter((args) => /^eval/i.test(args[0]));
    assert.equal(fromClient.length, 1, `one script call, saw ${JSON.stringify(seen.map((a) => a[0]))}`);
    const p = f.sandbox.prefix;
    assert.equal(await raw.get(`${p}dedupe:${alice}:c-1`), '42:1700000000000');
    assert.ok((await raw.ttl(`${p}dedupe:${alice}:c-1`)) > 50, 'the claim expires');
    assert.deepEqual(await raw.lrange(`${p}offline:${bob}`, 0, -1), [`42 {"to":"${bob}"}`]);
    assert.deepEqual(await raw.lrange(`${p}offline:${carol}`, 0, -1), [`42 {"to":"${carol}"}`]);
    assert.deepEqual(await raw.lrange(`${p}outbox:${NODE}`, 0, -1), [`${alice}:${bob}\t{"v":1}`]);
  });

  it('sends the stores of one event-loop turn in one script call', async () => {
    const raw = f.sandbox.raw();
    const [alice, bob] = [`u${rand()}`, `u${rand()}`];
    const monitor = await raw.monitor();
    const calls: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^eval/i.test(args[0]) && args.some((a) => a.includes(alice))) calls.push(args[0]);
    });
    const w = (cid: string) => ({ sender: alice, cid, claim: `${cid}:1`, ttlSeconds: 60, queue: [{ userId: bob, message: { id: cid, payload: '{}' } }], outbox: [{ key: `${alice}:${bob}`, value: '{}' }] });
    const answers = await Promise.all(['1', '2', '3', '1'].map((c) => both(f.adapter.store(w(c)))));
    await new Promise((r) => setTimeout(r, 200));
    monitor.disconnect();
    assert.deepEqual(answers, [null, null, null, '1:1']);
    assert.equal(calls.length, 1, `one script call for four stores, saw ${calls.length}`);
    assert.deepEqual(await raw.lrange(`${f.sandbox.prefix}offline:${bob}`, 0, -1), ['1 {}', '2 {}', '3 {}']);
  });

  it('refuses a message whose queue key holds something else, writing nothing for it; the rest of its batch is stored', async () => {
    const raw = f.sandbox.raw();
    const [alice, bob, carol] = [`u${rand()}`, `u${rand()}`, `u${rand()}`];
    const p = f.sandbox.prefix;
    await raw.set(`${p}offline:${carol}`, 'not a list');
    const w = (cid: string, to: string[]) => ({ sender: alice, cid, claim: `${cid}:1`, ttlSeconds: 60, queue: to.map((userId) => ({ userId, message: { id: cid, payload: '{}' } })), outbox: [{ key: `${alice}:${to[0]}`, value: cid }] });
    const outboxBefore = await raw.llen(`${p}outbox:${NODE}`);
    const [one, bad, three] = [w('1', [bob]), w('2', [bob, carol]), w('3', [bob])].map((x) => both(f.adapter.store(x)));
    assert.equal(await one, null);
    await assert.rejects(bad, /Redis refused the store: .*WRONGTYPE .*offline:.* holds a string/);
    assert.equal(await three, null);
    assert.equal(await raw.exists(`${p}dedupe:${alice}:2`), 0, 'no claim for the refused message: its resend is stored once the key is fixed');
    assert.deepEqual(await raw.lrange(`${p}offline:${bob}`, 0, -1), ['1 {}', '3 {}'], 'bob did not get the refused group message either');
    assert.deepEqual((await raw.lrange(`${p}outbox:${NODE}`, outboxBefore, -1)).map((r) => r.split('\t')[1]), ['1', '3']);
    assert.equal(await raw.get(`${p}offline:${carol}`), 'not a list');
  });

  it('close sends the stores gathered this turn before the caller closes the connection', async () => {
    const s = await redisSandbox();
    try {
      const client = s.client();
      const store = new RedisAcceptStore(client, NODE, ACCEPT_STORE_MAX);
      const queue = new RedisOfflineQueue(client, ACCEPT_STORE_MAX);
      const [alice, bob] = [`u${rand()}`, `u${rand()}`];
      await queue.push([{ userId: bob, message: { id: 'old', payload: '{}' } }]);
      const stored = both(store.store({ sender: alice, cid: 'c', claim: 'c:1', ttlSeconds: 60, queue: [{ userId: bob, message: { id: 'c', payload: '{}' } }], outbox: [{ key: `${alice}:${bob}`, value: '{}' }] }));
      const removed = queue.remove(bob, { id: 'old', payload: '{}' });
      await Promise.all([store.close(), queue.close()]);
      await client.quit();
      assert.equal(await stored, null);
      await removed;
      assert.deepEqual(await s.raw().lrange(`${s.prefix}offline:${bob}`, 0, -1), ['c {}']);
    } finally {
      await s.cleanup();
    }
  });

  it('refuses a whole batch while Redis is out of memory, writing nothing, and stores again after', async () => {
    const raw = f.sandbox.raw();
    const [alice, bob] = [`u${rand()}`, `u${rand()}`];
    const w = (cid: string, claim: string) => ({ sender: alice, cid, claim, ttlSeconds: 60, queue: [{ userId: bob, message: { id: claim, payload: '{}' } }], outbox: [{ key: `${alice}:${bob}`, value: '{}' }] });
    const [, limit] = (await raw.config('GET', 'maxmemory')) as string[];
    await raw.config('SET', 'maxmemory', '1');
    try {
      const refused = ['a', 'b'].map((c) => both(f.adapter.store(w(c, `${c}:1`))));
      for (const r of refused) await assert.rejects(r, /OOM/);
    } finally {
      await raw.config('SET', 'maxmemory', limit);
    }
    const p = f.sandbox.prefix;
    assert.equal(await raw.exists(`${p}dedupe:${alice}:a`, `${p}dedupe:${alice}:b`, `${p}offline:${bob}`), 0, 'no claim, no queue row');
    assert.deepEqual(await Promise.all(['a', 'b'].map((c) => both(f.adapter.store(w(c, `${c}:2`))))), [null, null], 'the resends are stored');
    assert.deepEqual(await raw.lrange(`${p}offline:${bob}`, 0, -1), ['a:2 {}', 'b:2 {}']);
  });
});
