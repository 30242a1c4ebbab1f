// The analytics StateStore contract: checkpoints overwrite in one row, partials are read back per window with
// their partition, seen rows (ids and changes) are read back up to a checkpoint offset and dropped per window,
// a job's rows drop together, names that could break a row key are refused. The cases run in order: the
// last ones drop what the first ones wrote.
import assert from '../helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import type { StateStore } from '../../analytics/state-store.ts';
import type { Fixture } from './support.ts';

export type StateStoreFactory = () => Promise<Fixture<StateStore>>;

const W = Date.UTC(2025, 0, 1, 12, 0, 0);

export function stateStoreContract(name: string, make: StateStoreFactory): void {
  describe(`StateStore contract: ${name}`, () => {
    let f: Fixture<StateStore>;
    let store: StateStore;

    before(async () => {
      f = await make();
      store = f.adapter;
      await store.ensureSchema();
    });
    after(async () => {
      await f?.cleanup();
    });

    it('keeps one checkpoint per job and partition, the last one written', async () => {
      assert.equal(await store.checkpoint('traffic', 0), undefined);
      await store.putCheckpoint('traffic', 0, '{"offset":1}');
      await store.putCheckpoint('traffic', 0, '{"offset":2,"text":"héllo ✓"}');
      await store.putCheckpoint('traffic', 11, '{"offset":7}');
      await store.putCheckpoint('traffic.other', 0, '{"offset":9}');
      assert.equal(await store.checkpoint('traffic', 0), '{"offset":2,"text":"héllo ✓"}');
      assert.equal(await store.checkpoint('traffic', 11), '{"offset":7}');
      assert.equal(await store.checkpoint('traffic.other', 0), '{"offset":9}');
      assert.equal(await store.checkpoint('users', 0), undefined);
    });

    it('reads every partition’s partial of one window, and only that window', async () => {
      await store.putPartials([
        { job: 'users', windowMs: 60_000, windowStart: W, partition: 0, value: '{"v":1}' },
        { job: 'users', windowMs: 60_000, windowStart: W, partition: 5, value: '{"v":2}' },
        { job: 'users', windowMs: 60_000, windowStart: W + 60_000, partition: 0, value: '{"v":3}' },
        { job: 'users', windowMs: 3_600_000, windowStart: W, partition: 0, value: '{"v":4}' },
        { job: 'users.x', windowMs: 60_000, windowStart: W, partition: 0, value: '{"v":5}' },
      ]);
      await store.putPartials([{ job: 'users', windowMs: 60_000, windowStart: W, partition: 5, value: '{"v":6}' }]);
      const rows = (await store.partials('users', 60_000, W)).sort((a, b) => a.partition - b.partition);
      assert.deepEqual(rows, [
        { partition: 0, value: '{"v":1}' },
        { partition: 5, value: '{"v":6}' },
      ]);
      assert.deepEqual(await store.partials('users', 3_600_000, W), [{ partition: 0, value: '{"v":4}' }]);
      assert.deepEqual(await store.partials('users', 60_000, W + 120_000), []);
      await store.putPartials([]);
    });

    it('keeps the ids of each batch as seen rows, read back up to a checkpoint offset, dropped per window', async () => {
      const job = 'seen-test';
      await store.putSeen([
        { job, partition: 0, windowStart: W, offset: 10, ids: ['101', '102'] },
        { job, partition: 0, windowStart: W, offset: 20, ids: ['103'] },
        { job, partition: 0, windowStart: W + 60_000, offset: 20, ids: ['201'] },
        { job, partition: 3, windowStart: W, offset: 12, ids: ['301'] },
      ]);
      await store.putSeen([{ job, partition: 0, windowStart: W, offset: 30, ids: ['104', '105'] }]);
      await store.putSeen([]);
      const sorted = (ids: string[]) => [...ids].sort();
      // A checkpoint at offset 20 owns the rows up to 20: a batch that failed before its checkpoint is not in it.
      assert.deepEqual(sorted(await store.seen(job, 0, W, 20)), ['101', '102', '103']);
      assert.deepEqual(sorted(await store.seen(job, 0, W, 30)), ['101', '102', '103', '104', '105']);
      assert.deepEqual(await store.seen(job, 0, W, 9), []);
      assert.deepEqual(await store.seen(job, 3, W, 100), ['301']);
      assert.deepEqual(await store.seen(job, 0, W + 60_000, 100), ['201']);
      // Seen rows are no window's partials.
      assert.deepEqual(await store.partials(job, 60_000, W), []);
      await store.dropSeen(job, 0, W);
      assert.deepEqual(await store.seen(job, 0, W, 100), []);
      assert.deepEqual(await store.seen(job, 3, W, 100), ['301'], 'other partitions keep theirs');
      assert.deepEqual(await store.seen(job, 0, W + 60_000, 100), ['201'], 'other windows keep theirs');
      await store.dropJob(job);
      assert.deepEqual(await store.seen(job, 3, W, 100), []);
      assert.deepEqual(await store.seen(job, 0, W + 60_000, 100), []);
    });

    it('keeps a job’s changes with the seen rows, read back oldest first up to a checkpoint offset, dropped with them', async () => {
      const job = 'changes-test';
      const hostile = JSON.stringify(['+1', '-2', 'nul \u0000 and , comma', 'héllo ✓']);
      await store.putSeen([
        { job, partition: 0, windowStart: W, offset: 30, ids: ['103'], changes: '["+103"]' },
        { job, partition: 0, windowStart: W, offset: 10, ids: ['101', '102'], changes: '["+101","+102"]' },
        // A batch that only took a receipt for this window: no ids, a change.
        { job, partition: 0, windowStart: W, offset: 20, ids: [], changes: '["-101"]' },
        { job, partition: 0, windowStart: W, offset: 25, ids: ['104'] },
        { job, partition: 0, windowStart: W + 60_000, offset: 20, ids: ['201'], changes: hostile },
      ]);
      assert.deepEqual(await store.changes(job, 0, W, 20), ['["+101","+102"]', '["-101"]']);
      assert.deepEqual(await store.changes(job, 0, W, 100), ['["+101","+102"]', '["-101"]', '["+103"]']);
      assert.deepEqual(await store.changes(job, 0, W, 9), []);
      assert.deepEqual(await store.changes(job, 0, W + 60_000, 100), [hostile]);
      assert.deepEqual(await store.changes(job, 3, W, 100), []);
      // The ids of rows with changes read as before, and a row with changes but no ids adds none.
      assert.deepEqual([...(await store.seen(job, 0, W, 100))].sort(), ['101', '102', '103', '104']);
      assert.deepEqual(await store.seen(job, 0, W + 60_000, 100), ['201']);
      await store.dropSeen(job, 0, W);
      assert.deepEqual(await store.changes(job, 0, W, 100), []);
      assert.deepEqual(await store.changes(job, 0, W + 60_000, 100), [hostile], 'other windows keep theirs');
      await store.dropJob(job);
      assert.deepEqual(await store.changes(job, 0, W + 60_000, 100), []);
    });

    it('drops one job’s checkpoints and partials, leaving the others', async () => {
      await store.dropJob('users');
      assert.deepEqual(await store.partials('users', 60_000, W), []);
      assert.deepEqual(await store.partials('users.x', 60_000, W), [{ partition: 0, value: '{"v":5}' }]);
      await store.dropJob('traffic');
      assert.equal(await store.checkpoint('traffic', 0), undefined);
      assert.equal(await store.checkpoint('traffic.other', 0), '{"offset":9}');
    });

    it('refuses job names that do not fit a row key', async () => {
      for (const bad of ['', 'a\u0000b', 'x'.repeat(101), 'sp ace']) await assert.rejects(store.checkpoint(bad, 0), RangeError);
      assert.equal(await store.ping(), true);
    });
  });
}
