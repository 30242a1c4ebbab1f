// The embedded accept store's claims (broker/claim-index.ts): the answers of the ExpiringMap they replaced,
// for any key (hostile, non-ASCII, colliding in the table), through expiry, replacement, removal, the cap
// and many chunks, kept outside the JS heap.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { EmbeddedAcceptStore } from '../broker/accept-store-embedded.ts';
import { ClaimArchive } from '../broker/claim-archive.ts';
import { ClaimIndex } from '../broker/claim-index.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { ExpiringMap } from '../common/expiring-map.ts';
import { Journal } from '../common/journal.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * The claims lines() writes at `now`, read back as the accept store's replay reads a journal line (the keys
 * of these tests hold no space): `{expiresAt} {sender} {cid} {claim}`.
 */
function liveOf(c: ClaimIndex, now: number): { key: string; value: string; expiresAt: number }[] {
  const text = Buffer.concat([...c.lines('', now)]).toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [expiresAt, sender, cid] = line.split(' ', 3);
      return { key: `${sender}\n${cid}`, value: line.slice(expiresAt.length + sender.length + cid.length + 3), expiresAt: Number(expiresAt) };
    });
}

const SMALL_CHUNKS = { chunkBytes: 140_000 }; // ~3,000 claims a chunk: many chunks in a short test

describe('ClaimIndex', () => {
  it('keeps a claim per key until it expires, answers setIfAbsent with the first, and forgets deleted ones', () => {
    const c = new ClaimIndex();
    const t = 1_000_000;
    assert.equal(c.setIfAbsent('alice\ncid-1', '100:5', 1000, t), undefined, 'new');
    assert.equal(c.setIfAbsent('alice\ncid-1', '200:6', 1000, t + 10), '100:5', 'the first claim answers');
    assert.equal(c.setIfAbsent('bob\ncid-1', '300:7', 1000, t), undefined, 'another sender, same cid');
    assert.equal(c.get('alice\ncid-1', t + 999), '100:5');
    assert.equal(c.get('alice\ncid-1', t + 1000), undefined, 'expired at its ttl');
    assert.equal(c.setIfAbsent('alice\ncid-1', '400:8', 1000, t + 1000), undefined, 'stored again once expired');
    assert.equal(c.get('alice\ncid-1', t + 1001), '400:8');
    c.set('alice\ncid-1', '500:9', 1000, t + 1002);
    assert.equal(c.get('alice\ncid-1', t + 1003), '500:9', 'set replaces');
    assert.equal(c.size, 2);
    c.delete('alice\ncid-1');
    c.delete('nobody\nx');
    assert.equal(c.get('alice\ncid-1', t + 1003), undefined);
    assert.equal(c.size, 1);
    assert.deepEqual(liveOf(c, t + 1003), [{ key: 'bob\ncid-1', value: '300:7', expiresAt: t + 1000 }].filter((e) => e.expiresAt > t + 1003));
    assert.deepEqual(liveOf(c, t), [{ key: 'bob\ncid-1', value: '300:7', expiresAt: t + 1000 }]);
  });

  it('keeps hostile and non-ASCII keys and claims byte-exact and apart', () => {
    const c = new ClaimIndex();
    const keys = ['a\nb', 'a\nb ', 'a\n b', '\u0000\n\u0000', 'ü\n☃', 'ü\n☃\u0301', '𝄞\n𝄞', 'x'.repeat(300) + '\ny', "'; DROP\n)(uid=*)", '__proto__\nconstructor'];
    keys.forEach((k, i) => assert.equal(c.setIfAbsent(k, `claim ${i} ☃`, 60_000, 0), undefined, JSON.stringify(k)));
    keys.forEach((k, i) => assert.equal(c.get(k, 1), `claim ${i} ☃`, JSON.stringify(k)));
    assert.equal(c.get('a\nb\u0000', 1), undefined, 'a prefix is not the key');
    assert.throws(() => c.set('k'.repeat(70_000), 'x', 1000, 0), /too long/);
    assert.throws(() => c.set('k', 'x'.repeat(70_000), 1000, 0), /too long/);
    assert.equal(c.size, keys.length, 'a refused claim changes nothing');
  });

  it('agrees with an ExpiringMap through random claims, lookups, replacements and removals over many chunks and rebuilds', () => {
    const random = rng(7);
    const c = new ClaimIndex(SMALL_CHUNKS);
    const m = new ExpiringMap<string>();
    const TTL = 50_000;
    let now = 1_700_000_000_000;
    const keys: string[] = [];
    for (let step = 0; step < 200_000; step++) {
      now += Math.floor(random() * 3);
      const r = random();
      const key = r < 0.6 || keys.length === 0 ? `user${Math.floor(random() * 500)}\ncid-${step}` : keys[Math.floor(random() * keys.length)];
      if (r < 0.6) keys.push(key);
      if (keys.length > 5000) keys.splice(0, 1000);
      if (r < 0.85) {
        assert.equal(c.setIfAbsent(key, `${step}:${now}`, TTL, now), m.setIfAbsent(key, `${step}:${now}`, TTL, now), `step ${step}: setIfAbsent`);
      } else if (r < 0.9) {
        c.set(key, `s${step}`, TTL, now);
        m.set(key, `s${step}`, TTL, now);
      } else if (r < 0.95) {
        c.delete(key);
        m.delete(key);
      } else {
        assert.equal(c.get(key, now), m.get(key, now), `step ${step}: get`);
      }
      if (step % 20_011 === 0) {
        const mine = liveOf(c, now).map((e) => `${e.key}=${e.value}@${e.expiresAt}`).sort();
        const theirs = [...m.live(now)].map((e) => `${e.key}=${e.value}@${e.expiresAt}`).sort();
        assert.deepEqual(mine, theirs, `step ${step}: live`);
      }
    }
    const chunks = (c as unknown as { nextSeq: number }).nextSeq;
    assert.ok(chunks > 20, `${chunks} chunks written`);
    assert.ok((c as unknown as { chunks: unknown[] }).chunks.length < chunks / 2, 'expired chunks went');
  });

  it('moves the claims to a rebuilt table a few slots per store, every claim answering throughout', () => {
    type Draining = { locs: Float64Array; next: number; perStore: number } | null;
    const c = new ClaimIndex();
    const state = () => c as unknown as { draining: Draining; locs: Float64Array };
    const now = 1_700_000_000_000;
    const TTL = 3_600_000;
    let n = 0;
    // Up to the store that starts a rebuild of a table of 65,536 slots.
    while (!(state().draining && state().draining!.locs.length === 65_536) && n < 200_000) c.setIfAbsent(`u${n % 97}\ncid-${n}`, `claim ${n}`, TTL, now), n++;
    const old = state().draining!;
    assert.ok(old, 'a rebuild drains the old table over the stores that follow');
    const table = state().locs;
    const { perStore } = old;
    const firstNew = n;
    assert.ok(perStore >= 64 && perStore < old.locs.length / 100, `${perStore} slots a store, of ${old.locs.length}`);
    assert.ok(old.next <= perStore, 'the rebuild itself moved no more than a store does');
    // While it drains: each store moves perStore slots; every claim, old or new, answers; a replacement
    // and a removal of claims still in the old table take effect.
    c.set('u1\ncid-1', 'replaced', TTL, now);
    c.delete('u2\ncid-2');
    let stores = 0;
    while (state().draining === old) {
      const before = old.next;
      c.setIfAbsent(`v${n % 97}\ncid-${n}`, `claim ${n}`, TTL, now), n++, stores++;
      if (state().draining === old) assert.equal(old.next - before, perStore, 'one store, one step');
      if (stores % 50 === 0) {
        for (let k = 3; k < n; k += 997) assert.equal(c.get(`${k < firstNew ? 'u' : 'v'}${k % 97}\ncid-${k}`, now)?.startsWith('claim'), true, `claim ${k} while draining`);
      }
    }
    assert.ok(stores > 10, `drained over ${stores} stores`);
    assert.equal(state().draining, null, 'the old table emptied');
    assert.equal(state().locs, table, 'before the new table was due for a rebuild of its own');
    assert.equal(c.get('u1\ncid-1', now), 'replaced');
    assert.equal(c.get('u2\ncid-2', now), undefined);
    assert.equal(c.setIfAbsent('u3\ncid-3', 'again', TTL, now), 'claim 3', 'a claim moved answers setIfAbsent with its first');
    assert.equal(c.size, n - 1);
    assert.equal(liveOf(c, now).length, n - 1, 'each claim once');
  });

  it('makes room past the cap, the oldest claims going first', () => {
    const c = new ClaimIndex({ ...SMALL_CHUNKS, maxEntries: 10_000 });
    for (let i = 0; i < 50_000; i++) c.setIfAbsent(`u\n${i}`, `${i}`, 3_600_000, 0);
    assert.ok(c.size <= 10_000 && c.size > 5_000, `${c.size} claims kept`);
    assert.equal(c.get('u\n49999', 1), '49999', 'the newest stays');
    assert.equal(c.get('u\n0', 1), undefined, 'the oldest went');
    assert.equal(liveOf(c, 1).length, c.size, 'lines() and size agree');
  });

  it('keeps claims outside the JS heap', () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const measure = (store: { setIfAbsent(k: string, v: string, ttl: number, now: number): unknown }) => {
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 200_000; i++) store.setIfAbsent(`user-${i % 1000}\nclient-msg-${i}`, `7351207812345678${i}:1764892800000`, 86_400_000, 0);
      gc();
      return (process.memoryUsage().heapUsed - before) / 200_000;
    };
    const index = new ClaimIndex();
    const onHeap = measure(new ExpiringMap<string>());
    const offHeap = measure(index);
    assert.equal(index.size, 200_000);
    assert.ok(offHeap < 16, `ClaimIndex: ${offHeap.toFixed(1)} bytes of JS heap a claim (ExpiringMap: ${onHeap.toFixed(1)})`);
    assert.ok(onHeap > 100, `the comparison means something: ExpiringMap ${onHeap.toFixed(1)} bytes a claim`);
  });

  it('writes its live claims as journal lines in bytes, in the order stored, and only the current ones', () => {
    const c = new ClaimIndex(SMALL_CHUNKS);
    const t = 1_764_892_800_000;
    // What the lines must say, in the order stored: a replaced claim moves to the end.
    const model = new Map<string, { value: string; expiresAt: number }>();
    const store = (key: string, value: string, ttl: number) => {
      model.delete(key);
      model.set(key, { value, expiresAt: t + ttl });
    };
    for (let i = 0; i < 10_000; i++) {
      c.setIfAbsent(`user-${i % 37}\ncid-${i}`, `73512078${i}:${t}`, 60_000 + (i % 3), t);
      store(`user-${i % 37}\ncid-${i}`, `73512078${i}:${t}`, 60_000 + (i % 3));
    }
    c.set('user-5\ncid-5', 'replaced:1', 60_000, t); // the first claim of that key is no longer current
    store('user-5\ncid-5', 'replaced:1', 60_000);
    c.delete('user-2\ncid-2');
    model.delete('user-2\ncid-2');
    c.setIfAbsent('ü\n☃ more', 'x', 60_000.5, t); // non-ASCII; a fractional expiry written exactly
    store('ü\n☃ more', 'x', 60_000.5);
    const expected = [...model].map(([key, e]) => `d ${e.expiresAt} ${key.replace('\n', ' ')} ${e.value}\n`).join('');
    const bytes = Buffer.concat([...c.lines('d ', t + 1)]).toString('utf8');
    assert.equal(bytes, expected);
    assert.equal(bytes.split('\n').length - 1, 10_000, 'one line a current claim (one replaced in place, one deleted, one added)');
    assert.ok(bytes.includes('d 1764892860000 user-5 cid-5 replaced:1\n'));
    assert.ok(!bytes.includes(' cid-2 '), 'the deleted claim is gone');
    assert.equal(Buffer.concat([...c.lines('d ', t + 61_000)]).length, 0, 'nothing once all expired');
  });

  it('survives a compaction of the journal and a restart: every claim answers as before', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-claims-'));
    const open = () => {
      const journal = Journal.open(dir, 1, false);
      const queue = new EmbeddedOfflineQueue(journal, 1, 100);
      const outbox = new EmbeddedOutbox(journal, 1);
      return { journal, queue, outbox, store: new EmbeddedAcceptStore(journal, queue, outbox) };
    };
    try {
      const a = open();
      const write = (sender: string, cid: string, claim: string) =>
        a.store.store({ sender, cid, claim, ttlSeconds: 3600, queue: [], outbox: [] }).durable;
      const senders = ['alice', 'bob', 'Ünïcødé'];
      for (let i = 0; i < 3000; i++) await write(senders[i % 3], `c-${i}`, `${1000 + i}:${i}`);
      assert.equal(await a.journal.compact(), true);
      const lines = fs.readFileSync(path.join(dir, 'journal-1.log'), 'utf8').split('\n').filter(Boolean);
      assert.equal(lines.length, 0, 'the compacted journal holds no claims: they moved to the archive');
      const archived = fs.readdirSync(dir).filter((f) => f.startsWith('journal-1.claims-'));
      assert.deepEqual(archived, ['journal-1.claims-0000000001.log']);
      const archivedLines = fs.readFileSync(path.join(dir, archived[0]), 'utf8').split('\n').filter(Boolean);
      assert.equal(archivedLines.length, 3000, 'one line a claim');
      assert.match(archivedLines[1], /^\d{13} bob c-1 1001:1$/);
      // Claims stored after the compaction stay in the journal until the next one.
      for (let i = 3000; i < 3010; i++) await write(senders[i % 3], `c-${i}`, `${1000 + i}:${i}`);
      // A crash in the middle of an archive append leaves a torn line: cut off at the next start.
      fs.appendFileSync(path.join(dir, archived[0]), '1999999999999 mallory torn');
      await a.store.close();
      await a.queue.close();
      await a.outbox.close();
      const b = open();
      for (let i = 0; i < 3010; i += 7) {
        const again = b.store.store({ sender: senders[i % 3], cid: `c-${i}`, claim: 'new:0', ttlSeconds: 3600, queue: [], outbox: [] });
        assert.equal(await again.written, `${1000 + i}:${i}`, `c-${i} answers with its first claim after the restart`);
      }
      const torn = b.store.store({ sender: 'mallory', cid: 'torn', claim: 'fresh:1', ttlSeconds: 3600, queue: [], outbox: [] });
      assert.equal(await torn.written, null, 'the torn line was not a claim');
      await b.store.close();
      await b.queue.close();
      await b.outbox.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('archive: rolls its files, reads them back oldest first, and lets a file go once all its claims expired', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-archive-'));
    try {
      const a = new ClaimArchive(dir, 'journal-7.claims', false);
      a.load(() => assert.fail('nothing to read yet'));
      const line = (expiresAt: number, n: number) => Buffer.from(`${expiresAt} u${n} c${n} ${n}:0\n`);
      await a.append([line(1000, 1), line(2000, 2)], 0);
      await a.append([line(3000, 3)], 0);
      // Roll by hand to the next file, as ROLL_BYTES would: a new archive over the same directory.
      await (a as unknown as { roll(): Promise<void> }).roll();
      await a.append([line(9000, 4)], 0);
      assert.equal(a.fileCount, 2);
      await a.close();
      const read: string[] = [];
      const b = new ClaimArchive(dir, 'journal-7.claims', false);
      b.load((l) => read.push(l), 0);
      assert.deepEqual(read, ['1000 u1 c1 1:0', '2000 u2 c2 2:0', '3000 u3 c3 3:0', '9000 u4 c4 4:0'], 'oldest first');
      await b.append([line(9500, 5)], 3000); // the first file's newest claim expired at 3000: it goes
      assert.equal(b.fileCount, 1);
      assert.deepEqual(fs.readdirSync(dir).sort(), ['journal-7.claims-0000000002.log']);
      await b.close();
      const after: string[] = [];
      const c = new ClaimArchive(dir, 'journal-7.claims', false);
      c.load((l) => after.push(l), 9200);
      assert.deepEqual(after, ['9000 u4 c4 4:0', '9500 u5 c5 5:0'], 'a file with a claim still live is read whole');
      await c.close();
      const d = new ClaimArchive(dir, 'journal-7.claims', false);
      d.load(() => assert.fail('every claim had expired'), 9500);
      assert.deepEqual(fs.readdirSync(dir), [], 'and then the file went at the start');
      await d.close();

      // Past the index's cap: a file stored before the oldest claim the index kept goes (marks are where
      // the index stood after each file), whatever its claims' expiry.
      const e = new ClaimArchive(dir, 'journal-7.claims', false);
      await e.append([line(1000, 1), line(30000, 3)], 0, 100);
      await (e as unknown as { roll(): Promise<void> }).roll();
      await e.append([line(6000, 6)], 0, 200, 100);
      assert.equal(e.fileCount, 1, 'the older file went: the index no longer has its claims');
      await e.close();
      // A line that is no claim (not written by this code) neither counts as one nor keeps its file.
      fs.writeFileSync(path.join(dir, 'journal-7.claims-0000000009.log'), 'garbage without an expiry\n');
      const read2: string[] = [];
      const f = new ClaimArchive(dir, 'journal-7.claims', false);
      f.load((l) => read2.push(l), 100);
      assert.deepEqual(read2, ['6000 u6 c6 6:0']);
      assert.ok(!fs.existsSync(path.join(dir, 'journal-7.claims-0000000009.log')), 'a file without a claim went');
      await f.close();
      for (const name of fs.readdirSync(dir)) fs.rmSync(path.join(dir, name));
      // A file the index still keeps claims of stays, even when they expire before the claims stored after
      // them (the ttl was raised between starts).
      const e2 = new ClaimArchive(dir, 'journal-7.claims', false);
      await e2.append([line(5000, 7)], 0, 100);
      await (e2 as unknown as { roll(): Promise<void> }).roll();
      await e2.append([line(90000, 8)], 0, 200, 50);
      assert.equal(e2.fileCount, 2, 'kept: stored after where the index\'s claims start');
      await e2.append([line(90001, 9)], 5000, 300, 50);
      assert.equal(e2.fileCount, 1, 'and goes once its claims expired');
      await e2.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
