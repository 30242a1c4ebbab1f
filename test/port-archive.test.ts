// The Archive contract against the embedded LevelDB store and the real HBase of test/stack (a random
// namespace per run, dropped at the end), and what analysts rely on: the rows under the documented keys
// (consumers/archive-keys.ts), plain UTF-8 columns in HBase, and the same keys in the embedded store.
import assert from './helpers/assert.ts';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { connect, type HBaseClient, type HBaseRow, type HBaseTransport } from '../common/hbase/client.ts';
import { IdGenerator } from '../common/ids.ts';
import type { Envelope } from '../common/envelope.ts';
import { conversationOf } from '../consumers/archive.ts';
import { EmbeddedArchive, HIGH_WATER_KEY } from '../consumers/archive-embedded.ts';
import { RpcArchive, serveArchive } from '../consumers/archive-rpc.ts';
import { HBaseArchive } from '../consumers/archive-hbase.ts';
import { escapePart, fnv1a32, inboxKey, inboxPrefix, messageKey, messagePrefix, metricKey, saltOf, saltedKey } from '../consumers/archive-keys.ts';
import { archiveContract } from './contracts/archive.ts';
import { rand, rpcPair, tempDir } from './contracts/support.ts';
import { loadStackEnv } from './stack/env.ts';

const HBASE_KEYS = ['PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT', 'PARLEY_HBASE_TRANSPORT'] as const;

/** HBase settings from .stack.env; missing ones fail the suite, never skip it. */
function hbaseSettings(): { host: string; port: number; transport: HBaseTransport } {
  const env = loadStackEnv();
  const missing = HBASE_KEYS.filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new Error(
      `the HBase archive suite needs ${missing.join(', ')} in .stack.env, which is missing them: ` +
        'start HBase with `npx tsx test/stack/cli.ts up --only hbase` (npm test does this first)',
    );
  }
  return { host: env.PARLEY_HBASE_HOST, port: Number(env.PARLEY_HBASE_PORT), transport: env.PARLEY_HBASE_TRANSPORT as HBaseTransport };
}

const hbaseArchive = (namespace: string) => new HBaseArchive({ ...hbaseSettings(), namespace, scanChunk: 100 });

archiveContract('embedded (classic-level)', async () => {
  const tmp = await tempDir('archive');
  let current = new EmbeddedArchive(tmp.dir);
  return {
    adapter: current,
    reopen: async () => {
      await current.close();
      current = new EmbeddedArchive(tmp.dir);
      await current.ensureSchema();
      return current;
    },
    cleanup: async () => {
      await current.close();
      await tmp.remove();
    },
  };
});

// The consumer thread's embedded archive as the broker thread's routes see it: every call cloned across a
// MessagePort, errors by class, scans in chunks.
archiveContract('embedded over RPC (consumer thread → broker thread)', async () => {
  const tmp = await tempDir('archive-rpc');
  let inner = new EmbeddedArchive(tmp.dir);
  let pair = rpcPair();
  let served = serveArchive(pair.serving, inner);
  const open = () => new RpcArchive(() => pair.calling, 'embedded');
  const shut = async () => {
    await served.stop();
    pair.close();
    await inner.close();
  };
  return {
    adapter: open(),
    reopen: async () => {
      await shut();
      inner = new EmbeddedArchive(tmp.dir);
      pair = rpcPair();
      served = serveArchive(pair.serving, inner);
      const next = open();
      await next.ensureSchema();
      return next;
    },
    cleanup: async () => {
      await shut();
      await tmp.remove();
    },
  };
});

archiveContract('hbase (Thrift2)', async () => {
  const namespace = `parley_test_${rand(6)}`;
  let current = hbaseArchive(namespace);
  return {
    adapter: current,
    // A new connection: what another process, or this one restarted, would see.
    reopen: async () => {
      await current.close();
      current = hbaseArchive(namespace);
      return current;
    },
    cleanup: async () => {
      try {
        await current.dropSchema();
      } finally {
        await current.close();
      }
    },
  };
});

const gen = new IdGenerator(6);
const message = (from: string, to: string, extra: Partial<Envelope> = {}): Envelope => {
  const { id, ts } = gen.next();
  return { id, from, to, ts, cid: `c-${id}`, kind: 'text', body: `hi ${id}`, ...extra };
};
const MAX = (1n << 64n) - 1n;

describe('HBaseArchive rows as analysts read them', () => {
  const namespace = `parley_test_${rand(6)}`;
  let archive: HBaseArchive;
  let raw: HBaseClient;
  const cells = (row: HBaseRow | undefined) =>
    Object.fromEntries((row?.cells ?? []).map((c) => [`${c.family}:${c.qualifier.toString()}`, { value: c.value.toString('utf8'), ts: c.timestamp }]));

  before(async () => {
    archive = hbaseArchive(namespace);
    await archive.ensureSchema();
    const s = hbaseSettings();
    raw = await connect(s.host, s.port, s.transport);
  });
  after(async () => {
    try {
      await archive?.dropSchema();
    } finally {
      await archive?.close();
      raw?.close();
    }
  });

  it('creates parley-style tables in the namespace, once', async () => {
    assert.equal(archive.tables.messages, `${namespace}:messages`);
    assert.deepEqual(Object.values(archive.tables), ['messages', 'inbox', 'conversations', 'metrics'].map((t) => `${namespace}:${t}`));
    for (const table of ['messages', 'inbox', 'conversations', 'metrics']) {
      assert.equal(await raw.createTableIfMissing({ namespace, table, families: ['m'] }), false, `${table} exists`);
    }
    assert.equal(new HBaseArchive({ ...hbaseSettings() }).tables.messages, 'parley:messages', 'the default namespace');
  });

  it('writes a message row {salt}{conversation}0x00{reversed id} with plain UTF-8 columns and the ts as cell time', async () => {
    const [a, b] = [`a${rand()}`, `b${rand()}`];
    const m = message(a, b, { kind: 'attachment', body: 'caption ü', attachment: { key: 'k/1', name: 'n.png', mime: 'image/png', size: 5 } });
    await archive.putMessages([{ message: m, participants: [a, b] }]);
    const conversation = conversationOf(m);
    const key = `${saltOf(conversation)}${conversation}\u0000${(MAX - BigInt(m.id)).toString().padStart(20, '0')}`;
    assert.deepEqual(messageKey(conversation, m.id), Buffer.from(key));
    assert.match(saltOf(conversation), /^0[0-9a-f]$/);
    const row = await raw.get(archive.tables.messages, key);
    const at = m.ts;
    assert.deepEqual(cells(row), {
      'm:attachment': { value: JSON.stringify(m.attachment), ts: at },
      'm:body': { value: 'caption ü', ts: at },
      'm:cid': { value: m.cid, ts: at },
      'm:from': { value: a, ts: at },
      'm:id': { value: m.id, ts: at },
      'm:kind': { value: 'attachment', ts: at },
      'm:to': { value: b, ts: at },
      'm:ts': { value: String(m.ts), ts: at },
    });

    await archive.setState({ conversation, id: m.id, state: 'delivered', reader: m.to });
    const withState = cells(await raw.get(archive.tables.messages, key));
    assert.equal(withState['m:state'].value, 'delivered');
    // A replay rewrites identical cells: same values, same timestamps, the state kept.
    await archive.putMessages([{ message: m, participants: [a, b] }]);
    assert.deepEqual(cells(await raw.get(archive.tables.messages, key)), withState);

    for (const u of [a, b]) {
      const inbox = await raw.get(archive.tables.inbox, inboxKey(u, m.id));
      assert.deepEqual(inboxKey(u, m.id), Buffer.from(`${saltOf(u)}${u}\u0000${m.id.padStart(20, '0')}`));
      assert.deepEqual(cells(inbox), { 'm:c': { value: conversation, ts: at } });
      const list = cells(await raw.get(archive.tables.conversations, u));
      assert.deepEqual(Object.keys(list), [`m:${conversation}`]);
      assert.deepEqual(JSON.parse(list[`m:${conversation}`].value), m);
      assert.equal(list[`m:${conversation}`].ts, m.ts, 'the conversation cell carries the message ts');
    }
  });

  it('writes a metric row {metric}0x00{labels}0x00{window start} holding {value, windowMs, labels}', async () => {
    const metric = `m_${rand()}`;
    const point = { metric, windowStart: Date.UTC(2030, 0, 1), windowMs: 60_000, value: 42, labels: { z: '1', a: '2' } };
    await archive.putMetrics([point]);
    const key = `${metric}\u0000{"a":"2","z":"1"}\u0000${point.windowStart}`;
    assert.deepEqual(metricKey(point), Buffer.from(key));
    const row = cells(await raw.get(archive.tables.metrics, key));
    assert.deepEqual(JSON.parse(row['m:v'].value), { value: 42, windowMs: 60_000, labels: { a: '2', z: '1' } });
  });
});

describe('EmbeddedArchive keys', () => {
  let tmp: { dir: string; remove(): Promise<void> };
  before(async () => {
    tmp = await tempDir('archive-keys');
  });
  after(async () => {
    await tmp?.remove();
  });

  it('stores the HBase row keys under {table}0x00, in {dataDir}/archive', async () => {
    const archive = new EmbeddedArchive(tmp.dir);
    await archive.ensureSchema();
    const [a, b] = [`a${rand()}`, `b${rand()}`];
    const m = message(a, b);
    await archive.putMessages([{ message: m, participants: [a, b] }]);
    await archive.setState({ conversation: conversationOf(m), id: m.id, state: 'read', reader: m.to });
    await archive.close();

    const db = new ClassicLevel<Buffer, string>(path.join(tmp.dir, 'archive'), { keyEncoding: 'buffer', valueEncoding: 'utf8' });
    try {
      const conversation = conversationOf(m);
      const row = (table: string, key: Buffer) => Buffer.concat([Buffer.from(`${table}\u0000`), key]);
      assert.deepEqual(JSON.parse((await db.get(row('messages', messageKey(conversation, m.id))))!), { ...m, state: 'read' });
      assert.equal(await db.get(row('inbox', inboxKey(b, m.id))), conversation);
      // A conversation cell names its last message; the message is in its row only.
      assert.equal(await db.get(row('conversations', Buffer.from(`${a}\u0000${conversation}`))), m.id);
      assert.equal(await db.get(HIGH_WATER_KEY), m.id, 'the high-water mark: the highest id stored');
      assert.equal((await db.keys().all()).length, 6, 'one message row, two inbox rows, two conversation cells, the mark, nothing else');
    } finally {
      await db.close();
    }
  });

  it('builds the same keys on its short path (ASCII ids) and its long one (0x00, 0x01, non-ASCII): ids that need escaping or are not ASCII', async () => {
    const fnvOfBytes = (text: string) => {
      let hash = 0x811c9dc5;
      for (const byte of Buffer.from(text, 'utf8')) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
      return hash;
    };
    const digits = '00000000000000000042';
    const table = Buffer.from('inbox\u0000');
    for (const id of ['alice', 'u:alice:bob', 'a\u0000b', 'a\u0001b', '\u0001', 'a\x7f', 'a\x80', 'ünï', '李', 'x🌸y', 'a\uffff']) {
      assert.equal(fnv1a32(id), fnvOfBytes(id), `FNV-1a of ${JSON.stringify(id)} is over its UTF-8 bytes`);
      assert.deepEqual(saltedKey(table, id, digits), Buffer.concat([table, inboxPrefix(id), Buffer.from(digits)]), JSON.stringify(id));
      assert.deepEqual(saltedKey(Buffer.alloc(0), id, digits), Buffer.concat([messagePrefix(id), Buffer.from(digits)]), JSON.stringify(id));
    }
    const dir = path.join(tmp.dir, 'hostile');
    const archive = new EmbeddedArchive(dir);
    await archive.ensureSchema();
    const [a, b] = [`a\u0000${rand()}`, `b\u0001é🌸${rand()}`];
    const m = message(a, b);
    await archive.putMessages([{ message: m, participants: [a, b] }]);
    await archive.close();
    const db = new ClassicLevel<Buffer, string>(path.join(dir, 'archive'), { keyEncoding: 'buffer', valueEncoding: 'utf8' });
    try {
      const conversation = conversationOf(m);
      const row = (table: string, key: Buffer) => Buffer.concat([Buffer.from(`${table}\u0000`), key]);
      const cell = (user: string) => Buffer.concat([Buffer.from('conversations\u0000'), escapePart(user), Buffer.from([0]), Buffer.from(conversation)]);
      const expected = [row('messages', messageKey(conversation, m.id)), row('inbox', inboxKey(a, m.id)), row('inbox', inboxKey(b, m.id)), cell(a), cell(b)];
      const keys = (await db.keys().all()).filter((k) => !k.equals(HIGH_WATER_KEY));
      assert.deepEqual(keys.map((k) => k.toString('hex')).sort(), expected.map((k) => k.toString('hex')).sort());
    } finally {
      await db.close();
    }
    // A reader's inbox key (2 salt bytes, its id, 0x00, 20 digits) fits HBase's 32,767 bytes, or the batch is refused.
    const edge = new EmbeddedArchive(path.join(tmp.dir, 'edge'));
    try {
      const reader = (n: number) => 'r'.repeat(n);
      await edge.putMessages([{ message: message(a, b), participants: [a, b, reader(32_744)] }]);
      assert.equal((await edge.sync(reader(32_744), { limit: 10 })).length, 1, 'a key of exactly 32,767 bytes is stored');
      await assert.rejects(edge.putMessages([{ message: message(a, b), participants: [a, b, reader(32_745)] }]), RangeError);
    } finally {
      await edge.close();
    }
  });

  it('reads the conversation cells of an older store, which held the last message itself, and moves them on', async () => {
    const [a, b, c] = [`a${rand()}`, `b${rand()}`, `c${rand()}`];
    const ab = message(a, b);
    const ac = message(a, c);
    const archive = new EmbeddedArchive(tmp.dir);
    await archive.putMessages([{ message: ab, participants: [a, b] }, { message: ac, participants: [a, c] }]);
    await archive.setState({ conversation: conversationOf(ab), id: ab.id, state: 'read', reader: ab.to });
    await archive.close();
    // What the build before wrote into a's cells: the message as JSON.
    const db = new ClassicLevel<Buffer, string>(path.join(tmp.dir, 'archive'), { keyEncoding: 'buffer', valueEncoding: 'utf8' });
    const cell = (user: string, m: Envelope) => Buffer.from(`conversations\u0000${user}\u0000${conversationOf(m)}`);
    await db.put(cell(a, ab), JSON.stringify(ab));
    await db.put(cell(a, ac), JSON.stringify(ac));
    await db.close();

    const reopened = new EmbeddedArchive(tmp.dir);
    try {
      const list = await reopened.conversations(a, 10);
      assert.deepEqual(list.map((s) => s.id), [c, b], 'newest first');
      assert.deepEqual(list[1].lastMessage, { ...ab, state: 'read' }, 'the state comes from the message row');
      assert.deepEqual((await reopened.conversations(a, 1)).map((s) => s.id), [c]);
      // An older message does not replace an older cell's newer one; a newer one does, as an id.
      const before = message(b, a, { id: (BigInt(ab.id) - 1n).toString() });
      const after = message(b, a);
      await reopened.putMessages([{ message: before, participants: [a, b] }]);
      assert.equal((await reopened.conversations(a, 10))[1].lastMessage.id, ab.id);
      await reopened.putMessages([{ message: after, participants: [a, b] }]);
      assert.deepEqual((await reopened.conversations(a, 10)).map((s) => [s.id, s.lastMessage.id]), [[b, after.id], [c, ac.id]]);
    } finally {
      await reopened.close();
    }
  });

  describe('the high-water mark', () => {
    const raw = (dir: string) => new ClassicLevel<Buffer, string>(path.join(dir, 'archive'), { keyEncoding: 'buffer', valueEncoding: 'utf8' });
    const rowKey = (m: Envelope) => Buffer.concat([Buffer.from('messages\u0000'), messageKey(conversationOf(m), m.id)]);
    const cellKey = (user: string, m: Envelope) => Buffer.from(`conversations\u0000${user}\u0000${conversationOf(m)}`);

    it('writes a message above it without reading its row or cells first, and moves it with the rows', async () => {
      const dir = path.join(tmp.dir, 'blind');
      const [a, b] = [`a${rand()}`, `b${rand()}`];
      const [m1, m2] = [message(a, b), message(a, b)];
      const archive = new EmbeddedArchive(dir);
      await archive.putMessages([{ message: m1, participants: [a, b] }]);
      assert.equal(archive.blindWrites, 1, 'an empty store: the first message is above the mark (0)');
      assert.equal(await archive.highWaterMark(), m1.id);
      await archive.close();
      // Planted behind the archive's back, where a message above the mark cannot have a row: a state, and a
      // cell naming a newer message. Written without a read, the message replaces both.
      const db = raw(dir);
      await db.put(rowKey(m2), JSON.stringify({ ...m2, state: 'read' }));
      await db.put(cellKey(a, m2), (BigInt(m2.id) + 1000n).toString());
      await db.close();
      const reopened = new EmbeddedArchive(dir);
      await reopened.putMessages([{ message: m2, participants: [a, b] }]);
      assert.equal(reopened.blindWrites, 1);
      assert.equal(await reopened.highWaterMark(), m2.id);
      await reopened.close();
      const after = raw(dir);
      try {
        assert.deepEqual(JSON.parse((await after.get(rowKey(m2)))!), m2, 'not read first: the planted state is gone');
        assert.equal(await after.get(cellKey(a, m2)), m2.id);
        assert.equal(await after.get(HIGH_WATER_KEY), m2.id, 'the mark is stored with the rows');
      } finally {
        await after.close();
      }
    });

    it('reads a replay at or below it first: its receipt state stays, no cell moves back, the mark stays', async () => {
      const dir = path.join(tmp.dir, 'replay');
      const [a, b, c] = [`a${rand()}`, `b${rand()}`, `c${rand()}`];
      const [older, newer, other] = [message(a, b), message(a, b), message(a, c)];
      const archive = new EmbeddedArchive(dir);
      try {
        await archive.putMessages([older, newer, other].map((m) => ({ message: m, participants: [m.from, m.to] })));
        await archive.setState({ conversation: conversationOf(older), id: older.id, state: 'read', reader: older.to });
        const blind = archive.blindWrites;
        await archive.putMessages([{ message: older, participants: [a, b] }]);
        assert.equal(archive.blindWrites, blind, 'the replay was read first');
        assert.equal((await archive.page(conversationOf(older), { limit: 10 })).find((m) => m.id === older.id)?.state, 'read');
        const list = await archive.conversations(a, 10);
        assert.deepEqual(list.map((s) => [s.id, s.lastMessage.id]), [[c, other.id], [b, newer.id]], 'the cells keep their newest messages');
        assert.equal(await archive.highWaterMark(), other.id);
      } finally {
        await archive.close();
      }
    });

    it('finds an older store’s mark in its inbox, reading writes first until then, and stores it', async () => {
      const dir = path.join(tmp.dir, 'older');
      // The newest message's readers sort first: the inbox's last key is not the highest id.
      const [y, z, a, b] = [`y${rand()}`, `z${rand()}`, `a${rand()}`, `b${rand()}`];
      const [yz, ab] = [message(y, z), message(a, b)];
      const archive = new EmbeddedArchive(dir);
      await archive.putMessages([yz, ab].map((m) => ({ message: m, participants: [m.from, m.to] })));
      await archive.setState({ conversation: conversationOf(yz), id: yz.id, state: 'delivered', reader: yz.to });
      await archive.close();
      const db = raw(dir);
      await db.del(HIGH_WATER_KEY); // as a store written before the mark existed
      await db.close();

      const reopened = new EmbeddedArchive(dir);
      const fresh = message(a, b);
      try {
        // Both in the first turn: the replay and a new message race the search for the mark.
        const writing = Promise.all([
          reopened.putMessages([{ message: yz, participants: [y, z] }]),
          reopened.putMessages([{ message: fresh, participants: [a, b] }]),
        ]);
        await writing;
        assert.equal(await reopened.highWaterMark(), fresh.id, 'the highest of what the inbox held and what was written meanwhile');
        assert.equal((await reopened.page(conversationOf(yz), { limit: 10 }))[0].state, 'delivered', 'the replay kept its state');
        const next = message(a, b);
        const blind = reopened.blindWrites;
        await reopened.putMessages([{ message: next, participants: [a, b] }]);
        assert.equal(reopened.blindWrites, blind + 1, 'with the mark found, new messages are written without reads');
      } finally {
        await reopened.close();
      }
      const after = raw(dir);
      try {
        assert.ok(BigInt((await after.get(HIGH_WATER_KEY))!) > BigInt(fresh.id), 'stored');
      } finally {
        await after.close();
      }
    });
  });
});
