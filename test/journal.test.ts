// The journal the embedded offline queue and outbox share: what a message leaves in both goes to disk in one
// write and one fdatasync; each store reads back only its own records; a compaction keeps every store's live
// records, including those of a store this process did not open; files of the versions before the journal
// are folded in at start.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { Journal } from '../common/journal.ts';
import { tempDir } from './contracts/support.ts';
import { logRecords } from './helpers/log-file.ts';

const NODE = 3;
const message = (n: number) => ({ id: `9000000000000${n}`, payload: `{"id":"9000000000000${n}","body":"m${n}"}` });

/** Compactions as soon as most records are dead, at any file size (whatever the default). */
const COMPACT_ANY_SIZE = 0;

function openBoth(dir: string) {
  const journal = Journal.open(dir, NODE, true, COMPACT_ANY_SIZE);
  return { journal, queue: new EmbeddedOfflineQueue(journal, NODE, 100_000), outbox: new EmbeddedOutbox(journal, NODE) };
}

async function closeBoth(s: { queue: EmbeddedOfflineQueue; outbox: EmbeddedOutbox }) {
  await s.queue.close();
  await s.outbox.close();
}

/** Counts fs.fdatasync calls made while `work` runs. */
async function countSyncs(work: () => Promise<unknown>): Promise<number> {
  const original = fs.fdatasync;
  let calls = 0;
  fs.fdatasync = ((fd: number, cb: fs.NoParamCallback) => {
    calls++;
    return original(fd, cb);
  }) as typeof fs.fdatasync;
  try {
    await work();
  } finally {
    fs.fdatasync = original;
  }
  return calls;
}

describe('Journal (embedded queue + outbox)', () => {
  it('makes a message durable in the queue and the outbox with one fdatasync', async () => {
    const tmp = await tempDir('journal');
    const s = openBoth(tmp.dir);
    // As storeForRecipients does it: both appends in the same turn.
    const syncs = await countSyncs(() => Promise.all([s.queue.push([{ userId: 'bob', message: message(1) }]), s.outbox.append([{ key: 'alice:bob', value: '{"v":1}' }])]));
    assert.equal(syncs, 1, 'one commit for both stores');
    const lines = logRecords(path.join(tmp.dir, `journal-${NODE}.log`));
    assert.deepEqual(lines, [`q + bob ${message(1).id} ${message(1).payload}`, 'o + alice:bob\t{"v":1}']);
    assert.deepEqual(await fs.promises.readdir(tmp.dir), [`journal-${NODE}.log`], 'no other file');
    await closeBoth(s);
    await tmp.remove();
  });

  it('appends several channels\' records in one append, in order, and refuses another journal\'s channel', async () => {
    const tmp = await tempDir('journal-append-all');
    const s = openBoth(tmp.dir);
    const syncs = await countSyncs(() => s.journal.appendAll([s.queue.stage([{ userId: 'bob', message: message(2) }]), s.outbox.stage([{ key: 'alice:bob', value: '{"v":2}' }])]));
    assert.equal(syncs, 1);
    assert.deepEqual(logRecords(path.join(tmp.dir, `journal-${NODE}.log`)), [`q + bob ${message(2).id} ${message(2).payload}`, 'o + alice:bob\t{"v":2}']);
    assert.deepEqual(await s.queue.list('bob', 10), [message(2)], 'staged records are in memory');
    const other = await tempDir('journal-append-all-other');
    const foreign = openBoth(other.dir);
    await assert.rejects(s.journal.appendAll([foreign.outbox.stage([{ key: 'x:y', value: '{}' }])]), /is not of/);
    assert.equal(logRecords(path.join(tmp.dir, `journal-${NODE}.log`)).length, 2, 'nothing written');
    await closeBoth(foreign);
    await other.remove();
    await closeBoth(s);
    await tmp.remove();
  });

  it('reports each commit\'s fdatasync time to its observer (parley_journal_fsync_seconds)', async () => {
    const tmp = await tempDir('journal-sync-time');
    const s = openBoth(tmp.dir);
    const seen: number[] = [];
    s.journal.onSync = (seconds) => seen.push(seconds);
    const syncs = await countSyncs(async () => {
      await Promise.all([s.queue.push([{ userId: 'bob', message: message(1) }]), s.outbox.append([{ key: 'alice:bob', value: '{"v":1}' }])]);
      await s.queue.push([{ userId: 'bob', message: message(2) }]);
    });
    assert.equal(seen.length, syncs, 'one observation per fdatasync');
    assert.equal(seen.length, 2);
    for (const t of seen) assert.ok(t > 0 && t < 10, `a duration in seconds: ${t}`);
    // Records that need no durability start no fdatasync, so nothing is observed for them.
    await s.queue.remove('bob', message(1));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, 2);
    await closeBoth(s);
    await tmp.remove();
  });

  it('gives each store only its own records back after a restart', async () => {
    const tmp = await tempDir('journal');
    let s = openBoth(tmp.dir);
    await s.queue.push([{ userId: 'bob', message: message(1) }, { userId: 'carol', message: message(2) }]);
    await s.outbox.append([{ key: 'k1', value: 'v1' }, { key: 'k2', value: 'v2 with spaces and a - sign' }]);
    await s.queue.remove('bob', message(1));
    await s.outbox.drop(1);
    await closeBoth(s);
    s = openBoth(tmp.dir);
    assert.deepEqual(await s.queue.list('bob', 10), []);
    assert.deepEqual(await s.queue.list('carol', 10), [message(2)]);
    assert.deepEqual(await s.outbox.peek(10), [{ key: 'k2', value: 'v2 with spaces and a - sign' }]);
    await closeBoth(s);
    await tmp.remove();
  });

  it('compacts to both stores\' live records, and keeps records of a store this process did not open', async () => {
    const tmp = await tempDir('journal');
    const file = path.join(tmp.dir, `journal-${NODE}.log`);
    let s = openBoth(tmp.dir);
    await s.outbox.append([{ key: 'kept', value: 'outbox record' }]);
    await closeBoth(s);
    // A process with only the queue: the outbox's record must survive its compactions.
    const journal = Journal.open(tmp.dir, NODE, true, COMPACT_ANY_SIZE);
    const queue = new EmbeddedOfflineQueue(journal, NODE, 100_000);
    const all = Array.from({ length: 12_000 }, (_, i) => message(i));
    await queue.push(all.map((m) => ({ userId: 'bob', message: m })));
    for (const m of all.slice(0, 11_900)) await queue.remove('bob', m);
    await journal.idle();
    await queue.close();
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    // Without compaction 24,001 records; the journal rewrites itself once past 10,000 records mostly dead.
    assert.ok(lines.length <= 10_001, `compacted: ${lines.length} records`);
    assert.ok(lines.includes('o + kept\toutbox record'), 'the unclaimed outbox record is carried over');
    s = openBoth(tmp.dir);
    assert.deepEqual(await s.queue.list('bob', 1_000), all.slice(11_900));
    assert.deepEqual(await s.outbox.peek(10), [{ key: 'kept', value: 'outbox record' }]);
    await closeBoth(s);
    await tmp.remove();
  });

  it('compacts to the stores\' state when the compaction started, whatever they do while it is written', async () => {
    const tmp = await tempDir('journal-compact-busy');
    let s = openBoth(tmp.dir);
    const body = 'y'.repeat(150);
    const users = ['u0', 'u1', 'u2'];
    const queued = Array.from({ length: 6_000 }, (_, i) => ({ id: `8000000000${i}`, payload: `{"n":${i},"body":"${body}"}` }));
    await s.queue.push(queued.map((m, i) => ({ userId: users[i % 3], message: m })));
    // Every other message of each queue removed out of order: the queues are full and half holes, so
    // the next message each gets makes it close them (UserQueue's compact() moves messages down).
    for (let i = 0; i < queued.length; i += 2) await s.queue.remove(users[i % 3], queued[i]);
    await s.outbox.append(Array.from({ length: 3_000 }, (_, i) => ({ key: `k${i}`, value: `v${i} ${body}` })));
    // A user who stays away: nothing writes to that queue during the compaction.
    const away = Array.from({ length: 50 }, (_, i) => ({ id: `5000000000${i}`, payload: '{"away":true}' }));
    await s.queue.push(away.map((message) => ({ userId: 'away', message })));
    // Dead records enough for a compaction to be worth it, which is then started by hand.
    const churn = Array.from({ length: 20_000 }, (_, i) => ({ id: `7000000000${i}`, payload: '{}' }));
    await s.queue.push(churn.map((m) => ({ userId: 'churn', message: m })));
    for (const m of churn) await s.queue.remove('churn', m);
    await s.journal.idle();
    const log = (s.journal as unknown as { log: { rewriting: unknown } }).log;
    const compacting = s.journal.compact();
    let done = false;
    void compacting.then(() => (done = true));
    // While the snapshot (~1 MB, many slices) is read and written: new messages (each queue closes its
    // holes at the first), out-of-order removals, outbox drops and appends.
    // (Durable appends written during the rewrite are answered after the new file's sync: not waited on here.)
    let duringRewrite = 0;
    let next = 1;
    const work: Promise<void>[] = [];
    for (let turn = 0; !done && turn < 5_000; turn++) {
      if (log.rewriting) duringRewrite++;
      for (const [u, userId] of users.entries()) work.push(s.queue.push([{ userId, message: { id: `6000000000${turn}${u}`, payload: `{"extra":${turn}}` } }]));
      for (let k = 0; k < 20 && next < queued.length; k++, next += 2) work.push(s.queue.remove(users[next % 3], queued[next]));
      work.push(s.outbox.drop(25));
      work.push(s.outbox.append([{ key: `late${turn}`, value: 'w' }]));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await compacting, true, 'the compaction worked');
    await Promise.all(work);
    assert.ok(duringRewrite >= 2, `the stores changed while the snapshot was being written (${duringRewrite} turns)`);
    const all = [...users, 'away', 'churn'];
    const expectQueues = await Promise.all(all.map((u) => s.queue.list(u, 100_000)));
    const expectOutbox = await s.outbox.peek(100_000);
    assert.ok(logRecords(path.join(tmp.dir, `journal-${NODE}.log`)).length < 6_000 * 2 + 3_000 + 40_000, 'the file was rewritten');
    // The compaction over, a queue it read changes its arrays in place again (no copy at its next write).
    const arrays = () => (s.queue as unknown as { queues: Map<string, { ids: unknown[] }> }).queues.get('away')?.ids;
    const held = arrays();
    await s.queue.remove('away', away[0]);
    expectQueues[3].shift();
    assert.equal(arrays(), held, 'the snapshot released the queues');
    await closeBoth(s);
    s = openBoth(tmp.dir);
    assert.deepEqual(await Promise.all(all.map((u) => s.queue.list(u, 100_000))), expectQueues, 'every queue, in order');
    assert.deepEqual(await s.outbox.peek(100_000), expectOutbox, 'the outbox');
    await closeBoth(s);
    await tmp.remove();
  });

  it('keeps serving when a compaction fails: removals succeed, the failure is reported once, tried again later', async () => {
    const tmp = await tempDir('journal-compact-fails');
    const file = path.join(tmp.dir, `journal-${NODE}.log`);
    // The compaction writes `journal-3.log.tmp` first: a directory there makes the kernel refuse it (EISDIR).
    fs.mkdirSync(`${file}.tmp`);
    const s = openBoth(tmp.dir);
    const failures: unknown[] = [];
    s.journal.onCompactionFailed = (err) => failures.push(err);
    const compactions: number[] = [];
    s.journal.onCompacted = (seconds) => compactions.push(seconds);
    const all = Array.from({ length: 12_000 }, (_, i) => message(i));
    await s.queue.push(all.map((m) => ({ userId: 'bob', message: m })));
    await s.outbox.append([{ key: 'kept', value: 'outbox record' }]);
    // Mostly dead after 7,201 removals: a compaction is due there, fails, and is tried again 1,000 records
    // after its failure (compactions run beside the removals, so where exactly depends on the disk).
    for (const m of all.slice(0, 9_000)) await s.queue.remove('bob', m);
    await s.journal.idle();
    assert.ok(failures.length >= 1 && failures.length <= 2, `one try per 1,000 records, not one per removal: ${failures.length}`);
    for (const err of failures) assert.match(String((err as NodeJS.ErrnoException).code), /EISDIR/);
    assert.equal(compactions.length, 0);
    assert.equal(logRecords(file).length, 12_000 + 1 + 9_000, 'the journal as it was, every record kept');
    // The disk is fixed: the next try compacts.
    fs.rmdirSync(`${file}.tmp`);
    const failed = failures.length;
    for (const m of all.slice(9_000, 11_900)) await s.queue.remove('bob', m);
    await s.journal.idle();
    assert.equal(failures.length, failed);
    assert.ok(logRecords(file).length < 10_000, `compacted: ${logRecords(file).length} records`);
    assert.equal(compactions.length, 1, 'the compaction that worked was timed (parley_journal_compaction_seconds)');
    assert.ok(compactions[0] > 0 && compactions[0] < 10);
    await closeBoth(s);
    const again = openBoth(tmp.dir);
    assert.deepEqual(await again.queue.list('bob', 1_000), all.slice(11_900));
    assert.deepEqual(await again.outbox.peek(10), [{ key: 'kept', value: 'outbox record' }]);
    await closeBoth(again);
    await tmp.remove();
  });

  it('folds an outbox file of an earlier version in, in order before the journal\'s own records', async () => {
    const tmp = await tempDir('journal');
    const legacy = path.join(tmp.dir, `outbox-${NODE}.log`);
    fs.writeFileSync(legacy, ['+ a\tfirst', '+ b\tsecond', '- 1', '+ c\tthird', ''].join('\n'));
    let s = openBoth(tmp.dir);
    await s.journal.idle();
    assert.equal(fs.existsSync(legacy), false);
    assert.deepEqual(await s.outbox.peek(10), [
      { key: 'b', value: 'second' },
      { key: 'c', value: 'third' },
    ]);
    await s.outbox.append([{ key: 'd', value: 'fourth' }]);
    await closeBoth(s);
    s = openBoth(tmp.dir);
    assert.deepEqual(
      (await s.outbox.peek(10)).map((r) => r.key),
      ['b', 'c', 'd'],
    );
    await closeBoth(s);
    await tmp.remove();
  });

  it('refuses a second channel of the same tag and tags that could break a record', async () => {
    const tmp = await tempDir('journal');
    const journal = Journal.open(tmp.dir, NODE, true);
    const queue = new EmbeddedOfflineQueue(journal, NODE, 10);
    assert.throws(() => new EmbeddedOfflineQueue(journal, NODE, 10), /channel q is open already/);
    const state = { live: () => [], liveCount: () => 0 };
    assert.throws(() => journal.channel('a b', state, () => {}), /lowercase letters/);
    assert.throws(() => journal.channel('', state, () => {}), /lowercase letters/);
    await queue.close();
    await tmp.remove();
  });
});
