// A journal write the kernel refuses (EFBIG past the process's file-size limit, standing in for ENOSPC or
// EIO) refuses the message and leaves nothing of it: not in a receiver's queue, not in the outbox (so not in
// the event log), not as a claim that would answer a resend. Everything written before and after is kept.
import assert from './helpers/assert.ts';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EmbeddedAcceptStore } from '../broker/accept-store-embedded.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { Journal } from '../common/journal.ts';
import { repo } from './helpers/child.ts';
import { tempDir } from './contracts/support.ts';

const run = promisify(execFile);

describe('Journal write failure (a real EFBIG)', () => {
  it('refuses the message and shows nothing of it, before or after a restart', async () => {
    const tmp = await tempDir('journal-efbig');
    // 1,100 KiB: room for the first zero-fill (1 MiB ahead of the records), not for two queue records of 600 KB.
    const script = `ulimit -f 1100 && exec "$0" --import tsx "$1" "$2" "$3"`;
    const helper = path.join(repo, 'test/helpers/journal-write-failure.ts');
    const { stdout } = await run('bash', ['-c', script, process.execPath, helper, tmp.dir, String(600_000)], { cwd: repo });
    const seen = JSON.parse(stdout.trim().split('\n').pop() as string);

    assert.deepEqual(seen.first, { ok: true, earlier: null, bob: ['101'], carol: ['101'], outbox: ['{"id":"101"}'] });
    assert.equal(seen.failed.ok, false, 'the sender is refused');
    assert.equal(seen.failed.code, 'EFBIG');
    assert.deepEqual([seen.failed.bob, seen.failed.carol, seen.failed.outbox], [['101'], ['101'], ['{"id":"101"}']], 'nothing of it queued or shipped');
    // The claim went with the write: the resend is stored as a new message, not acked under the failed one.
    assert.deepEqual(seen.again, { ok: true, earlier: null, bob: ['101', '103'], carol: ['101', '103'], outbox: ['{"id":"101"}', '{"id":"103"}'] });

    // A rewrite (a compaction's) starting in the turn a write is refused gives up before its snapshot.
    assert.equal(seen.doomed, 'EFBIG');
    assert.match(seen.rewrite, /a write failed just before the rewrite/);
    assert.equal(seen.snapshotTaken, false);

    // The journal on disk says the same after a restart (without the limit).
    const journal = Journal.open(tmp.dir, 1, true);
    const queue = new EmbeddedOfflineQueue(journal, 1, 100);
    const outbox = new EmbeddedOutbox(journal, 1);
    assert.deepEqual((await queue.list('bob', 10)).map((m) => m.id), ['101', '103']);
    assert.deepEqual((await outbox.peek(10)).map((r) => r.value), ['{"id":"101"}', '{"id":"103"}']);
    // Neither refused message left a claim: their resends are stored, not acked under the refused ids.
    const store = new EmbeddedAcceptStore(journal, queue, outbox);
    for (const cid of ['c4']) {
      const resend = store.store({ sender: 'alice', cid, claim: 'resent:1', ttlSeconds: 3600, queue: [], outbox: [] });
      assert.equal(await resend.written, null, `${cid} was not claimed`);
    }
    await store.close();
    await queue.close();
    await outbox.close();
    await tmp.remove();
  });
});
