// The group-commit file under the embedded queue, outbox and offsets: appends made while an earlier commit
// is syncing join the next one, every promise resolves only after its records are in the file (and an
// append is told once they are written, before the sync), order is append order, and rewrite/close while a
// sync is in flight lose nothing.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { AppendLog } from '../common/append-log.ts';
import { tempDir } from './contracts/support.ts';
import { logRecords as lines } from './helpers/log-file.ts';

/** What a restart reads from a copy of the file, leaving the file and its open log alone. */
function reopenCopy(file: string): string[] {
  const copy = `${file}.copy`;
  fs.copyFileSync(file, copy);
  const seen = reopen(copy);
  fs.rmSync(copy);
  return seen;
}

function reopen(file: string, readBytes?: number): string[] {
  const seen: string[] = [];
  AppendLog.open(file, true, (r) => seen.push(r), readBytes).close();
  return seen;
}

describe('AppendLog', () => {
  it('keeps append order across commits and resolves each append only once its records are in the file', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/a.log`;
    const log = AppendLog.open(file, true, () => assert.fail('new file has no records'));
    const expected: string[] = [];
    const done: Promise<void>[] = [];
    // Bursts in several turns: some land while an earlier commit's fdatasync is in flight.
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < 50; i++) {
        const record = `r${turn}-${i}`;
        expected.push(record);
        done.push(
          log.append([record]).then(() => {
            assert.ok(lines(file).includes(record), `${record} resolved before it was written`);
          }),
        );
      }
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(done);
    assert.equal(log.records, 1000);
    log.close();
    assert.deepEqual(reopen(file), expected);
    await tmp.remove();
  });

  it('rewrite and close with a sync in flight keep every record and leave the file usable', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/b.log`;
    const log = AppendLog.open(file, true, () => undefined);
    const first = log.append(['a', 'b', 'c']);
    await new Promise((r) => setImmediate(r)); // the commit of a, b, c has started
    const second = log.append(['d']);
    log.rewrite(['b', 'c', 'd']); // the owner's live state: a was consumed
    assert.equal(log.records, 3);
    await Promise.all([first, second]);
    const third = log.append(['e']);
    await new Promise((r) => setImmediate(r));
    const fourth = log.append(['f']);
    log.close(); // f is written and synced now, e's sync may still be running
    await Promise.all([third, fourth]);
    await assert.rejects(log.append(['g']), /closed/);
    assert.deepEqual(reopen(file), ['b', 'c', 'd', 'e', 'f']);
    await tmp.remove();
  });

  it('rewrites in the background while appends go on: the snapshot, then everything written since, in order', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/bg.log`;
    const log = AppendLog.open(file, true, () => undefined);
    try {
      await log.append(['a', 'b', 'c', 'd']);
      const syncs: number[] = [];
      log.onSync = (s) => syncs.push(s);
      // The owner's live state is c, d: a and b were consumed.
      const rewriting = log.rewriteInBackground(() => ['c', 'd']);
      const during: Promise<void>[] = [];
      const order: string[] = [];
      let rewritten = false;
      void rewriting.then(() => (rewritten = true));
      // Appends in the turns the rewrite takes: durable ones, and ones that only wait for the write.
      for (let turn = 0; !rewritten && turn < 500; turn++) {
        const [durable, written] = [`e${turn}`, `w${turn}`];
        order.push(durable, written);
        during.push(
          log.append([durable]).then(() => {
            // Answered once on disk, in the file that holds it by then.
            assert.ok(lines(file).includes(durable), `${durable} answered before it was in the file`);
          }),
          log.append([written], false),
        );
        await new Promise((r) => setImmediate(r));
      }
      const held = await rewriting;
      assert.ok(held >= 0 && held < 1, `the seconds it held the event loop: ${held}`);
      assert.ok(order.length > 0, 'appends went on during the rewrite');
      const after = log.append(['z']);
      await Promise.all([...during, after]);
      assert.deepEqual(reopenCopy(file), ['c', 'd', ...order, 'z'], 'the snapshot, what was written meanwhile, and what came after');
      assert.equal(log.records, 2 + order.length + 1);
      assert.equal(fs.existsSync(`${file}.tmp`), false);
    } finally {
      log.close();
    }
    await tmp.remove();
  });

  it('reads a big snapshot a slice per turn: appends are written between the slices, and follow the snapshot in the file', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/bg-slices.log`;
    const log = AppendLog.open(file, true, () => undefined);
    try {
      await log.append(['old']);
      // ~1.2 MB of snapshot: many slices.
      const snapshot = Array.from({ length: 10_000 }, (_, i) => `s${i} ${'x'.repeat(120)}`);
      let read = 0;
      const readAtAppend: number[] = [];
      const rewriting = log.rewriteInBackground(function* () {
        for (const r of snapshot) {
          read++;
          yield r;
        }
      });
      let rewritten = false;
      void rewriting.then(() => (rewritten = true));
      const appended: string[] = [];
      const during: Promise<void>[] = [];
      for (let turn = 0; !rewritten && turn < 10_000; turn++) {
        appended.push(`a${turn}`);
        during.push(log.append([`a${turn}`], false).then(() => void readAtAppend.push(read)));
        await new Promise((r) => setImmediate(r));
      }
      await rewriting;
      await Promise.all(during);
      const midway = readAtAppend.filter((n) => n > 0 && n < snapshot.length);
      assert.ok(midway.length >= 2, `appends were written while the snapshot was being read (${midway.length} of ${readAtAppend.length})`);
      assert.deepEqual(reopenCopy(file), [...snapshot, ...appended], 'the whole snapshot, then the appends in order');
      assert.equal(log.records, snapshot.length + appended.length);
    } finally {
      log.close();
    }
    await tmp.remove();
  });

  it('a background rewrite that fails, or is overtaken by close, leaves the file as it was, with every append', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/bg-fail.log`;
    let log = AppendLog.open(file, true, () => undefined);
    await log.append(['a', 'b']);
    // The temp file's path is taken by a directory: the kernel refuses to open it for writing.
    fs.mkdirSync(`${file}.tmp`);
    const failing = log.rewriteInBackground(() => ['b']);
    const meanwhile = log.append(['c']);
    await assert.rejects(failing, /EISDIR/);
    await meanwhile;
    await log.append(['d']);
    assert.deepEqual(reopenCopy(file), ['a', 'b', 'c', 'd'], 'nothing lost, nothing rewritten');
    assert.ok(fs.statSync(`${file}.tmp`).isDirectory(), 'what stood in the way is left alone');
    fs.rmdirSync(`${file}.tmp`);
    // Closed while the rewrite writes its temp file: the rewrite gives up, the appends it held are synced.
    const closing = log.rewriteInBackground(() => ['d']);
    const held = log.append(['e']);
    await new Promise((r) => setImmediate(r));
    log.close();
    await assert.rejects(closing, /closed/);
    await held;
    assert.deepEqual(reopen(file), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(fs.existsSync(`${file}.tmp`), false, 'no temp file left behind');
    // And a rewrite that worked leaves a file the next start reads as its snapshot.
    log = AppendLog.open(file, true, () => undefined);
    await log.rewriteInBackground(() => ['e']);
    await log.append(['f']);
    log.close();
    assert.deepEqual(reopen(file), ['e', 'f']);
    await tmp.remove();
  });

  it('makes a rename durable before it answers anyone, closing included, and refuses a rewrite once closed', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/rename.log`;
    const log = AppendLog.open(file, true, () => undefined);
    await log.append(['a', 'b']);
    await log.rewriteInBackground(() => ['b']);
    // Nothing durable was appended since the swap, so no sync has carried the rename yet: closing must.
    const original = fs.fsyncSync;
    const synced: number[] = [];
    fs.fsyncSync = ((fd: number) => {
      synced.push(fd);
      return original(fd);
    }) as typeof fs.fsyncSync;
    try {
      log.close();
    } finally {
      fs.fsyncSync = original;
    }
    assert.equal(synced.length, 1, 'the directory was synced at close');
    assert.throws(() => log.rewrite(['x']), /closed/);
    await assert.rejects(log.rewriteInBackground(() => ['x']), /closed/);
    assert.deepEqual(reopen(file), ['b']);
    await tmp.remove();
  });

  it('tells an append its records are written (in the file, before its sync), and synced() waits for every earlier append', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/w.log`;
    const log = AppendLog.open(file, true, () => undefined);
    try {
      const events: string[] = [];
      const appends = Array.from({ length: 30 }, (_, i) => {
        const record = `w${i}`;
        return log
          .append([record], true, () => {
            // Told from the write itself: the record is in the file (a process killed now keeps it), and
            // neither this append nor a later one has resolved yet.
            assert.ok(lines(file).includes(record), `${record} told written before it was`);
            events.push(`written ${i}`);
          })
          .then(() => events.push(`durable ${i}`));
      });
      const all = log.synced().then(() => events.push('synced'));
      await Promise.all([...appends, all]);
      for (let i = 0; i < 30; i++) assert.ok(events.indexOf(`written ${i}`) < events.indexOf(`durable ${i}`), `w${i}: written before durable`);
      assert.equal(events.at(-1), 'synced', 'synced() after every earlier append');
      assert.deepEqual(events.filter((e) => e.startsWith('written')), Array.from({ length: 30 }, (_, i) => `written ${i}`), 'told in append order');
      assert.deepEqual(reopenCopy(file), Array.from({ length: 30 }, (_, i) => `w${i}`));
    } finally {
      log.close();
      await tmp.remove();
    }
  });

  it('rejects only the append whose written callback throws; the others of its commit, and later ones, go on', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/w.log`;
    const log = AppendLog.open(file, true, () => undefined);
    const told: string[] = [];
    const before = log.append(['a'], true, () => told.push('a'));
    const throwing = log.append(['b'], true, () => {
      throw new Error('owner bug');
    });
    const after = log.append(['c'], true, () => told.push('c'));
    const nonDurable = log.append(['d'], false, () => told.push('d'));
    await assert.rejects(throwing, /owner bug/);
    await Promise.all([before, after, nonDurable]);
    assert.deepEqual(told, ['a', 'c', 'd']);
    await log.append(['e']);
    // Through close's synchronous commit too.
    const atClose = log.append(['f'], true, () => {
      throw new Error('at close');
    });
    const last = log.append(['g']);
    log.close();
    await assert.rejects(atClose, /at close/);
    await last;
    assert.deepEqual(reopen(file), ['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'the records were written all the same');
    await tmp.remove();
  });

  it('writes a non-durable record in order with the others, and close makes it durable', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/d.log`;
    const log = AppendLog.open(file, true, () => undefined);
    await Promise.all([log.append(['x']), log.append(['y'], false), log.append(['z'])]);
    await log.append(['w'], false);
    assert.deepEqual(lines(file), ['x', 'y', 'z', 'w'], 'written at once, in append order');
    log.close();
    assert.deepEqual(reopen(file), ['x', 'y', 'z', 'w']);
    await tmp.remove();
  });

  it('drops a record torn by a crash (no newline) and keeps the rest', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/c.log`;
    fs.writeFileSync(file, 'one\ntwo\nthr');
    assert.deepEqual(reopen(file), ['one', 'two']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'one\ntwo\n');
    await tmp.remove();
  });

  it('keeps zeros ahead of its records while open, overwrites them in order, and closes to its records alone', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/e.log`;
    const log = AppendLog.open(file, true, () => undefined);
    // ~3 MB in 300 commits: several zero-fills of 1 MB, each overwritten by later commits.
    const expected: string[] = [];
    for (let commit = 0; commit < 300; commit++) {
      const batch = Array.from({ length: 20 }, (_, i) => `${commit}-${i}-${'x'.repeat(480)}`);
      expected.push(...batch);
      await log.append(batch);
    }
    const bytes = fs.readFileSync(file);
    const end = expected.reduce((n, r) => n + r.length + 1, 0);
    assert.ok(bytes.length > end, `zero-filled ahead: ${bytes.length} bytes for ${end} of records`);
    assert.ok(bytes.subarray(end).every((b) => b === 0), 'only zeros after the records');
    assert.deepEqual(lines(file), expected, 'in order, nothing overwritten by the zero-fill');
    // A second reader while the first is still open sees what a process killed now would leave.
    assert.deepEqual(reopenCopy(file), expected, 'a crash now keeps every resolved record');
    log.close();
    assert.equal(fs.statSync(file).size, end, 'close cuts the zeros off');
    assert.deepEqual(reopen(file), expected);
    await tmp.remove();
  });

  it('ends at the first NUL a crash left: a torn record and whatever follows a hole are dropped', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/f.log`;
    const zeros = (n: number) => Buffer.alloc(n);
    // Zeros after a torn record, as the zero-filled space looks after a crash mid-write.
    fs.writeFileSync(file, Buffer.concat([Buffer.from('one\ntwo\nthr'), zeros(4096)]));
    assert.deepEqual(reopen(file), ['one', 'two']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'one\ntwo\n', 'torn bytes and zeros cut off');
    // A hole (a page that never reached the disk) and records after it: those were never synced, so never acked.
    fs.writeFileSync(file, Buffer.concat([Buffer.from('one\n'), zeros(100), Buffer.from('late\n'), zeros(100)]));
    assert.deepEqual(reopen(file), ['one']);
    fs.writeFileSync(file, Buffer.concat([zeros(10), Buffer.from('late\n')]));
    assert.deepEqual(reopen(file), [], 'a file that starts with a NUL has no records');
    assert.equal(fs.statSync(file).size, 0);
    // The log goes on after the cut, and writes where the records ended.
    const log = AppendLog.open(file, true, () => undefined);
    await log.append(['four']);
    log.close();
    assert.deepEqual(reopen(file), ['four']);
    await tmp.remove();
  });

  it('reads the file a slice at a time: records across slices, longer than one, characters split between two', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/slices.log`;
    const records = ['one', 'héllo wörld 😀 ünïcode', 'x'.repeat(200), '', '€', `last ${'😀'.repeat(10)}`].filter(Boolean);
    const body = Buffer.from(records.join('\n') + '\n');
    for (const readBytes of [1, 2, 3, 5, 7, 64, 1 << 20]) {
      // A torn record and zeros after the records, as a crash leaves them.
      fs.writeFileSync(file, Buffer.concat([body, Buffer.from('torn ü'), Buffer.alloc(300)]));
      assert.deepEqual(reopen(file, readBytes), records, `read ${readBytes} bytes at a time`);
      assert.deepEqual(fs.readFileSync(file), body, `cut after the last record (${readBytes} at a time)`);
      // A hole, and records after it: dropped whichever slice the hole is in.
      fs.writeFileSync(file, Buffer.concat([body, Buffer.alloc(9), Buffer.from('late\n')]));
      assert.deepEqual(reopen(file, readBytes), records);
      fs.writeFileSync(file, 'no newline at all');
      assert.deepEqual(reopen(file, readBytes), []);
      assert.equal(fs.statSync(file).size, 0);
    }
    // Appends go on right after what was read.
    fs.writeFileSync(file, Buffer.concat([body, Buffer.from('torn')]));
    const log = AppendLog.open(file, true, () => undefined, 5);
    assert.equal(log.records, records.length);
    await log.append(['next']);
    log.close();
    assert.deepEqual(reopen(file), [...records, 'next']);
    await tmp.remove();
  });

  it('opens a file longer than the longest string V8 can make (~512 MB), every record in order', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/big.log`;
    // 550,000 records of 1,000 bytes: 550 MB, more than 0x1fffffe8 characters.
    const perWrite = 1000;
    const record = (i: number) => `${String(i).padStart(10, '0')} ${'q'.repeat(988)}`;
    const fd = fs.openSync(file, 'w');
    try {
      for (let i = 0; i < 550_000; i += perWrite) {
        const lines: string[] = [];
        for (let j = i; j < i + perWrite; j++) lines.push(record(j));
        fs.writeSync(fd, lines.join('\n') + '\n');
      }
    } finally {
      fs.closeSync(fd);
    }
    assert.ok(fs.statSync(file).size > 0x1fffffe8);
    let count = 0;
    let inOrder = true;
    try {
      const log = AppendLog.open(file, false, (r) => {
        if (inOrder && r !== record(count)) inOrder = false;
        count++;
      });
      log.close();
      assert.equal(count, 550_000);
      assert.equal(inOrder, true, 'each record whole and in order');
      assert.equal(log.records, 550_000);
    } finally {
      await tmp.remove();
    }
  });

  it('refuses a record with a newline or a NUL and writes nothing of that append', async () => {
    const tmp = await tempDir('append-log');
    const file = `${tmp.dir}/g.log`;
    const log = AppendLog.open(file, true, () => undefined);
    await log.append(['ok']);
    await assert.rejects(log.append(['fine', 'two\nlines']), /newline or NUL/);
    await assert.rejects(log.append(['nul\0inside']), /newline or NUL/);
    await log.append(['after']);
    assert.equal(log.records, 2);
    log.close();
    assert.deepEqual(reopen(file), ['ok', 'after']);
    await tmp.remove();
  });
});

