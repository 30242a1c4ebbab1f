// The Outbox contract against the embedded journal (alone, and shared with the offline queue as the broker
// opens it) and the real Redis of test/stack, and what only one adapter promises: the embedded journal
// survives a torn write and compacts on the outbox's drops without touching the queue's records (folding in
// files of earlier versions is test/journal.test.ts's); Redis keeps each node's outbox in the list
// `outbox:{node}` that operators read.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { RedisOutbox } from '../broker/outbox-redis.ts';
import type { LogRecord } from '../common/event-log.ts';
import { IdGenerator } from '../common/ids.ts';
import { Journal } from '../common/journal.ts';
import { outboxContract } from './contracts/outbox.ts';
import { rand, redisSandbox, tempDir, type RedisSandbox } from './contracts/support.ts';

const NODE = 1;
const ALL = 1_000_000;

outboxContract('embedded (journal, fsync)', async () => {
  const tmp = await tempDir('outbox');
  let current = new EmbeddedOutbox(Journal.open(tmp.dir, NODE, true), NODE);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = new EmbeddedOutbox(Journal.open(tmp.dir, NODE, true), NODE));
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

outboxContract('embedded (journal shared with the offline queue, as the broker opens it)', async () => {
  const tmp = await tempDir('outbox-shared');
  const open = () => {
    const journal = Journal.open(tmp.dir, NODE, true);
    return { queue: new EmbeddedOfflineQueue(journal, NODE, 1000), outbox: new EmbeddedOutbox(journal, NODE) };
  };
  let current = open();
  // The queue holds a message throughout, so the journal is never the outbox's alone.
  await current.queue.push([{ userId: 'bob', message: { id: '1', payload: '{"body":"waiting for bob"}' } }]);
  const closeBoth = () => Promise.all([current.queue.close(), current.outbox.close()]);
  return {
    adapter: current.outbox,
    reopen: async () => {
      await closeBoth();
      current = open();
      return current.outbox;
    },
    cleanup: async () => {
      await closeBoth();
      await tmp.remove();
    },
  };
});

outboxContract('redis (list)', async () => {
  const sandbox = await redisSandbox();
  return {
    adapter: new RedisOutbox(sandbox.client(), NODE),
    // A new connection: what this node sees after a restart.
    reopen: async () => new RedisOutbox(sandbox.client(), NODE),
    cleanup: () => sandbox.cleanup(),
  };
});

const ids = new IdGenerator(12);
const record = (body = `hello ${rand()}`): LogRecord => {
  const { id, ts } = ids.next();
  return { key: 'u:alice:bob', value: JSON.stringify({ v: 1, type: 'message', message: { id, from: 'alice', to: 'bob', ts, kind: 'text', body } }) };
};
const records = (n: number) => Array.from({ length: n }, () => record());
const queued = (body: string) => ({ id: ids.next().id, payload: JSON.stringify({ body }) });

describe('EmbeddedOutbox journal file', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  const journalFile = (node: number) => path.join(tmp.dir, `journal-${node}.log`);
  // Compacting as soon as most records are dead, at any size (whatever the default).
  const journals = new WeakMap<EmbeddedOutbox, Journal>();
  const open = (node: number) => {
    const journal = Journal.open(tmp.dir, node, true, 0);
    const outbox = new EmbeddedOutbox(journal, node);
    journals.set(outbox, journal);
    return outbox;
  };
  before(async () => {
    tmp = await tempDir('outbox-file');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('ignores a torn last record on reopen, and appends cleanly after it', async () => {
    const [r1, r2, r3] = [record(), record('ünï 🌸'), record()];
    let outbox = open(2);
    await outbox.append([r1, r2]);
    await outbox.drop(1);
    await outbox.close();
    // A crash in the middle of a write: half a record, cut inside a multi-byte character, no newline.
    const torn = Buffer.from(`o + u:alice:bob\t{"body":"🌸🌸`);
    fs.appendFileSync(journalFile(2), torn.subarray(0, torn.length - 2));

    outbox = open(2);
    assert.deepEqual(await outbox.peek(ALL), [r2]);
    await outbox.append([r3]);
    await outbox.close();

    outbox = open(2);
    assert.deepEqual(await outbox.peek(ALL), [r2, r3], 'the record after the torn one is intact');
    await outbox.close();
    const text = fs.readFileSync(journalFile(2), 'utf8');
    assert.ok(text.endsWith('\n'));
    for (const line of text.slice(0, -1).split('\n')) assert.match(line, /^o [+-] /, `no torn bytes left: ${JSON.stringify(line.slice(0, 60))}`);
  });

  it('has every resolved append in the file before close, as a process killed after the ack leaves it', async () => {
    const outbox = open(9);
    const rs = records(5);
    await outbox.append(rs.slice(0, 3));
    await outbox.drop(1);
    await Promise.all(rs.slice(3).map((r) => outbox.append([r])));
    // A second reader of the same file while the first still runs: what a restart after SIGKILL reads.
    const reader = open(9);
    assert.deepEqual(await reader.peek(ALL), rs.slice(1));
    await reader.close();
    await outbox.close();
  });

  it('compacts a journal of mostly dropped records to the live ones', async () => {
    let outbox = open(4);
    const rs = records(25_000);
    await outbox.append(rs);
    for (let i = 0; i < 20; i++) await outbox.drop(1000);
    await journals.get(outbox)!.idle(); // compactions run beside the drops
    await outbox.close();
    const lines = fs.readFileSync(journalFile(4), 'utf8').split('\n').filter((l) => l.length > 0);
    // Uncompacted it would hold 25,000 appends and 20 drops.
    assert.ok(lines.length < 2 * 5000 + 100, `compacted to ${lines.length} records`);
    assert.equal(fs.existsSync(`${journalFile(4)}.tmp`), false, 'no temp file left behind');
    outbox = open(4);
    assert.deepEqual(await outbox.peek(ALL), rs.slice(20_000));
    await outbox.close();
  });

  it('lets go of a record once it is dropped: what the event log has shipped is not kept in memory', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const outbox = open(11);
    const shipped = records(50);
    const kept = records(50);
    const refs = shipped.map((r) => new WeakRef(r));
    await outbox.append(shipped);
    await outbox.append(kept);
    shipped.length = 0;
    await outbox.drop(50);
    await new Promise((r) => setImmediate(r));
    gc();
    gc();
    assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, 'dropped records still referenced');
    assert.deepEqual(await outbox.peek(ALL), kept);
    await outbox.close();
  });

  it('leaves whole the records a compaction is reading while drops land, and lets go of them once it has ended', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const journal = Journal.open(tmp.dir, 12, true, 0);
    let outbox = new EmbeddedOutbox(journal, 12);
    const rs = records(15_000);
    const refs = rs.slice(0, 14_000).map((r) => new WeakRef(r));
    await outbox.append(rs);
    const kept = rs.slice(14_000);
    rs.length = 0;
    // Drops 2 ms apart: a compaction reads its snapshot a slice per turn, after an fsync, so later drops land
    // while it reads the records they drop (emptying their slots then failed the compaction).
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const drops: Promise<void>[] = [];
      for (let i = 0; i < 28; i++) {
        drops.push(outbox.drop(500));
        await new Promise((r) => setTimeout(r, 2));
      }
      await Promise.all(drops);
      await journal.idle();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings, [], 'no compaction failed');
    assert.ok(fs.readFileSync(path.join(tmp.dir, 'journal-12.log'), 'utf8').split('\n').length < 10_000, 'the journal was compacted');
    gc();
    gc();
    assert.equal(refs.filter((r) => r.deref() !== undefined).length, 0, 'dropped records still referenced');
    await outbox.close();
    outbox = new EmbeddedOutbox(Journal.open(tmp.dir, 12, true, 0), 12);
    assert.deepEqual(await outbox.peek(ALL), kept);
    await outbox.close();
  });

  it("keeps the offline queue's records when the outbox's drops compact the shared journal, and the other way round", async () => {
    const openBoth = () => {
      const journal = Journal.open(tmp.dir, 5, true, 0);
      return { journal, queue: new EmbeddedOfflineQueue(journal, 5, 20_000), outbox: new EmbeddedOutbox(journal, 5) };
    };
    const closeBoth = (s: ReturnType<typeof openBoth>) => Promise.all([s.queue.close(), s.outbox.close()]);
    let s = openBoth();
    const waiting = [queued('for bob 🌸'), queued('also for bob')];
    await s.queue.push(waiting.map((message) => ({ userId: 'bob', message })));
    // The outbox makes the journal sparse.
    const rs = records(15_000);
    await s.outbox.append(rs);
    for (let i = 0; i < 14; i++) await s.outbox.drop(1000);
    await s.journal.idle();
    // The queue makes it sparse again while the outbox holds records.
    const churn = Array.from({ length: 12_000 }, () => queued('delivered at once'));
    await s.queue.push(churn.map((message) => ({ userId: 'carol', message })));
    await Promise.all(churn.map((m) => s.queue.remove('carol', m)));
    await s.journal.idle();
    assert.ok(fs.readFileSync(path.join(tmp.dir, 'journal-5.log'), 'utf8').split('\n').length < 20_000, 'the journal was compacted');
    await closeBoth(s);
    s = openBoth();
    assert.deepEqual(await s.queue.list('bob', 100), waiting);
    assert.deepEqual(await s.queue.list('carol', 100), []);
    assert.deepEqual(await s.outbox.peek(ALL), rs.slice(14_000));
    await closeBoth(s);
  });

  it('keeps one outbox per node: two nodes in one data dir do not see each other', async () => {
    const [a, b] = [record(), record()];
    const n6 = open(6);
    const n7 = open(7);
    await n6.append([a]);
    await n7.append([b]);
    assert.deepEqual(await n6.peek(10), [a]);
    assert.deepEqual(await n7.peek(10), [b]);
    await n6.close();
    await n7.close();
    const again = open(6);
    assert.deepEqual(await again.peek(10), [a]);
    await again.close();
  });
});

describe('RedisOutbox keys', () => {
  let sandbox: RedisSandbox;
  before(async () => {
    sandbox = await redisSandbox();
  });
  after(async () => {
    await sandbox?.cleanup();
  });

  it('keeps a node\'s outbox in the list outbox:{node} under the key prefix, `key<TAB>value`, oldest at the head', async () => {
    const outbox = new RedisOutbox(sandbox.client(), 8);
    const rs = [record(), record('two words and ünï')];
    await outbox.append(rs);
    const raw = sandbox.raw();
    const key = `${sandbox.prefix}outbox:8`;
    assert.equal(await raw.type(key), 'list');
    assert.deepEqual(await raw.lrange(key, 0, -1), rs.map((r) => `${r.key}\t${r.value}`));
    await outbox.drop(1);
    assert.deepEqual(await raw.lrange(key, 0, -1), [`${rs[1].key}\t${rs[1].value}`]);
  });

  it('keeps two nodes in one Redis apart', async () => {
    const [a, b] = [record(), record()];
    const n9 = new RedisOutbox(sandbox.client(), 9);
    const n10 = new RedisOutbox(sandbox.client(), 10);
    await n9.append([a]);
    await n10.append([b]);
    assert.deepEqual(await n9.peek(10), [a]);
    assert.deepEqual(await n10.peek(10), [b]);
    await n9.drop(1);
    assert.deepEqual(await n10.peek(10), [b], "one node's drop leaves the other's outbox alone");
  });
});
