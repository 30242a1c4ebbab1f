// What a compaction of the embedded journal costs the event loop while many messages wait in offline queues:
// the live set it rewrites. The real journal and offline queue on this disk (fsync on), N messages queued
// for users who stay away, then messages that come and go (queued, removed) until the journal compacts
// itself a few times. Each compaction reports the longest it held the event loop at once (the figure
// parley_journal_compaction_seconds records).
//   npm run bench:compaction [-- --queued N] [--users U] [--payload BYTES] [--compactions K]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { Journal } from '../common/journal.ts';

const { values } = parseArgs({
  options: {
    queued: { type: 'string', default: '100000' },
    users: { type: 'string', default: '1000' },
    payload: { type: 'string', default: '300' },
    compactions: { type: 'string', default: '3' },
  },
});
const QUEUED = Number(values.queued);
const USERS = Number(values.users);
const PAYLOAD = Number(values.payload);
const COMPACTIONS = Number(values.compactions);
for (const [name, v] of Object.entries({ QUEUED, USERS, PAYLOAD, COMPACTIONS })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${name.toLowerCase()} takes a positive integer`);
const progress = (msg: string) => process.stderr.write(`[compaction] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-compaction-'));
const journal = Journal.open(dir, 1, true, 0);
const queue = new EmbeddedOfflineQueue(journal, 1, Number.MAX_SAFE_INTEGER);
const body = 'x'.repeat(Math.max(0, PAYLOAD - 60));
const payloadOf = (id: string) => `{"id":"${id}","from":"bench-sender","kind":"text","body":"${body}"}`;
const BATCH = 1000;

const held: number[] = [];
journal.onCompacted = (seconds) => {
  held.push(seconds * 1000);
  progress(`compaction ${held.length}/${COMPACTIONS}: held the event loop ${(seconds * 1000).toFixed(2)} ms at most`);
};
journal.onCompactionFailed = (err) => {
  progress(`a compaction failed: ${String(err)}`);
  process.exitCode = 1;
};

try {
  progress(`queueing ${QUEUED.toLocaleString('en')} messages of ~${PAYLOAD} bytes for ${USERS} users who stay away`);
  for (let i = 0; i < QUEUED; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(QUEUED, i + BATCH); j++) {
      const id = String(1e15 + j);
      batch.push({ userId: `away${j % USERS}`, message: { id, payload: payloadOf(id) } });
    }
    await queue.push(batch);
    if ((i / BATCH) % 20 === 19) progress(`  queued ${(i + BATCH).toLocaleString('en')}`);
  }
  progress(`messages come and go for online users until the journal has compacted ${COMPACTIONS} times`);
  let n = 0;
  while (held.length < COMPACTIONS && !process.exitCode) {
    const batch = [];
    for (let j = 0; j < BATCH; j++, n++) {
      const id = String(2e15 + n);
      batch.push({ userId: `online${n % USERS}`, message: { id, payload: payloadOf(id) } });
    }
    await queue.push(batch);
    for (const b of batch) await queue.remove(b.userId, b.message);
  }
  await journal.idle();
  console.log(
    JSON.stringify({
      queued: QUEUED,
      payloadBytes: PAYLOAD,
      compactions: held.length,
      heldMs: held.map((h) => +h.toFixed(2)),
      maxHeldMs: +Math.max(...held).toFixed(2),
    }),
  );
} finally {
  await queue.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
