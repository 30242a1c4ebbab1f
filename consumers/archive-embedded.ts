// The Archive port embedded: LevelDB (classic-level) under {dataDir}/archive, one sorted key space holding
// the HBase tables' rows under the same row keys (consumers/archive-keys.ts): {table}0x00{row key}, and
// {table}0x00{user}0x00{conversation} for the conversations table's cells. A message row's value is the
// archived message as JSON (with its receipt state), a conversation cell's the id of its last message
// (lastId); writes of one call are one atomic batch, fsync'd. One key outside the tables holds the
// high-water mark: the highest message id the store holds (see putMessages).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import type { Envelope } from '../common/envelope.ts';
import type { Archive, ArchivedMessage, ConversationSummary, MetricPoint, ReceiptMark } from './archive.ts';
import {
  MAX_ROW_BYTES,
  TABLES,
  advances,
  compareIds,
  escapePart,
  idOfInboxKey,
  isArchiveId,
  isReceiptState,
  keyable,
  markable,
  messageKey,
  pageRange,
  planMessages,
  plainKeyPart,
  planMetrics,
  prefixEnd,
  readMetrics,
  summarize,
  syncRange,
  timeRange,
  tooLong,
  type TableRole,
} from './archive-keys.ts';

export interface EmbeddedArchiveOptions {
  /** fsync every write batch (LevelDB `sync: true`); true when absent. False trades durability for speed. */
  fsync?: boolean;
}

const TABLE_PREFIX: Record<TableRole, Buffer> = {
  messages: Buffer.from(`${TABLES.messages}\u0000`),
  inbox: Buffer.from(`${TABLES.inbox}\u0000`),
  conversations: Buffer.from(`${TABLES.conversations}\u0000`),
  metrics: Buffer.from(`${TABLES.metrics}\u0000`),
};
const at = (table: TableRole, row: Buffer) => Buffer.concat([TABLE_PREFIX[table], row]);
/** The high-water mark's key: before every table (0x00 sorts first), in no table's range. */
export const HIGH_WATER_KEY = Buffer.from('\u0000high-water');
/** The conversations "row" of a user: its cells follow it, one key per conversation. */
const conversationsRow = (user: string) => Buffer.concat([TABLE_PREFIX.conversations, escapePart(user), Buffer.from([0])]);
/** A user's cell of a conversation: its row, then the conversation id, in one buffer (a plain user id as it is). */
function conversationCell(user: string, conversation: string): Buffer {
  if (!plainKeyPart(user)) return Buffer.concat([conversationsRow(user), Buffer.from(conversation, 'utf8')]);
  const prefix = TABLE_PREFIX.conversations;
  const cell = Buffer.allocUnsafe(prefix.length + user.length + 1 + Buffer.byteLength(conversation, 'utf8'));
  let at = prefix.copy(cell);
  at += cell.write(user, at, 'latin1');
  cell[at++] = 0;
  cell.write(conversation, at, 'utf8');
  return cell;
}
/** planMessages builds the `messages` and `inbox` keys with their table's prefix in front. */
const PLAN_TABLES = { messages: TABLE_PREFIX.messages, inbox: TABLE_PREFIX.inbox };

/**
 * A conversation cell holds the id of its last message, whose row holds the message: a 1:1 message updates
 * two cells and a group message one per member, and copies of the message there made the archive write
 * several times its size (and LevelDB compact it again and again). Stores written before hold the message
 * itself, as JSON.
 */
const lastId = (cell: string): string => (cell.startsWith('{') ? (JSON.parse(cell) as Envelope).id : cell);

/** The open database (long-lived state: a class). Writes that read first run one at a time. */
export class EmbeddedArchive implements Archive {
  readonly adapter = 'embedded';
  readonly location: string;
  private readonly db: ClassicLevel<Buffer, string>;
  private readonly fsync: boolean;
  private opening?: Promise<void>;
  private tail: Promise<unknown> = Promise.resolve();
  /**
   * The highest message id the store holds, or null while it is not known (a store written before the mark
   * existed, until its inbox has been read through once: `finding`). Every row and cell holds an id at or
   * below it, so a message above it is new: no row to keep a receipt state from, no cell with a newer id.
   */
  private high: string | null = null;
  /** The highest id written since open, for a mark found while messages were being written. */
  private writtenHigh = '0';
  private finding?: Promise<void>;
  private closing = false;
  /** Messages written without reading their row and cells first (they were above the mark); for the tests. */
  blindWrites = 0;

  constructor(dataDir: string, options: EmbeddedArchiveOptions = {}) {
    this.location = path.join(dataDir, 'archive');
    // LevelDB creates its own folder but not the ones above it.
    mkdirSync(dataDir, { recursive: true });
    this.db = new ClassicLevel<Buffer, string>(this.location, { keyEncoding: 'buffer', valueEncoding: 'utf8' });
    this.fsync = options.fsync ?? true;
  }

  private ready(): Promise<void> {
    this.opening ??= this.db
      .open()
      .then(() => this.loadHighWater())
      .catch((err: Error) => {
        this.opening = undefined;
        throw new Error(`cannot open the embedded archive at ${this.location}: ${err.message}`);
      });
    return this.opening;
  }

  /** The high-water mark once known (an older store's once its inbox has been read through); null if it could not be found. */
  async highWaterMark(): Promise<string | null> {
    await this.ready();
    await this.finding;
    return this.high;
  }

  /** The mark as stored; an empty store starts at 0; an older store's is found by reading its inbox once, meanwhile. */
  private async loadHighWater(): Promise<void> {
    const stored = await this.db.get(HIGH_WATER_KEY);
    if (stored !== undefined) {
      this.high = stored;
      return;
    }
    const [any] = await this.db.keys({ limit: 1 }).all();
    if (any === undefined) {
      this.high = '0';
      return;
    }
    this.finding = this.findHighWater().catch(() => undefined);
  }

  /**
   * Every message has an inbox row per reader, its key ending in the id: the highest of them is the mark.
   * Read in the background (a large store takes a while); until it is known, writes read first, as before.
   */
  private async findHighWater(): Promise<void> {
    let found = '0';
    for await (const key of this.db.keys({ gte: TABLE_PREFIX.inbox, lt: prefixEnd(TABLE_PREFIX.inbox) })) {
      if (this.closing) return;
      const id = idOfInboxKey(key);
      if (compareIds(id, found) > 0) found = id;
    }
    await this.exclusive(async () => {
      if (this.closing) return;
      // Batches written while the inbox was read may hold higher ids than the rows it saw.
      const high = compareIds(this.writtenHigh, found) > 0 ? this.writtenHigh : found;
      await this.db.put(HIGH_WATER_KEY, high, { sync: this.fsync });
      this.high = high;
    });
  }

  /** Read-modify-write steps (putMessages, setState) in series, so none works from a stale read. */
  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step, step);
    this.tail = run.catch(() => undefined);
    return run;
  }

  async ensureSchema(): Promise<void> {
    await this.ready();
  }

  async putMessages(batch: readonly { message: Envelope; participants: readonly string[] }[]): Promise<void> {
    const plan = planMessages(batch, PLAN_TABLES);
    if (plan.inbox.length === 0) return;
    await this.ready();
    await this.exclusive(async () => {
      // Reading a row and two cells per message cost more than writing them (LevelDB looks each up level
      // by level, and the lookups bring on compactions of their own). A message above the mark needs
      // neither: only a replay, at or below it, is read first.
      const high = this.high;
      const isNew = (id: string) => high !== null && compareIds(id, high) > 0;
      const keys = plan.messages.map((m) => m.key);
      const lastKeys = plan.last.map((l) => conversationCell(l.user, l.conversation));
      const rowsToRead = plan.messages.flatMap((m, i) => (isNew(m.message.id) ? [] : [i]));
      const cellsToRead = plan.last.flatMap((l, i) => (isNew(l.message.id) ? [] : [i]));
      const [stored, lasts] = await Promise.all([
        rowsToRead.length ? this.db.getMany(rowsToRead.map((i) => keys[i])) : [],
        cellsToRead.length ? this.db.getMany(cellsToRead.map((i) => lastKeys[i])) : [],
      ]);
      const storedRow = new Map(rowsToRead.map((i, k) => [i, stored[k]]));
      const storedCell = new Map(cellsToRead.map((i, k) => [i, lasts[k]]));
      const puts: Array<[Buffer, string]> = [];
      let top = this.writtenHigh;
      plan.messages.forEach((m, i) => {
        // A replay keeps the receipt state recorded since.
        const row = storedRow.get(i);
        const state = row === undefined ? undefined : (JSON.parse(row) as ArchivedMessage).state;
        puts.push([keys[i], JSON.stringify(state ? { ...m.message, state } : m.message)]);
        if (compareIds(m.message.id, top) > 0) top = m.message.id;
      });
      for (const i of plan.inbox) puts.push([i.key, i.receipt ?? i.conversation]);
      plan.last.forEach((l, i) => {
        const cell = storedCell.get(i);
        const was = cell === undefined ? undefined : lastId(cell);
        if (was === undefined || compareIds(l.message.id, was) > 0) puts.push([lastKeys[i], l.message.id]);
      });
      // The mark moves in the same atomic batch as the rows under it; not while an older store's is still sought.
      const raised = high !== null && compareIds(top, high) > 0;
      if (raised) puts.push([HIGH_WATER_KEY, top]);
      await this.write(puts);
      this.writtenHigh = top;
      if (raised) this.high = top;
      this.blindWrites += plan.messages.length - rowsToRead.length;
    });
  }

  /** One atomic batch, fsync'd: a chained batch goes straight into LevelDB's WriteBatch, several times faster than an array of ops. */
  private async write(puts: Array<[Buffer, string]>): Promise<void> {
    const batch = this.db.batch();
    for (const [key, value] of puts) batch.put(key, value);
    await batch.write({ sync: this.fsync });
  }

  async setState({ conversation, id, state, reader }: ReceiptMark): Promise<void> {
    if (!isReceiptState(state)) throw new RangeError(`a receipt state is delivered or read, not ${JSON.stringify(state)}`);
    if (!isArchiveId(id) || !keyable(conversation)) return; // no message has that id
    const row = messageKey(conversation, id);
    if (tooLong(row)) return;
    await this.ready();
    await this.exclusive(async () => {
      const value = await this.db.get(at('messages', row));
      if (value === undefined) return; // not archived: nothing to mark
      const m = JSON.parse(value) as ArchivedMessage;
      if (!markable(m, reader) || !advances(m.state, state)) return;
      await this.db.put(at('messages', row), JSON.stringify({ ...m, state }), { sync: this.fsync });
    });
  }

  async page(conversation: string, options: { before?: string; limit: number }): Promise<ArchivedMessage[]> {
    const range = pageRange(conversation, options.before);
    if (!range || !(options.limit > 0)) return [];
    await this.ready();
    const values = await this.db.values({ gte: at('messages', range.start), lt: at('messages', range.stop), limit: Math.floor(options.limit) }).all();
    return values.map((v) => JSON.parse(v) as ArchivedMessage);
  }

  async *scan(conversation: string, options: { from: number; to: number }): AsyncIterable<ArchivedMessage> {
    const { from, to } = options;
    const range = timeRange(conversation, from, to);
    if (!range) return;
    await this.ready();
    // Backwards over newest-first rows: oldest first, streamed from one snapshot.
    for await (const value of this.db.values({ lte: at('messages', range.high), gt: at('messages', range.low), reverse: true })) {
      const m = JSON.parse(value) as ArchivedMessage;
      if (m.ts >= from && m.ts < to) yield m;
    }
  }

  async conversations(userId: string, limit: number): Promise<ConversationSummary[]> {
    if (!keyable(userId) || userId.length === 0 || Buffer.byteLength(userId) > MAX_ROW_BYTES || !(limit > 0)) return [];
    await this.ready();
    const row = conversationsRow(userId);
    const cells = (await this.db.iterator({ gte: row, lt: prefixEnd(row) }).all()).map(([key, cell]) => {
      const older = cell.startsWith('{') ? (JSON.parse(cell) as ArchivedMessage) : undefined;
      return { conversation: key.subarray(row.length).toString('utf8'), id: older?.id ?? cell, older };
    });
    // The newest `limit` conversations by their last message's id; those messages (with their receipt state) from their rows.
    const newest = cells.sort((a, b) => compareIds(b.id, a.id)).slice(0, Math.floor(limit));
    const stored = await this.db.getMany(newest.map((c) => at('messages', messageKey(c.conversation, c.id))));
    const lasts = newest.flatMap((c, i) => {
      const message = stored[i] === undefined ? c.older : (JSON.parse(stored[i]!) as ArchivedMessage);
      return message ? [{ conversation: c.conversation, message }] : [];
    });
    return summarize(userId, lasts, limit);
  }

  async sync(userId: string, options: { after?: string; limit: number }): Promise<ArchivedMessage[]> {
    const range = syncRange(userId, options.after);
    if (!range || !(options.limit > 0)) return [];
    await this.ready();
    const pointers = await this.db.iterator({ gte: at('inbox', range.start), lt: at('inbox', range.stop), limit: Math.floor(options.limit) }).all();
    // A receipt's pointer is the receipt itself; a message's names its conversation.
    const isReceipt = (value: string) => value.startsWith('{');
    const rows = pointers.filter(([, value]) => !isReceipt(value));
    const values = await this.db.getMany(rows.map(([key, conversation]) => at('messages', messageKey(conversation, idOfInboxKey(key)))));
    const byKey = new Map(rows.map(([key], i) => [key, values[i]]));
    return pointers
      .map(([key, value]) => (isReceipt(value) ? value : byKey.get(key)))
      .filter((v): v is string => v !== undefined)
      .map((v) => JSON.parse(v) as ArchivedMessage);
  }

  async putMetrics(points: readonly MetricPoint[]): Promise<void> {
    const rows = [...planMetrics(points).values()];
    if (rows.length === 0) return;
    await this.ready();
    await this.write(rows.map((r): [Buffer, string] => [at('metrics', r.key), r.value]));
  }

  async metrics(metric: string, options: { from: number; to: number }): Promise<MetricPoint[]> {
    await this.ready();
    const strip = (key: Buffer) => key.subarray(TABLE_PREFIX.metrics.length);
    return readMetrics(metric, options.from, options.to, {
      first: async (start, stop) => {
        const [key] = await this.db.keys({ gte: at('metrics', start), lt: at('metrics', stop), limit: 1 }).all();
        return key && strip(key);
      },
      rows: async (start, stop) =>
        (await this.db.iterator({ gte: at('metrics', start), lt: at('metrics', stop) }).all()).map(([key, value]) => ({ key: strip(key), value })),
    });
  }

  async ping(): Promise<boolean> {
    try {
      await this.ready();
      return this.db.status === 'open';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.finding;
    await this.tail;
    await this.opening?.catch(() => undefined);
    await this.db.close();
  }
}
