// The group-commit file under the embedded queue, outbox and offsets: appends made while an earlier commit
// is syncing join the next one, every promise resolves only after its records are in the file, order is
// append order, and rewrite/close while a sync is in flight lose nothing.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { AppendLog } from '../common/append-log.ts';
import { tempDir } from './contracts/support.ts';

const lines = (file: string) => fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);

function reopen(file: string): string[] {
  const seen: string[] = [];
  AppendLog.open(file, true, (r) => seen.push(r)).close();
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
});
