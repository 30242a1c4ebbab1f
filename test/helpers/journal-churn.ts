// Run by journal-kill.test.ts: the embedded stores under steady traffic, compacting as soon as they can
// (the claims moving to their archive each time), until the test kills this process. Writes, one per line,
// to the events file: `acked {cid} {id}` once a store is durable, `removing {id}` before a removal is handed
// over (it may be written before the next line is), `removed {id}` once it is written (it then survives the
// death of this process), `compacting` when a compaction starts and `compacted` when it is over. The file
// is written synchronously, so what it says survives SIGKILL; stdout gets `compacting` too, for the test
// to time its kill by (a pipe's output is buffered in this process, and lost with it).
import fs from 'node:fs';
import { EmbeddedAcceptStore } from '../../broker/accept-store-embedded.ts';
import { EmbeddedOfflineQueue } from '../../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../../broker/outbox-embedded.ts';
import { Journal } from '../../common/journal.ts';

const [dir, from, eventsFile] = process.argv.slice(2);
const events = fs.openSync(eventsFile, 'a');
const journal = Journal.open(dir, 1, true, 0);
const queue = new EmbeddedOfflineQueue(journal, 1, 1_000_000);
const outbox = new EmbeddedOutbox(journal, 1);
const store = new EmbeddedAcceptStore(journal, queue, outbox);
const say = (line: string) => {
  fs.writeSync(events, `${line}\n`);
  if (line === 'compacting') process.stdout.write('compacting\n');
};
journal.onCompacted = () => say('compacted');
// A channel of its own, with no records, told when each compaction starts.
journal.channel('x', { live: () => [], liveCount: () => 0, compactionStarts: () => say('compacting') }, () => undefined);
journal.onCompactionFailed = (err) => say(`failed ${String(err)}`);

async function main(): Promise<void> {
  for (let n = Number(from); ; n += 20) {
    // Twenty messages handed over in one turn, as the accept pipeline does, each acked once durable.
    const batch = Array.from({ length: 20 }, (_, i) => {
      const id = String(n + i);
      const stored = store.store({
        sender: 'alice',
        cid: `c${id}`,
        claim: `${id}:1`,
        ttlSeconds: 3600,
        queue: [{ userId: 'bob', message: { id, payload: JSON.stringify({ id, body: 'x'.repeat(40) }) } }],
        outbox: [{ key: 'alice:bob', value: JSON.stringify({ id }) }],
      });
      return stored.durable.then(() => say(`acked c${id} ${id}`));
    });
    await Promise.all(batch);
    // Most are delivered and leave the queue; the outbox ships them.
    for (let i = 0; i < 18; i++) {
      const id = String(n + i);
      say(`removing ${id}`);
      await queue.remove('bob', { id, payload: '' });
      say(`removed ${id}`);
    }
    await outbox.drop(20);
  }
}
void main();
