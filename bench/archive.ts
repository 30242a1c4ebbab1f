// What the embedded archive costs per message, by thread, in a young store and in a grown one: the archiver's
// writes (putMessages, batches as the archiver makes them) into the real LevelDB on this disk (fsync on), as
// fast as they go. A store's cost grows with it (LevelDB looks things up level by level, and compacts more
// levels), so the grown case first fills a store once (kept under bench/data, reused by later runs) and
// measures on a copy of it. CPU is read per thread from /proc: the main thread (the archiver's own code),
// the busiest other thread (LevelDB's compaction), the rest (libuv's pool, where LevelDB reads and writes;
// V8's helpers).
//   npm run bench:archive [-- --prefill N] [--messages N] [--batch B] [--users U] [--data-dir DIR]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { IdGenerator } from '../common/ids.ts';
import { EmbeddedArchive } from '../consumers/archive-embedded.ts';
import { sampleThreads } from './procstat.ts';

const { values } = parseArgs({
  options: {
    prefill: { type: 'string', default: '1500000' },
    messages: { type: 'string', default: '300000' },
    batch: { type: 'string', default: '250' },
    users: { type: 'string', default: '1000' },
    'data-dir': { type: 'string' },
  },
});
const PREFILL = Number(values.prefill);
const MESSAGES = Number(values.messages);
const BATCH = Number(values.batch);
const USERS = Number(values.users);
for (const [name, v] of Object.entries({ PREFILL, MESSAGES, BATCH, USERS })) if (!Number.isInteger(v) || v < 1) throw new Error(`--${name.toLowerCase()} takes a positive integer`);
const progress = (msg: string) => process.stderr.write(`[archive] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const ids = new IdGenerator(1);
const users = Array.from({ length: USERS }, (_, i) => `user${String(i).padStart(6, '0')}`);
let sent = 0;
/** A batch of 1:1 messages between random users, shaped like the chat bench's. */
function batch(size: number) {
  const out = [];
  for (let i = 0; i < size; i++) {
    const from = Math.floor(Math.random() * USERS);
    const to = (from + 1 + Math.floor(Math.random() * (USERS - 1))) % USERS;
    const { id, ts } = ids.next();
    const n = sent++;
    out.push({ message: { id, from: users[from], to: users[to], ts, cid: `c${n}`, kind: 'text' as const, body: `bench message ${n} from ${users[from]} at ${performance.now()}` }, participants: [users[from], users[to]] });
  }
  return out;
}

async function write(archive: EmbeddedArchive, count: number, label: string): Promise<void> {
  let next = Date.now() + 5000;
  for (let done = 0; done < count; done += BATCH) {
    await archive.putMessages(batch(Math.min(BATCH, count - done)));
    if (Date.now() > next) {
      progress(`${label}: ${(done + BATCH).toLocaleString('en')}/${count.toLocaleString('en')} messages`);
      next = Date.now() + 5000;
    }
  }
}

interface Measured {
  store: string;
  messages: number;
  seconds: number;
  /**
   * µs of CPU per message: all threads; the main thread (the archiver's code, the calls into LevelDB); the
   * busiest other thread (LevelDB's compaction thread: Node does not name its threads, so it is told apart
   * by its share); the rest (libuv's pool, where LevelDB reads and writes, and V8's helpers).
   */
  perMessageUs: { total: number; main: number; busiest: number; rest: number };
}

/** Writes MESSAGES into the store at `dir` and reads what it cost. */
async function measure(dir: string, store: string): Promise<Measured> {
  const archive = new EmbeddedArchive(dir);
  await archive.highWaterMark(); // an older store finds its mark first, outside the measurement
  const before = new Map(sampleThreads('self').map((t) => [t.tid, t.cpuSeconds]));
  const start = performance.now();
  await write(archive, MESSAGES, store);
  const seconds = (performance.now() - start) / 1000;
  const after = sampleThreads('self');
  await archive.close();
  const used = after.map((t) => ({ tid: t.tid, us: ((t.cpuSeconds - (before.get(t.tid) ?? 0)) * 1e6) / MESSAGES }));
  const main = used.find((t) => t.tid === process.pid)?.us ?? 0;
  const others = used.filter((t) => t.tid !== process.pid).sort((a, b) => b.us - a.us);
  const busiest = others[0]?.us ?? 0;
  const total = used.reduce((sum, t) => sum + t.us, 0);
  return { store, messages: MESSAGES, seconds, perMessageUs: { total, main, busiest, rest: total - main - busiest } };
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-archive-bench-'));
const grown = path.join(values['data-dir'] ?? path.join(REPO, 'bench', 'data'), `archive-prefill-${PREFILL}-${USERS}`);
try {
  if (!fs.existsSync(path.join(grown, 'archive', 'CURRENT'))) {
    progress(`filling a store with ${PREFILL.toLocaleString('en')} messages (once; kept in ${grown})`);
    fs.rmSync(grown, { recursive: true, force: true });
    const archive = new EmbeddedArchive(grown);
    await write(archive, PREFILL, 'filling');
    await archive.close();
  }
  const results: Measured[] = [];
  progress(`young store: ${MESSAGES.toLocaleString('en')} messages into an empty one`);
  results.push(await measure(path.join(work, 'young'), 'young (empty)'));
  progress(`grown store: ${MESSAGES.toLocaleString('en')} messages into a copy of the one with ${PREFILL.toLocaleString('en')}`);
  fs.cpSync(grown, path.join(work, 'grown'), { recursive: true });
  results.push(await measure(path.join(work, 'grown'), `grown (${PREFILL.toLocaleString('en')} messages)`));

  console.log(`\nEmbedded archive writes, batches of ${BATCH}, ${USERS} users, ${os.cpus().length} cores: CPU µs per message by thread\n`);
  console.log('| store | messages | msg/s | total | main thread | busiest other thread (LevelDB compaction) | the rest (libuv pool: LevelDB reads and writes; V8) |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const u = r.perMessageUs;
    console.log(`| ${r.store} | ${r.messages.toLocaleString('en')} | ${Math.round(r.messages / r.seconds).toLocaleString('en')} | ${u.total.toFixed(1)} | ${u.main.toFixed(1)} | ${u.busiest.toFixed(1)} | ${u.rest.toFixed(1)} |`);
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
