// The EventLog contract: records come back byte-exact, in order per key, with their partition, offset and
// time; every group gets everything; the members of one group split the records between them and take over
// a stopped member's share; a group resumes after what it committed; a batch whose handler throws comes
// again and nothing is skipped. A backend with `reopen` must also keep records and offsets across a restart.
// Every test uses its own topic and groups.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { ConsumedRecord, EventLog, LogRecord, Subscription } from '../../common/event-log.ts';
import { rand, sleep, type Fixture } from './support.ts';

/** `topicPrefix` starts every topic and group name the suite makes, so a fixture can clean them up. */
export type EventLogFactory = (ctx: { topicPrefix: string }) => Promise<Fixture<EventLog>>;

const PARTITIONS = 6;
/** Kafka group joins and rebalances take seconds. */
const WAIT_MS = 45_000;

export const hardValues: readonly string[] = [
  JSON.stringify({ kind: 'text', body: 'line one\nline two\r\n\ttabbed "quoted" \\ backslash \u0000 nul' }),
  'ünïcødé 🌸 李小龍 עברית e\u0301 \u2028 \u2029 \u0085 \ufeff',
  '[1700000000000,"looks","like a stored record"]',
  '',
  'x'.repeat(200 * 1024),
];

/** A handler that keeps every batch it was given, plus a wait for a condition on them. */
export function collector(onBatch?: (batch: ConsumedRecord[], calls: number) => Promise<void> | void) {
  const batches: ConsumedRecord[][] = [];
  const records: ConsumedRecord[] = [];
  let calls = 0;
  return {
    batches,
    records,
    values: () => records.map((r) => r.value),
    async handle(batch: ConsumedRecord[]): Promise<void> {
      calls++;
      await onBatch?.(batch, calls);
      batches.push(batch);
      records.push(...batch);
    },
  };
}

export async function until(what: string, cond: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** `count` records over `keys` keys; the value names the key and the record's sequence within its key. */
function records(count: number, keys: number, tag = rand(3), seq = new Map<string, number>()): LogRecord[] {
  return Array.from({ length: count }, (_, i) => {
    const key = `conv-${tag}-${i % keys}`;
    const n = seq.get(key) ?? 0;
    seq.set(key, n + 1);
    return { key, value: `${key}#${n}` };
  });
}

function byKey(rs: readonly { key: string; value: string }[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of rs) {
    let l = m.get(r.key);
    if (!l) m.set(r.key, (l = []));
    l.push(r.value);
  }
  return m;
}

const uniqueIds = (rs: readonly ConsumedRecord[]) => new Set(rs.map((r) => `${r.partition}/${r.offset}`));

export function eventLogContract(name: string, make: EventLogFactory): void {
  describe(`EventLog contract: ${name}`, () => {
    const topicPrefix = `parley-test-${rand(3)}-`;
    let f: Fixture<EventLog>;
    let log: EventLog;
    const subs: Subscription[] = [];
    const topic = () => `${topicPrefix}${rand()}`;
    const group = () => `${topicPrefix}g-${rand()}`;
    const consume = async (t: string, g: string, handle: (b: ConsumedRecord[]) => Promise<void>, fromBeginning = true) => {
      const sub = await log.consume({ topic: t, group: g, fromBeginning, handle });
      subs.push(sub);
      return sub;
    };

    before(async () => {
      f = await make({ topicPrefix });
      log = f.adapter;
    });
    after(async () => {
      await Promise.all(subs.map((s) => s.stop()));
      await f?.cleanup();
    });

    it('answers ping', async () => {
      assert.equal(await log.ping(), true);
    });

    it('creates a topic once: a second ensureTopic is fine', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      await log.ensureTopic(t, PARTITIONS);
      await log.append(t, [{ key: 'k', value: 'v' }]);
    });

    it('delivers every record from the beginning, byte-exact, in order per key, with partition, offset and time', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const before = Date.now();
      const seq = new Map<string, number>();
      const sent = [...records(30, 7, 'a', seq)];
      await log.append(t, sent.slice(0, 10));
      await log.append(t, sent.slice(10));
      const hard = hardValues.map((value) => ({ key: 'ключ 🌸 with spaces\nand a newline', value }));
      await log.append(t, hard);
      sent.push(...hard);
      const more = records(12, 7, 'a', seq);
      await log.append(t, more);
      sent.push(...more);
      const afterAppend = Date.now();

      const c = collector();
      await consume(t, group(), c.handle);
      await until(`${sent.length} records`, () => c.records.length >= sent.length);
      await sleep(200);
      assert.equal(c.records.length, sent.length, 'nothing twice');
      assert.deepEqual(byKey(c.records), byKey(sent), 'every key in append order, values byte-exact');

      const partitionOfKey = new Map<string, number>();
      const lastOffset = new Map<number, bigint>();
      for (const r of c.records) {
        assert.ok(Number.isInteger(r.partition) && r.partition >= 0 && r.partition < PARTITIONS, `partition ${r.partition}`);
        assert.match(r.offset, /^\d+$/);
        const prev = lastOffset.get(r.partition);
        assert.ok(prev === undefined || BigInt(r.offset) > prev, 'offsets grow within a partition');
        lastOffset.set(r.partition, BigInt(r.offset));
        assert.equal(partitionOfKey.get(r.key) ?? r.partition, r.partition, 'one key, one partition');
        partitionOfKey.set(r.key, r.partition);
        assert.ok(r.timestamp >= before - 1000 && r.timestamp <= afterAppend + 1000, `timestamp ${r.timestamp} within the appends`);
      }
      assert.equal(uniqueIds(c.records).size, sent.length, 'distinct (partition, offset)');
      for (const b of c.batches) assert.ok(b.length > 0, 'no empty batch');
    });

    it('starts a new group at the end when fromBeginning is false', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      await log.append(t, records(20, 5, 'old'));
      const c = collector();
      await consume(t, group(), c.handle, false);
      const fresh = records(20, 5, 'new');
      await log.append(t, fresh);
      await until('the new records', () => c.records.length >= fresh.length);
      await sleep(300);
      assert.deepEqual(byKey(c.records), byKey(fresh), 'the new records only, in order');
    });

    it('delivers records appended while a consumer runs promptly', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const c = collector();
      await consume(t, group(), c.handle);
      const lags: number[] = [];
      for (let i = 0; i < 5; i++) {
        const sent = Date.now();
        await log.append(t, [{ key: `k${i}`, value: `v${i}` }]);
        await until(`record ${i}`, () => c.records.length > i, 5000);
        lags.push(Date.now() - sent);
      }
      assert.ok(Math.max(...lags) < 1000, `delivered within a second of the append: ${lags.join(', ')} ms`);
    });

    it('gives every group all the records', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const sent = records(200, 20);
      await log.append(t, sent);
      const [a, b] = [collector(), collector()];
      await consume(t, group(), a.handle);
      await consume(t, group(), b.handle);
      await until('both groups', () => a.records.length >= sent.length && b.records.length >= sent.length);
      assert.deepEqual(byKey(a.records), byKey(sent));
      assert.deepEqual(byKey(b.records), byKey(sent));
    });

    it("splits partitions between the members of a group, and gives a stopped member's share to the others", async () => {
      const t = topic();
      const g = group();
      await log.ensureTopic(t, PARTITIONS);
      const [a, b] = [collector(), collector()];
      const subA = await consume(t, g, a.handle);
      await consume(t, g, b.handle);
      const seq = new Map<string, number>();
      const first = records(600, 60, 's', seq);
      await log.append(t, first);
      await until('all of the first records', () => new Set([...a.values(), ...b.values()]).size >= first.length);
      await sleep(300);
      const inA = new Set(a.values());
      assert.equal(b.values().filter((v) => inA.has(v)).length, 0, 'no record handled by both members');
      assert.ok(a.records.length > 0 && b.records.length > 0, `both members got a share (${a.records.length}, ${b.records.length})`);
      assert.equal(a.records.length + b.records.length, first.length, 'nothing twice');
      const keysA = new Set(a.records.map((r) => r.key));
      assert.ok(!b.records.some((r) => keysA.has(r.key)), 'a key stays with one member');
      assert.deepEqual(byKey([...a.records, ...b.records]), byKey(first));

      await subA.stop();
      const handledByA = a.records.length;
      const second = records(300, 60, 's', seq);
      await log.append(t, second);
      const secondValues = new Set(second.map((r) => r.value));
      await until('the remaining member to get every new record', () => b.values().filter((v) => secondValues.has(v)).length >= second.length);
      assert.equal(a.records.length, handledByA, 'a stopped member gets nothing');
      assert.deepEqual(byKey(b.records.filter((r) => secondValues.has(r.value))), byKey(second), 'in order per key');
    });

    it('continues a group after the offsets a stopped member committed', async () => {
      const t = topic();
      const g = group();
      await log.ensureTopic(t, PARTITIONS);
      const seq = new Map<string, number>();
      const first = records(600, 30, 'c', seq);
      await log.append(t, first);
      const c1 = collector(() => sleep(30));
      const sub1 = await consume(t, g, c1.handle);
      await until('a first handled batch', () => c1.batches.length >= 1);
      await sub1.stop();
      const handled = new Set(c1.values());
      assert.ok(handled.size > 0 && handled.size < first.length, `stopped mid-stream (${handled.size} of ${first.length})`);

      const second = records(100, 30, 'c', seq);
      await log.append(t, second);
      const c2 = collector();
      await consume(t, g, c2.handle);
      const all = [...first, ...second];
      await until('the rest', () => new Set([...c1.values(), ...c2.values()]).size >= all.length);
      await sleep(300);
      const again = c2.values().filter((v) => handled.has(v));
      assert.deepEqual(again, [], 'nothing committed is read again');
      assert.equal(c2.records.length, all.length - handled.size, 'nothing missing, nothing twice');
      assert.deepEqual(byKey([...c1.records, ...c2.records].sort((x, y) => x.partition - y.partition || Number(BigInt(x.offset) - BigInt(y.offset)))), byKey(all));
    });

    it('gives a batch whose handler threw to the handler again, and skips nothing', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const sent = records(300, 12);
      await log.append(t, sent);
      const attempts: ConsumedRecord[][] = [];
      const c = collector((batch, calls) => {
        attempts.push(batch);
        if (calls <= 2) throw new Error(`injected failure ${calls}`);
      });
      await consume(t, group(), c.handle);
      await until('every record handled', () => c.records.length >= sent.length);
      await sleep(300);
      assert.equal(c.records.length, sent.length, 'each record handled once');
      assert.deepEqual(byKey(c.records), byKey(sent), 'in order per key');

      const failed = attempts[0];
      const next = attempts.slice(1).find((b) => b[0].partition === failed[0].partition);
      assert.ok(next, 'the failed partition was delivered again');
      const ids = (b: ConsumedRecord[]) => b.map((r) => `${r.offset} ${r.value}`);
      assert.deepEqual(ids(next).slice(0, failed.length), ids(failed), 'the same records again, from the same offset');
    });

    it('keeps the order of 5,000 records over 50 keys, appended by concurrent calls', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const seq = new Map<string, number>();
      const calls = Array.from({ length: 10 }, () => records(500, 50, 'o', seq));
      await Promise.all(calls.map((rs) => log.append(t, rs)));
      const sent = calls.flat();
      const c = collector();
      await consume(t, group(), c.handle);
      await until('5,000 records', () => c.records.length >= sent.length);
      await sleep(200);
      assert.equal(c.records.length, sent.length, 'nothing twice');
      const got = byKey(c.records);
      assert.equal(got.size, 50);
      for (const [key, values] of got) {
        assert.deepEqual(values, Array.from({ length: 100 }, (_, i) => `${key}#${i}`), `order of ${key}`);
      }
    });

    it('with a linger, lets records appended one by one gather into a few batches, and loses none', async () => {
      const t = topic();
      await log.ensureTopic(t, PARTITIONS);
      const c = collector();
      const sub = await log.consume({ topic: t, group: group(), fromBeginning: true, lingerMs: 1500, handle: c.handle });
      subs.push(sub);
      const sent = records(30, 1, 'l');
      for (const r of sent) {
        await log.append(t, [r]);
        await sleep(20);
      }
      await until('every lingering record', () => c.records.length >= sent.length);
      await sleep(200);
      assert.deepEqual(c.values(), sent.map((r) => r.value), 'all of them, once, in order');
      // Without a linger each append (20 ms apart, ~0.7 s in all) is its own batch; with 1.5 s, a few hold them all.
      assert.ok(c.batches.length <= 4, `${c.batches.length} batches for ${sent.length} appends`);
    });

    it('keeps records and committed offsets across a restart', async (ctx) => {
      if (!f.reopen) return ctx.skip('this backend has no reopen');
      const t = topic();
      const g = group();
      await log.ensureTopic(t, PARTITIONS);
      const seq = new Map<string, number>();
      const first = records(100, 10, 'r', seq);
      await log.append(t, first);
      const c1 = collector();
      const sub1 = await consume(t, g, c1.handle);
      await until('the first records', () => c1.records.length >= first.length);
      await sub1.stop();

      log = await f.reopen();
      const second = records(50, 10, 'r', seq);
      await log.append(t, second);
      const [c2, fresh] = [collector(), collector()];
      await consume(t, g, c2.handle);
      await consume(t, group(), fresh.handle);
      await until('the group to resume and a new group to read it all', () => c2.records.length >= second.length && fresh.records.length >= first.length + second.length);
      await sleep(300);
      assert.deepEqual(byKey(c2.records), byKey(second), 'the group resumes after its commits');
      assert.deepEqual(byKey(fresh.records), byKey([...first, ...second]), 'the records are all still there');
    });
  });
}
