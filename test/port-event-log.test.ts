// The EventLog contract against the embedded segmented log and the real Kafka of test/stack, and what only
// one adapter promises: the embedded log survives a torn write, rolls and cleans segments, compacts its
// offsets, keeps one instance per data dir, and hashes keys stably; Kafka topics get the requested
// partitions and log-append timestamps.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, it, mock } from 'node:test';
import kafkajs from 'kafkajs';
import { EmbeddedEventLog, partitionOf, type EmbeddedEventLogOptions } from '../common/event-log-embedded.ts';
import { ConsumerGroup, type EmbeddedSubscription, type TopicState } from '../common/event-log-embedded-group.ts';
import { PartitionLog, unpackRecords } from '../common/event-log-segments.ts';
import { KafkaEventLog } from '../common/event-log-kafka.ts';
import { RpcEventLog, serveEventLog } from '../common/event-log-rpc.ts';
import type { LogRecord } from '../common/event-log.ts';
import { createLogger } from '../common/log.ts';
import { collector, eventLogContract, until } from './contracts/event-log.ts';
import { rand, rpcPair, sleep, tempDir } from './contracts/support.ts';
import { loadStackEnv } from './stack/env.ts';

const logger = createLogger(process.env.PARLEY_TEST_LOG ?? 'silent', 'event-log-test');

eventLogContract('embedded (segmented files, fsync)', async () => {
  const tmp = await tempDir('event-log');
  const open = () => new EmbeddedEventLog(tmp.dir, { fsync: true, logger, retryMinMs: 50 });
  let current = open();
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      return (current = open());
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

// The broker thread's embedded log as the consumer thread sees it: appends, consumes and each batch's
// handler cross a MessagePort; a batch is committed only after the far handler has finished.
eventLogContract('embedded over RPC (broker thread → consumer thread)', async () => {
  const tmp = await tempDir('event-log-rpc');
  let inner = new EmbeddedEventLog(tmp.dir, { fsync: true, logger, retryMinMs: 50 });
  let pair = rpcPair();
  let served = serveEventLog(pair.serving, inner);
  let current = new RpcEventLog(pair.calling, 'embedded');
  const shut = async () => {
    await current.close();
    await served.stop();
    pair.close();
    await inner.close();
  };
  return {
    adapter: current,
    reopen: async () => {
      await shut();
      inner = new EmbeddedEventLog(tmp.dir, { fsync: true, logger, retryMinMs: 50 });
      pair = rpcPair();
      served = serveEventLog(pair.serving, inner);
      return (current = new RpcEventLog(pair.calling, 'embedded'));
    },
    cleanup: async () => {
      await shut();
      await tmp.remove();
    },
  };
});

/** The test Kafka's brokers from .stack.env; fails (never skips) when the stack has no Kafka. */
function kafkaBrokers(): string[] {
  const brokers = loadStackEnv().PARLEY_KAFKA_BROKERS;
  if (!brokers) {
    throw new Error(
      'the Kafka EventLog suite needs PARLEY_KAFKA_BROKERS in .stack.env, which is missing it: ' +
        'start Kafka with `npx tsx test/stack/cli.ts up --only kafka` (npm test does this first)',
    );
  }
  return brokers.split(',');
}

/** Short group timings, so joins and rebalances take about a second rather than ten. */
const openKafka = (brokers: string[]) =>
  new KafkaEventLog(brokers, `parley-test-${rand(3)}`, {
    partitions: 6,
    logger,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 300,
    maxWaitTimeMs: 200,
    retryMinMs: 50,
  });

async function kafkaAdmin(brokers: string[]) {
  const admin = new kafkajs.Kafka({ brokers, clientId: 'parley-test-admin', logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  return admin;
}

eventLogContract('kafka (kafkajs)', async ({ topicPrefix }) => {
  const brokers = kafkaBrokers();
  let current = openKafka(brokers);
  if (!(await current.ping())) {
    await current.close();
    throw new Error(`Kafka at ${brokers.join(',')} (from .stack.env) does not answer; is the stack up? (npx tsx test/stack/cli.ts up --only kafka)`);
  }
  return {
    adapter: current,
    // A new client: what another process, or this one restarted, would see.
    reopen: async () => {
      await current.close();
      return (current = openKafka(brokers));
    },
    cleanup: async () => {
      await current.close();
      const admin = await kafkaAdmin(brokers);
      try {
        const topics = (await admin.listTopics()).filter((t) => t.startsWith(topicPrefix));
        if (topics.length > 0) await admin.deleteTopics({ topics });
        const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(topicPrefix));
        if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
      } finally {
        await admin.disconnect();
      }
    },
  };
});

const recs = (n: number, key = 'k', tag = rand(3)): LogRecord[] => Array.from({ length: n }, (_, i) => ({ key, value: `${tag}-${i}` }));

describe('EmbeddedEventLog files', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  const logs: EmbeddedEventLog[] = [];
  const open = (dir: string, options: EmbeddedEventLogOptions = {}) => {
    const l = new EmbeddedEventLog(dir, { logger, ...options });
    logs.push(l);
    return l;
  };
  const readAll = async (log: EmbeddedEventLog, topic: string, count: number) => {
    const c = collector();
    const sub = await log.consume({ topic, group: `g-${rand()}`, fromBeginning: true, handle: c.handle });
    await until(`${count} records`, () => c.records.length >= count, 10_000);
    await sleep(100);
    await sub.stop();
    return c.records;
  };
  before(async () => {
    tmp = await tempDir('event-log-files');
  });
  after(async () => {
    for (const l of logs) await l.close();
    await tmp?.remove();
  });

  it('hashes keys with FNV-1a, the same in every process', () => {
    assert.equal(partitionOf('', 4_000_000), 0x811c9dc5 % 4_000_000);
    assert.equal(partitionOf('a', 10_000), 0xe40c292c % 10_000);
    assert.equal(partitionOf('foobar', 10_000), 0xbf9cf968 % 10_000);
    for (const key of ['conv-1', 'ünï 🌸', '']) assert.ok(partitionOf(key, 6) >= 0 && partitionOf(key, 6) < 6);
    for (const key of ['conv-1', 'ünï 🌸', '']) assert.equal(partitionOf(key, 1), 0, 'one partition: every key on it');
  });

  // The consumer thread's batches cross by copy: while the analytics jobs take their turn with one, the broker
  // thread must not keep its own (an async function keeps its locals across an await; kept for that long, 2,000
  // records a batch outlived the young generation and went to the old one).
  it('keeps no reference to a batch while its handler runs', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const log = open(path.join(tmp.dir, 'handed'));
    await log.ensureTopic('t', 1);
    await log.append('t', recs(50));
    let seen: WeakRef<object> | null = null;
    let finish!: () => void;
    const pending = new Promise<void>((resolve) => (finish = resolve));
    // Not async: a handler that holds nothing itself once it has returned its promise.
    const handle = (batch: object[]) => {
      seen ??= new WeakRef(batch);
      return pending;
    };
    const sub = await log.consume({ topic: 't', group: 'handed', fromBeginning: true, handle });
    await until('a batch in hand', () => seen !== null, 5_000);
    await sleep(20);
    gc();
    await sleep(20);
    gc();
    assert.equal(seen!.deref(), undefined, 'the batch is still referenced while its handler runs');
    finish();
    await sub.stop();
  });

  it('ignores a torn last record on reopen, and appends cleanly after it', async () => {
    const dir = path.join(tmp.dir, 'torn');
    let log = open(dir);
    await log.ensureTopic('t', 1);
    const first = recs(10, 'k', 'a');
    await log.append('t', first);
    await log.close();
    const segment = path.join(dir, 'event-log', 't', '0', `${'0'.repeat(20)}.log`);
    // A crash in the middle of a write: half a record, cut inside a multi-byte character, no newline.
    const torn = Buffer.from(`[${Date.now()},"k","half a record 🌸🌸`);
    fs.appendFileSync(segment, torn.subarray(0, torn.length - 2));

    log = open(dir);
    assert.deepEqual((await readAll(log, 't', 10)).map((r) => r.value), first.map((r) => r.value));
    const second = recs(5, 'k', 'b');
    await log.append('t', second);
    await log.close();

    log = open(dir);
    const all = await readAll(log, 't', 15);
    assert.deepEqual(all.map((r) => r.value), [...first, ...second].map((r) => r.value), 'the records after the torn one are intact');
    assert.deepEqual(all.map((r) => r.offset), Array.from({ length: 15 }, (_, i) => String(i)), 'offsets continue where the whole records end');
    const text = fs.readFileSync(segment, 'utf8');
    assert.ok(text.endsWith('\n'));
    for (const line of text.slice(0, -1).split('\n')) assert.doesNotThrow(() => JSON.parse(line), `no torn bytes left: ${line.slice(0, 60)}`);
    await log.close();
  });

  it('rolls segments past their size and reads across them, before and after a restart', async () => {
    const dir = path.join(tmp.dir, 'roll');
    let log = open(dir, { segmentBytes: 4096, maxBatch: 100 });
    await log.ensureTopic('t', 1);
    const sent = recs(1000, 'k');
    for (let i = 0; i < sent.length; i += 50) await log.append('t', sent.slice(i, i + 50));
    const files = log.segmentFiles('t', 0);
    assert.ok(files.length >= 5, `${files.length} segments`);
    assert.deepEqual((await readAll(log, 't', 1000)).map((r) => r.value), sent.map((r) => r.value));
    await log.close();
    log = open(dir, { segmentBytes: 4096, maxBatch: 100 });
    const again = await readAll(log, 't', 1000);
    assert.deepEqual(again.map((r) => r.value), sent.map((r) => r.value), 'sealed segments indexed on first read');
    assert.deepEqual(again.map((r) => r.offset), sent.map((_, i) => String(i)));
    await log.close();
  });

  it('rolls without a sync on the caller\'s thread; the directory is synced on the pool before the new segment\'s records are readable', async () => {
    const dir = path.join(tmp.dir, 'roll-async');
    const log = open(dir, { segmentBytes: 4096, maxBatch: 100 });
    await log.ensureTopic('t', 1);
    // Spies that keep the real calls: they count what a roll does, and on which side of the event loop.
    const syncsHere = [mock.method(fs, 'fdatasyncSync'), mock.method(fs, 'fsyncSync')];
    const dirSyncs = mock.method(fs, 'fsync');
    try {
      const sent = recs(600, 'k');
      for (let i = 0; i < sent.length; i += 50) {
        const rolls = log.segmentFiles('t', 0).length;
        const before = dirSyncs.mock.callCount();
        await log.append('t', sent.slice(i, i + 50));
        const rolled = log.segmentFiles('t', 0).length - rolls;
        // The append resolved, so its records are durable: a roll in its write synced the directory first.
        assert.equal(dirSyncs.mock.callCount() - before, rolled, `append ${i / 50}: one directory sync per roll`);
      }
      assert.ok(log.segmentFiles('t', 0).length >= 4, `${log.segmentFiles('t', 0).length} segments`);
      assert.deepEqual(syncsHere.map((m) => m.mock.callCount()), [0, 0], 'no fdatasyncSync or fsyncSync while appending');
      assert.deepEqual((await readAll(log, 't', 600)).map((r) => r.value), sent.map((r) => r.value));
    } finally {
      for (const m of [...syncsHere, dirSyncs]) m.mock.restore();
      await log.close();
    }
    const again = open(dir, { segmentBytes: 4096, maxBatch: 100 });
    assert.equal((await readAll(again, 't', 600)).length, 600, 'every record back after a restart');
    await again.close();
  });

  it('reads a partition whose oldest records have left the in-memory tail: files first, then memory, no seam', async () => {
    const dir = path.join(tmp.dir, 'tail');
    const log = open(dir, { segmentBytes: 64 * 1024, maxBatch: 500, fsync: false });
    await log.ensureTopic('t', 1);
    // More records than the tail keeps (8,192), so a group from the beginning reads both.
    const sent = recs(12_000, 'k');
    for (let i = 0; i < sent.length; i += 1000) await log.append('t', sent.slice(i, i + 1000));
    const all = await readAll(log, 't', sent.length);
    assert.deepEqual(all.map((r) => r.value), sent.map((r) => r.value));
    assert.deepEqual(all.map((r) => r.offset), sent.map((_, i) => String(i)));
    await log.close();
  });

  it('keeps the in-memory tail exact over many small appends (records dropped and the tail cut again and again)', async () => {
    const dir = path.join(tmp.dir, 'tail-small');
    const log = open(dir, { segmentBytes: 256 * 1024, fsync: false });
    await log.ensureTopic('t', 1);
    // A group that keeps up reads from memory while the tail drops its oldest records on every append.
    const live = collector();
    const sub = await log.consume({ topic: 't', group: 'live', fromBeginning: true, handle: live.handle });
    const sent = recs(30_000, 'k');
    for (let i = 0; i < sent.length; i += 25) await log.append('t', sent.slice(i, i + 25));
    await until('the live group has all 30,000', () => live.records.length >= sent.length, 30_000);
    await sub.stop();
    assert.deepEqual(live.records.map((r) => r.value), sent.map((r) => r.value));
    assert.deepEqual(live.records.map((r) => r.offset), sent.map((_, i) => String(i)));
    // A group from the beginning reads the files, then the tail as it stands now.
    const all = await readAll(log, 't', sent.length);
    assert.deepEqual(all.map((r) => r.offset), sent.map((_, i) => String(i)));
    assert.deepEqual(all.map((r) => r.value), sent.map((r) => r.value));
    await log.close();
  });

  it('deletes segments every group has committed past, when asked to', async () => {
    const dir = path.join(tmp.dir, 'delete');
    const log = open(dir, { segmentBytes: 2048, deleteConsumed: true, fsync: false });
    await log.ensureTopic('t', 1);
    const sent = recs(400, 'k');
    for (let i = 0; i < sent.length; i += 20) await log.append('t', sent.slice(i, i + 20));
    const before = log.segmentFiles('t', 0).length;
    assert.ok(before >= 5, `${before} segments`);
    await readAll(log, 't', 400);
    const left = log.segmentFiles('t', 0);
    assert.ok(left.length <= 2, `${left.length} segments left of ${before}`);
    for (const f of left) assert.ok(fs.existsSync(f));
    // The deleted ones' files go beside the event loop, soon after.
    const partitionDir = path.dirname(left[0]);
    await until('the deleted segments\' files gone', () => fs.readdirSync(partitionDir).filter((n) => /^\d{20}\.log$/.test(n)).length === left.length, 5_000);
    // A new group reading from the beginning starts at the oldest record still there.
    const rest = await readAll(log, 't', 1);
    assert.ok(rest.length > 0 && rest.length < 400);
    assert.deepEqual(rest.map((r) => r.value), sent.slice(400 - rest.length).map((r) => r.value));
    await log.close();
  });

  it('keeps the files of consumed segments it could not delete in one run, oldest first, and says so', async () => {
    const dir = path.join(tmp.dir, 'delete-fails');
    const part = PartitionLog.open(dir, 2048, false);
    for (let i = 0; i < 400; i++) {
      part.push(i, 'k', `value ${i} ${'v'.repeat(40)}`);
      if (i % 20 === 19) part.write();
    }
    const files = part.files();
    assert.ok(files.length >= 8, `${files.length} segments`);
    // The second segment's name taken by a directory with something in it: the kernel will not unlink it.
    fs.rmSync(files[1]);
    fs.mkdirSync(files[1]);
    fs.writeFileSync(path.join(files[1], 'x'), 'x');
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const base = (f: string) => Number(path.basename(f, '.log'));
      assert.equal(part.deleteBefore(base(files[4])), 4, 'four segments out of the log at once');
      assert.equal(part.deleteBefore(base(files[6])), 2, 'two more');
      await part.removed();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(warnings.filter((w) => /deleting consumed segments failed/.test(w)).length, 1, `said once: ${warnings.join('; ')}`);
    assert.equal(fs.existsSync(files[0]), false, 'the oldest went');
    // From the one that would not go on, every file stays: one run of segments, as a restart reads them.
    for (const f of files.slice(1)) assert.ok(fs.existsSync(f), `${path.basename(f)} kept`);
    assert.deepEqual(part.files(), files.slice(6), 'the log itself starts after what was deleted');
    part.close();
  });

  it('compacts the committed offsets and resumes from them', async () => {
    const dir = path.join(tmp.dir, 'offsets');
    let log = open(dir, { maxBatch: 1, fsync: false });
    await log.ensureTopic('t', 1);
    await log.append('t', recs(1500, 'k'));
    const c = collector();
    const sub = await log.consume({ topic: 't', group: 'g', fromBeginning: true, handle: c.handle });
    await until('1,500 one-record batches', () => c.records.length >= 1500, 20_000);
    await sub.stop();
    await log.close();
    const lines = fs.readFileSync(path.join(dir, 'event-log', 't', 'offsets.log'), 'utf8').split('\n').filter(Boolean);
    assert.ok(lines.length < 1000, `${lines.length} offset records after 1,500 commits`);
    log = open(dir, { fsync: false });
    await log.append('t', [{ key: 'k', value: 'after' }]);
    const c2 = collector();
    await log.consume({ topic: 't', group: 'g', fromBeginning: true, handle: c2.handle });
    await until('the new record', () => c2.records.length >= 1);
    await sleep(100);
    assert.deepEqual(c2.values(), ['after']);
    await log.close();
  });

  it('refuses a second instance on one data dir while the first is open', async () => {
    const dir = path.join(tmp.dir, 'lock');
    const log = open(dir);
    assert.throws(() => new EmbeddedEventLog(dir), /already open/);
    await log.close();
    await open(dir).close();
  });

  it('refuses bad topic names and partition counts', async () => {
    const log = open(path.join(tmp.dir, 'names'));
    await assert.rejects(log.ensureTopic('../escape', 1), /invalid topic name/);
    await assert.rejects(log.append('a/b', [{ key: 'k', value: 'v' }]), /invalid topic name/);
    await assert.rejects(log.ensureTopic('zero', 0), /invalid partition count/);
    await log.close();
  });
});

describe('KafkaEventLog topics', () => {
  let brokers: string[];
  let log: KafkaEventLog;
  let admin: Awaited<ReturnType<typeof kafkaAdmin>>;
  const topic = `parley-test-topic-${rand()}`;
  before(async () => {
    brokers = kafkaBrokers();
    log = openKafka(brokers);
    admin = await kafkaAdmin(brokers);
  });
  after(async () => {
    await log?.close();
    await admin?.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin?.disconnect();
  });

  it('creates the topic with the requested partitions and log-append timestamps, once', async () => {
    await log.ensureTopic(topic, 3);
    const other = openKafka(brokers);
    try {
      await other.ensureTopic(topic, 5);
    } finally {
      await other.close();
    }
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(meta.topics[0].partitions.length, 3, 'an existing topic keeps its partitions');
    const config = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    const entry = config.resources[0].configEntries.find((e) => e.configName === 'message.timestamp.type');
    assert.equal(entry?.configValue, 'LogAppendTime');
  });
});

describe('embedded consumer group linger, on a clock of the test', () => {
  it('a linger that ends between claim() and nextRetryIn() still wakes the member: the records are not left waiting for an append', () => {
    let now = 10_000;
    // One partition holding 5 records, none committed: a group with a 1 s linger and one member.
    const topic: TopicState = {
      name: 't',
      partitions: [{ start: 0, end: 5 } as unknown as PartitionLog],
      offsets: { get: () => undefined } as unknown as TopicState['offsets'],
      changed: () => Promise.resolve(),
      notify: () => {},
      committed: () => {},
    };
    const settings = { maxBatch: 500, maxBatchBytes: 1 << 20, retryMinMs: 100, retryMaxMs: 5000, logger };
    const group = new ConsumerGroup('g', topic, settings, 1000, () => now);
    const member = {} as EmbeddedSubscription;
    group.join(member);
    // A batch was handed out and released: the partition lingers until 11,000.
    const first = group.claim(member, -1);
    assert.deepEqual(first, { partition: 0, from: 0, limit: 500 });
    group.release(0);
    assert.equal(group.claim(member, -1), null, 'lingering: fewer than a batch waits');
    assert.equal(group.nextRetryIn(member), 1000);
    // The linger's timer fires at 10,999 by the clock: claim() still sees it running...
    now = 10_999;
    assert.equal(group.claim(member, -1), null);
    // ...and the clock ticks before nextRetryIn(): the member must be told to look again now, not to wait
    // for a notify (before, it was told nothing and waited for good).
    now = 11_000;
    assert.equal(group.nextRetryIn(member), 0);
    assert.deepEqual(group.claim(member, -1), { partition: 0, from: 0, limit: 500 });
    // While the partition is busy, its release is what wakes the member.
    assert.equal(group.nextRetryIn(member), undefined);
  });
});

describe('embedded partition: the in-memory tail as the bytes written, and packed batches', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  before(async () => {
    tmp = await tempDir('event-log-tail');
  });
  after(async () => {
    await tmp.remove();
  });

  /** A value of `chars` characters: ASCII, two-, three- and four-byte UTF-8, and what JSON escapes. */
  const value = (chars: number, seed: number): string => {
    const alphabet = ['a', 'Z', '7', 'é', 'ß', '中', '語', '😀', '🚀', '"', '\\', '\n', '\t', ' '];
    let s = '';
    for (let i = 0; s.length < chars; i++) s += alphabet[(seed * 31 + i * 7 + ((i * i) >> 3)) % alphabet.length];
    return s;
  };

  /** A range read packed, and its records as they unpack. */
  const readBack = async (part: PartitionLog, from: number, max: number, maxBytes: number, partition = 0) => {
    const packed = await part.readPacked(partition, from, max, maxBytes);
    const records: { offset: number; timestamp: number; key: string; value: string }[] = [];
    unpackRecords(packed, part.dir, (offset, timestamp, key, v) => records.push({ offset, timestamp, key, value: v }));
    return { packed, records };
  };

  it('reads every range exactly, from memory and from the files, while the tail wraps its ring by records and by bytes', async () => {
    const part = PartitionLog.open(path.join(tmp.dir, 'wrap'), 1 << 20, false);
    const sent: { timestamp: number; key: string; value: string }[] = [];
    let seed = 1;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // ~13 MB in batches of 1-60 records, spells of 4,000 records of up to 6,000 characters (the 4 MB ring
    // wraps by bytes, several times) between spells of 11,000 short ones (it wraps its 8,192 slots first).
    let reads = 0;
    while (sent.length < 30_000) {
      const long = sent.length % 15_000 >= 11_000;
      const batch = 1 + rnd(60);
      for (let i = 0; i < batch; i++) {
        const r = { timestamp: 1_700_000_000_000 + sent.length, key: `k${rnd(50)}`, value: value(long ? rnd(6000) : rnd(40), sent.length) };
        sent.push(r);
        part.push(r.timestamp, r.key, r.value);
      }
      await part.sync(part.write());
      // A range at the newest records (memory), one just behind them, and one anywhere (often the files).
      for (const from of [Math.max(0, sent.length - 1 - rnd(200)), Math.max(0, sent.length - 1 - rnd(12_000)), rnd(sent.length)]) {
        const max = 1 + rnd(700);
        const maxBytes = 1 + rnd(1 << 20);
        const { packed, records: got } = await readBack(part, from, max, maxBytes, 3);
        assert.equal(packed.partition, 3);
        assert.equal(packed.first, from);
        assert.ok(packed.count >= 1 && packed.count <= max, `count ${packed.count} of at most ${max} at ${from}`);
        for (let i = 0; i < got.length; i++) {
          const want = sent[from + i];
          if (got[i].offset !== from + i || got[i].value !== want.value || got[i].key !== want.key || got[i].timestamp !== want.timestamp) {
            assert.fail(`record ${from + i} read back wrong (batch from ${from}, ${got.length} records)`);
          }
        }
        reads++;
      }
    }
    assert.ok(reads > 1000, `${reads} ranges read`);
    // The newest record is in memory even after the ring went round: the file is not what answered.
    const last = sent.length - 1;
    const file = part.files().at(-1)!;
    const saved = fs.readFileSync(file);
    fs.writeFileSync(file, Buffer.alloc(saved.length, 0x20));
    try {
      const [r] = (await readBack(part, last, 1, 1 << 20)).records;
      assert.equal(r.value, sent[last].value, 'served from the ring, not the (blanked) file');
    } finally {
      fs.writeFileSync(file, saved);
    }
    part.close();
  });

  it('a write larger than the tail empties it, and its records are read from the file', async () => {
    const part = PartitionLog.open(path.join(tmp.dir, 'big'), 64 << 20, false);
    for (let i = 0; i < 10; i++) part.push(i, 'k', `small ${i}`);
    await part.sync(part.write());
    const big = value(1_500_000, 7);
    for (let i = 0; i < 4; i++) part.push(100 + i, 'k', `${i}${big}`);
    await part.sync(part.write());
    for (let i = 0; i < 3; i++) part.push(200 + i, 'k', `after ${i}`);
    await part.sync(part.write());
    const all = (await readBack(part, 0, 100, 64 << 20)).records;
    assert.deepEqual(
      all.map((r) => (r.value.length > 100 ? `${r.value[0]}+big` : r.value)),
      [...Array.from({ length: 10 }, (_, i) => `small ${i}`), '0+big', '1+big', '2+big', '3+big', 'after 0', 'after 1', 'after 2'],
    );
    assert.ok(all.slice(10, 14).every((r, i) => r.value === `${i}${big}`));
    part.close();
  });

  it('unpacking names the record that is not one, and a batch whose lines do not match its count', () => {
    const bytes = (text: string) => new Uint8Array(Buffer.from(text));
    const good = '[1,"k","a"]\n[2,"k","b"]\n';
    const out: string[] = [];
    unpackRecords({ partition: 0, first: 40, count: 2, bytes: bytes(good) }, 'p0', (offset, ts, key, v) => out.push(`${offset}:${ts}:${key}:${v}`));
    assert.deepEqual(out, ['40:1:k:a', '41:2:k:b']);
    assert.throws(() => unpackRecords({ partition: 0, first: 40, count: 2, bytes: bytes('[1,"k","a"]\n{"x":1}\n') }, 'p0', () => {}), /event log record 41 in p0 is corrupt/);
    assert.throws(() => unpackRecords({ partition: 0, first: 40, count: 2, bytes: bytes('[1,"k",2]\n[2,"k","b"]\n') }, 'p0', () => {}), /event log record 40 in p0 is corrupt/);
    assert.throws(() => unpackRecords({ partition: 0, first: 40, count: 3, bytes: bytes(good) }, 'p0', () => {}), /came packed as 2 whole lines/);
    assert.throws(() => unpackRecords({ partition: 0, first: 40, count: 2, bytes: bytes(good + '[3,') }, 'p0', () => {}), /2 whole lines and 3 bytes more/);
  });

  it('refuses to hand another thread the batches of a log that is not the embedded one', async () => {
    const pair = rpcPair();
    const kafkaLike = { adapter: 'kafka', consume: () => assert.fail('consumed') } as unknown as Parameters<typeof serveEventLog>[1];
    const served = serveEventLog(pair.serving, kafkaLike);
    await assert.rejects(pair.calling.call('eventLog.consume', { id: 1, topic: 't', group: 'g', fromBeginning: true }), (err: unknown) => err instanceof RangeError && /kafka event log is not read from another thread/.test(err.message));
    await served.stop();
    pair.close();
  });

  it('hands the consumer thread its batches as the bytes written, and the far side gets the records', async () => {
    const dir = path.join(tmp.dir, 'rpc-packed');
    const inner = new EmbeddedEventLog(dir, { fsync: false, logger });
    const pair = rpcPair();
    const served = serveEventLog(pair.serving, inner);
    // The wire, seen by a handler in place of RpcEventLog's: one byte array a batch, no record objects.
    const wire: unknown[] = [];
    pair.calling.serve('eventLog.handle', async (_id: number, batch: unknown) => {
      wire.push(batch);
    });
    await inner.ensureTopic('t', 1);
    await inner.append('t', [{ key: 'k', value: 'héllo 😀' }, { key: 'k', value: 'two' }]);
    await pair.calling.call('eventLog.consume', { id: 1, topic: 't', group: 'g', fromBeginning: true });
    await until('a batch crossed', () => wire.length > 0, 5000);
    const batch = wire[0] as { partition: number; first: number; count: number; bytes: Uint8Array };
    assert.ok(batch.bytes instanceof Uint8Array, 'the lines as bytes');
    assert.deepEqual([batch.partition, batch.first, batch.count], [0, 0, 2]);
    const records: string[] = [];
    unpackRecords(batch, 't/0', (offset, _ts, key, v) => records.push(`${offset} ${key} ${v}`));
    assert.deepEqual(records, ['0 k héllo 😀', '1 k two']);
    await pair.calling.call('eventLog.stop', 1);
    await served.stop();
    pair.close();
    await inner.close();
  });
});
