// The OfflineQueue contract against the embedded append-only file and the real Redis of test/stack, and
// what only one adapter promises: the embedded journal survives a torn write and compacts; Redis keeps each
// queue in the list `offline:{userId}` that operators read.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { RedisOfflineQueue } from '../broker/offline-queue-redis.ts';
import type { QueuedMessage } from '../broker/offline-queue.ts';
import { IdGenerator } from '../common/ids.ts';
import { Journal } from '../common/journal.ts';
import { offlineQueueContract } from './contracts/offline-queue.ts';
import { rand, redisSandbox, tempDir, type RedisSandbox } from './contracts/support.ts';

const NODE = 1;

/** An embedded queue on its own journal in `dir`, as a process that opens only the queue would have it. */
const journals = new WeakMap<EmbeddedOfflineQueue, Journal>();
const openQueue = (dir: string, node: number, max: number, compactMinBytes?: number) => {
  const journal = Journal.open(dir, node, true, compactMinBytes);
  const queue = new EmbeddedOfflineQueue(journal, node, max);
  journals.set(queue, journal);
  return queue;
};
/** Once the compaction under way, if any, is over (they run beside the queue's work). */
const compacted = (queue: EmbeddedOfflineQueue) => journals.get(queue)!.idle();

offlineQueueContract('embedded (journal, fsync)', async ({ max }) => {
  const tmp = await tempDir('offline-queue');
  let current = openQueue(tmp.dir, NODE, max);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = openQueue(tmp.dir, NODE, max));
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

offlineQueueContract('redis (lists)', async ({ max }) => {
  const sandbox = await redisSandbox();
  return {
    adapter: new RedisOfflineQueue(sandbox.client(), max),
    // A new connection: what another process, or this one restarted, would see.
    reopen: async () => new RedisOfflineQueue(sandbox.client(), max),
    cleanup: () => sandbox.cleanup(),
  };
});

const ids = new IdGenerator(9);
const msg = (body = `hello ${rand()}`): QueuedMessage => {
  const { id, ts } = ids.next();
  return { id, payload: JSON.stringify({ id, from: 'alice', to: 'bob', ts, kind: 'text', body }) };
};
const user = () => `u${rand()}`;
const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n');

describe('EmbeddedOfflineQueue journal', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  const logFile = (node: number) => path.join(tmp.dir, `journal-${node}.log`);
  before(async () => {
    tmp = await tempDir('offline-queue-file');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('ignores a torn last record on reopen, and appends cleanly after it', async () => {
    const u = user();
    const [m1, m2, m3] = [msg(), msg('ünï 🌸'), msg()];
    let q = openQueue(tmp.dir, 2, 100);
    await q.push([{ userId: u, message: m1 }, { userId: u, message: m2 }]);
    await q.remove(u, m1);
    await q.close();
    // A crash in the middle of a write: half a record, cut inside a multi-byte character, no newline.
    const torn = Buffer.from(`q + ${u} ${ids.next().id} {"body":"🌸🌸`);
    fs.appendFileSync(logFile(2), torn.subarray(0, torn.length - 2));

    q = openQueue(tmp.dir, 2, 100);
    assert.deepEqual(await q.list(u, 100), [m2]);
    await q.push([{ userId: u, message: m3 }]);
    await q.close();

    q = openQueue(tmp.dir, 2, 100);
    assert.deepEqual(await q.list(u, 100), [m2, m3], 'the record after the torn one is intact');
    await q.close();
    const text = fs.readFileSync(logFile(2), 'utf8');
    assert.ok(text.endsWith('\n'));
    for (const line of text.slice(0, -1).split('\n')) assert.match(line, /^q [+-] /, `no torn bytes left: ${JSON.stringify(line.slice(0, 60))}`);
  });

  it('compacts a log of mostly removed messages to the live set', async () => {
    const u = user();
    let q = openQueue(tmp.dir, 3, 20_000, 0);
    const ms = Array.from({ length: 12_000 }, () => msg());
    await q.push(ms.map((message) => ({ userId: u, message })));
    const live = ms.filter((_, i) => i % 20 === 0);
    await Promise.all(ms.filter((_, i) => i % 20 !== 0).map((m) => q.remove(u, m)));
    await compacted(q);
    await q.close();
    const records = lines(logFile(3)).filter((l) => l.length > 0);
    // Uncompacted it would hold 12,000 pushes and 11,400 removals.
    assert.ok(records.length < 4 * live.length + 1000, `compacted to ${records.length} records`);
    assert.equal(fs.existsSync(`${logFile(3)}.tmp`), false, 'no temp file left behind');
    q = openQueue(tmp.dir, 3, 20_000);
    assert.deepEqual(await q.list(u, 1_000_000), live);
    await q.close();
  });

  it('folds the queue file of an earlier version into the journal, once', async () => {
    const [u, v] = [user(), user()];
    const [m1, m2, m3] = [msg(), msg('ünï'), msg()];
    // offline-queue-{node}.log as versions before the journal wrote it: m2 was delivered and removed.
    const legacy = path.join(tmp.dir, 'offline-queue-6.log');
    fs.writeFileSync(legacy, [`+ ${u} ${m1.id} ${m1.payload}`, `+ ${u} ${m2.id} ${m2.payload}`, `+ ${v} ${m3.id} ${m3.payload}`, `- ${u} ${m2.id}`, ''].join('\n'));
    let q = openQueue(tmp.dir, 6, 100);
    await compacted(q);
    assert.equal(fs.existsSync(legacy), false, 'the old file is gone once its state is in the journal');
    assert.deepEqual(await q.list(u, 10), [m1]);
    assert.deepEqual(await q.list(v, 10), [m3]);
    await q.remove(v, m3);
    await q.close();
    q = openQueue(tmp.dir, 6, 100);
    assert.deepEqual(await q.list(u, 10), [m1], 'read back from the journal alone');
    assert.deepEqual(await q.list(v, 10), []);
    await q.close();
  });

  it('replays to what was in memory when a removal is written between a push and the cap it causes', async () => {
    const u = user();
    const [m1, m2, m3] = [msg(), msg(), msg()];
    let q = openQueue(tmp.dir, 7, 2);
    await q.push([{ userId: u, message: m1 }, { userId: u, message: m2 }]);
    // m3 is queued once written; m2's removal, handed over in the same turn, is written right after it. In
    // memory the queue never exceeds the cap (m2 is gone when m3 arrives), and so must the replay see it.
    const pushed = q.push([{ userId: u, message: m3 }]);
    const removed = q.remove(u, m2);
    await Promise.all([pushed, removed]);
    assert.deepEqual(await q.list(u, 10), [m1, m3]);
    await q.close();
    q = openQueue(tmp.dir, 7, 2);
    assert.deepEqual(await q.list(u, 10), [m1, m3], 'replayed as it was in memory');
    await q.close();
  });

  it('applies the cap at start when its records were lost in a crash, or the cap was lowered', async () => {
    const u = user();
    const ms = [msg(), msg(), msg(), msg()];
    // Four pushes and no `-` record for those the cap of 3 dropped (they are written without waiting).
    fs.writeFileSync(logFile(8), ms.map((m) => `q + ${u} ${m.id} ${m.payload}\n`).join(''));
    let q = openQueue(tmp.dir, 8, 3);
    assert.deepEqual(await q.list(u, 10), ms.slice(1), 'the oldest left');
    await q.close();
    q = openQueue(tmp.dir, 8, 2);
    assert.deepEqual(await q.list(u, 10), ms.slice(2), 'a lower cap at the next start');
    await q.close();
    assert.ok(lines(logFile(8)).includes(`q - ${u} ${ms[1].id}`), 'the drop is written');
    q = openQueue(tmp.dir, 8, 10);
    assert.deepEqual(await q.list(u, 10), ms.slice(2), 'and stays dropped under a higher cap');
    await q.close();
  });

  it('keeps one file per node: two nodes in one data dir do not see each other', async () => {
    const u = user();
    const [m1, m2] = [msg(), msg()];
    const n4 = openQueue(tmp.dir, 4, 100);
    const n5 = openQueue(tmp.dir, 5, 100);
    await n4.push([{ userId: u, message: m1 }]);
    await n5.push([{ userId: u, message: m2 }]);
    assert.deepEqual(await n4.list(u, 10), [m1]);
    assert.deepEqual(await n5.list(u, 10), [m2]);
    await n4.close();
    await n5.close();
  });
});

describe('RedisOfflineQueue keys', () => {
  let sandbox: RedisSandbox;
  before(async () => {
    sandbox = await redisSandbox();
  });
  after(async () => {
    await sandbox?.cleanup();
  });

  it('keeps a queue in the list offline:{userId} under the key prefix, id first, oldest at the head', async () => {
    const q = new RedisOfflineQueue(sandbox.client(), 100);
    const u = user();
    const ms = [msg(), msg('two words and ünï')];
    await q.push(ms.map((message) => ({ userId: u, message })));
    const raw = sandbox.raw();
    const key = `${sandbox.prefix}offline:${u}`;
    assert.equal(await raw.type(key), 'list');
    assert.deepEqual(
      await raw.lrange(key, 0, -1),
      ms.map((m) => `${m.id} ${m.payload}`),
    );
    await q.remove(u, ms[0]);
    assert.deepEqual(await raw.lrange(key, 0, -1), [`${ms[1].id} ${ms[1].payload}`]);
  });

  it('removes the rest of a turn’s removals when one queue key holds something else', async () => {
    const q = new RedisOfflineQueue(sandbox.client(), 100);
    const [u, v, bad] = [user(), user(), user()];
    const ms = [msg(), msg()];
    await q.push([...ms.map((message) => ({ userId: u, message })), { userId: v, message: ms[0] }]);
    const raw = sandbox.raw();
    await raw.set(`${sandbox.prefix}offline:${bad}`, 'not a list');
    const [one, refused, two] = [q.remove(u, ms[0]), q.remove(bad, ms[0]), q.remove(v, ms[0])];
    await one;
    await assert.rejects(refused, /Redis refused the removal: WRONGTYPE/);
    await two;
    assert.deepEqual(await q.list(u, 10), [ms[1]]);
    assert.deepEqual(await q.list(v, 10), []);
    assert.equal(await raw.get(`${sandbox.prefix}offline:${bad}`), 'not a list');
  });

  it('sends the removals of many turns in one call, and before any read of a queue', async () => {
    const client = sandbox.client();
    const q = new RedisOfflineQueue(client, 100, 60_000);
    const calls: string[] = [];
    for (const name of ['lrem', 'queueRemove'] as const) {
      const real = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[name].bind(client);
      (client as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => (calls.push(name), real(...a));
    }
    const [u, v] = [user(), user()];
    const ms = [msg(), msg(), msg()];
    await q.push([...ms.map((message) => ({ userId: u, message })), { userId: v, message: ms[0] }]);
    const removed = [q.remove(u, ms[0])];
    await new Promise((r) => setImmediate(r));
    removed.push(q.remove(v, ms[0]));
    await new Promise((r) => setTimeout(r, 20));
    removed.push(q.remove(u, ms[2]));
    const raw = sandbox.raw();
    assert.equal(await raw.llen(`${sandbox.prefix}offline:${u}`), 3, 'the removals linger: Redis has seen none of them');
    assert.deepEqual(calls, []);
    // A read of one queue sends them all first, on the same connection, so it sees them done.
    assert.deepEqual(await q.list(u, 10), [ms[1]]);
    await Promise.all(removed);
    assert.deepEqual(calls, ['queueRemove'], 'three removals from three turns, one script call');
    assert.equal(await q.length(v), 0);
    q.remove(u, ms[1]).catch(() => {});
    assert.equal(await q.length(u), 0, 'length() sends the waiting removals first too');
    assert.deepEqual(calls, ['queueRemove', 'lrem'], 'a removal alone goes as a plain LREM');
  });
});
