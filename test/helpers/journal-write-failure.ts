// Run by journal-write-failure.test.ts in a process whose file-size limit (`ulimit -f`) the journal reaches:
// the kernel then refuses the journal's writes with EFBIG, a real write failure (as ENOSPC or EIO would be).
// Prints what the embedded stores showed after each store, as one JSON line.
import { EmbeddedAcceptStore } from '../../broker/accept-store-embedded.ts';
import { EmbeddedOfflineQueue } from '../../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../../broker/outbox-embedded.ts';
import { Journal } from '../../common/journal.ts';

const [dir, bigBytes] = process.argv.slice(2);
const NODE = 1;
const journal = Journal.open(dir, NODE, true);
const queue = new EmbeddedOfflineQueue(journal, NODE, 100);
const outbox = new EmbeddedOutbox(journal, NODE);
const store = new EmbeddedAcceptStore(journal, queue, outbox);

const write = (cid: string, id: string, body: string) => ({
  sender: 'alice',
  cid,
  claim: `${id}:1`,
  ttlSeconds: 3600,
  queue: ['bob', 'carol'].map((userId) => ({ userId, message: { id, payload: JSON.stringify({ id, body }) } })),
  outbox: [{ key: 'alice:bob', value: JSON.stringify({ id }) }],
});

/** What a store came to, and what the stores show right after it settled. */
async function attempt(cid: string, id: string, body: string) {
  const stored = store.store(write(cid, id, body));
  const outcome = await Promise.all([stored.written, stored.durable]).then(
    ([earlier]) => ({ ok: true, earlier }),
    (err: NodeJS.ErrnoException) => ({ ok: false, code: err.code ?? err.message }),
  );
  return {
    ...outcome,
    bob: (await queue.list('bob', 10)).map((m) => m.id),
    carol: (await queue.list('carol', 10)).map((m) => m.id),
    outbox: (await outbox.peek(10)).map((r) => r.value),
  };
}

const first = await attempt('c1', '101', 'small');
// Past the limit: the journal's zero-fill ahead of its records fails part way, so the records are not written.
const failed = await attempt('c2', '102', 'x'.repeat(Number(bigBytes)));
// The same cid again, small enough to fit where the file still can grow: stored now, not answered as a repeat.
const again = await attempt('c2', '103', 'small again');
// A compaction whose rewrite starts in the turn a write is refused takes no snapshot: the refused store's
// claim is still in memory until its promise settles, and a snapshot would keep it without its message.
const doomed = store.store(write('c4', '104', 'x'.repeat(Number(bigBytes))));
doomed.written.catch(() => undefined);
let snapshotTaken = false;
const log = (journal as unknown as { log: { rewriteInBackground(s: () => Iterable<string>): Promise<number> } }).log;
const rewrite = await log.rewriteInBackground(() => ((snapshotTaken = true), [])).then(
  () => 'done',
  (err: Error) => err.message,
);
const doomedOutcome = await doomed.durable.then(
  () => 'stored',
  (err: NodeJS.ErrnoException) => err.code,
);
await store.close();
await queue.close();
await outbox.close();
process.stdout.write(`${JSON.stringify({ first, failed, again, rewrite, snapshotTaken, doomed: doomedOutcome })}\n`);
