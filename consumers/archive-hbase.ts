// The Archive port on HBase, through its Thrift2 gateway (common/hbase/client.ts). Tables, row keys and
// columns: consumers/archive-keys.ts. Every column value is plain UTF-8, for analysts in the HBase shell.
import { cellValue, connect, tableName, type CellInput, type ConnectOptions, type HBaseClient, type HBaseRow, type HBaseTransport } from '../common/hbase/client.ts';
import type { Envelope } from '../common/envelope.ts';
import type { Archive, ArchivedMessage, ConversationSummary, MetricPoint, ReceiptMark } from './archive.ts';
import { conversationOf } from './archive.ts';
import {
  DEFAULT_NAMESPACE,
  FAMILY,
  MAX_ROW_BYTES,
  SPLIT_KEYS,
  TABLES,
  advances,
  compareIds,
  idOfInboxKey,
  isArchiveId,
  isReceiptState,
  keyable,
  markable,
  messageKey,
  messageKeyBelow,
  pageRange,
  planMessages,
  planMetrics,
  readMetrics,
  summarize,
  syncRange,
  timeRange,
  tooLong,
  type TableRole,
} from './archive-keys.ts';

export interface HBaseArchiveOptions {
  host: string;
  port: number;
  transport: HBaseTransport;
  /** HBase namespace of the four tables; 'parley' when absent. */
  namespace?: string;
  /** Table names inside the namespace, by role; TABLES (messages, inbox, conversations, metrics) when absent. */
  tables?: Partial<Record<TableRole, string>>;
  connect?: ConnectOptions;
  /** Rows per putMultiple call (one Thrift frame); 1000 when absent. */
  writeBatch?: number;
  /**
   * Thrift connections; 4 when absent. The gateway serves each connection on one thread, so a batch's
   * puts spread over several connections go about twice as fast as over one (measured on test/stack).
   */
  connections?: number;
  /** Rows per read of `scan` (the analysts' export); 500 when absent. */
  scanChunk?: number;
}

const COLUMNS = ['id', 'from', 'to', 'group', 'ts', 'cid', 'kind', 'body', 'attachment', 'ref'] as const;
/** Receipt state moves are compare-and-set; past this many lost races something is wrong. */
const CAS_ATTEMPTS = 20;

/** The cells of a message row; each carries the message ts as its timestamp, so a replay rewrites the same cells. */
function messageCells(m: Envelope): CellInput[] {
  const timestamp = Math.max(0, Math.floor(m.ts));
  const cells: CellInput[] = [];
  for (const q of COLUMNS) {
    const v = m[q];
    if (v === undefined) continue;
    cells.push({ family: FAMILY, qualifier: q, value: typeof v === 'string' ? v : JSON.stringify(v), timestamp });
  }
  return cells;
}

function messageFromRow(row: HBaseRow | undefined): ArchivedMessage | undefined {
  if (!row) return undefined;
  const f: Record<string, string> = {};
  for (const c of row.cells) if (c.family === FAMILY) f[c.qualifier.toString('utf8')] = c.value.toString('utf8');
  if (f.id === undefined) return undefined; // a row holding only a stray state cell is no message
  const m: ArchivedMessage = { id: f.id, from: f.from, to: f.to, ts: Number(f.ts), cid: f.cid, kind: f.kind as Envelope['kind'] };
  if (f.group !== undefined) m.group = f.group;
  if (f.body !== undefined) m.body = f.body;
  if (f.attachment !== undefined) m.attachment = JSON.parse(f.attachment);
  if (f.ref !== undefined) m.ref = f.ref;
  if (isReceiptState(f.state)) m.state = f.state;
  return m;
}

const chunks = <T>(items: T[], size: number): T[][] => Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size));

/** A small pool of Thrift2 connections, opened on first use and again after a failed open (long-lived state: a class). */
export class HBaseArchive implements Archive {
  readonly adapter = 'hbase';
  readonly namespace: string;
  /** Qualified table names ('parley:messages'), by role. */
  readonly tables: Readonly<Record<TableRole, string>>;
  private readonly names: Readonly<Record<TableRole, string>>;
  /** Whether ensureSchema created the salted tables pre-split (undefined: they existed already, or not run). */
  presplit?: boolean;
  private pool?: Promise<HBaseClient[]>;
  private turn = 0;
  private closed = false;
  /** Conversation-list updates of concurrent putMessages calls, in series (see conversationWrites). */
  private conversationsTail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: HBaseArchiveOptions) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.names = { ...TABLES, ...options.tables };
    const q = (role: TableRole) => tableName(this.namespace, this.names[role]);
    this.tables = { messages: q('messages'), inbox: q('inbox'), conversations: q('conversations'), metrics: q('metrics') };
  }

  private connections(): Promise<HBaseClient[]> {
    if (this.closed) return Promise.reject(new Error('HBase archive is closed'));
    if (!this.pool) {
      const { host, port, transport } = this.options;
      const n = Math.max(1, this.options.connections ?? 4);
      this.pool = Promise.allSettled(Array.from({ length: n }, () => connect(host, port, transport, this.options.connect))).then((opened) => {
        const clients = opened.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
        const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
        if (!failed) return clients;
        for (const c of clients) c.close();
        throw failed.reason;
      });
      // A failed open is tried again by the next call (HBase may come back; the archiver retries).
      this.pool.catch(() => (this.pool = undefined));
    }
    return this.pool;
  }

  /** One connection of the pool, in turn. Each reconnects by itself after the gateway dropped it. */
  private async client(): Promise<HBaseClient> {
    const pool = await this.connections();
    return pool[this.turn++ % pool.length];
  }

  async ensureSchema(): Promise<void> {
    const c = await this.client();
    const families = [{ name: FAMILY, maxVersions: 1 }];
    for (const role of Object.keys(TABLES) as TableRole[]) {
      const spec = { namespace: this.namespace, table: this.names[role], families };
      if (role !== 'messages' && role !== 'inbox') {
        await c.createTableIfMissing(spec);
        continue;
      }
      try {
        if (await c.createTableIfMissing({ ...spec, splitKeys: [...SPLIT_KEYS] })) this.presplit = true;
      } catch {
        // HBase 2.6's Thrift2 gateway over the framed transport reads every split key as the whole
        // request frame ("All split keys must be unique" in its log), so pre-splitting fails there: the
        // table is created whole instead and HBase splits it as it grows.
        await c.createTableIfMissing(spec);
        this.presplit = false;
      }
    }
  }

  /** Drops the four tables, and the namespace if nothing else is left in it (tests, tear-down). */
  async dropSchema(): Promise<void> {
    const c = await this.client();
    for (const role of Object.keys(TABLES) as TableRole[]) await c.dropTable(this.namespace, this.names[role]);
    if (this.namespace !== 'default') await c.dropNamespace(this.namespace).catch(() => false);
  }

  /** Puts rows in frames of `writeBatch`, the frames spread over the pool's connections. */
  private async putRows(table: string, rows: Array<{ row: Buffer | string; cells: CellInput[] }>): Promise<void> {
    const frames = chunks(rows, this.options.writeBatch ?? 1000);
    if (frames.length === 0) return;
    const pool = await this.connections();
    let next = 0;
    await Promise.all(
      pool.slice(0, frames.length).map(async (c) => {
        for (let k = next++; k < frames.length; k = next++) await c.putMany(table, frames[k]);
      }),
    );
  }

  async putMessages(batch: readonly { message: Envelope; participants: readonly string[] }[]): Promise<void> {
    const plan = planMessages(batch);
    if (plan.inbox.length === 0) return;
    const c = await this.client();
    // Messages first: an inbox row or a conversation entry never points at a message not yet stored.
    const stored = this.putRows(this.tables.messages, plan.messages.map((m) => ({ row: m.key, cells: messageCells(m.message) })));
    const inbox = plan.inbox.map((i) => {
      const timestamp = Math.max(0, Math.floor(i.ts));
      const cells: CellInput[] = [{ family: FAMILY, qualifier: 'c', value: i.conversation, timestamp }];
      if (i.receipt !== undefined) cells.push({ family: FAMILY, qualifier: 'r', value: i.receipt, timestamp });
      return { row: i.key, cells };
    });
    await Promise.all([
      stored.then(() => this.putRows(this.tables.inbox, inbox)),
      this.inSeries(async () => {
        const writes = await this.conversationWrites(c, plan.last);
        await stored;
        await this.putRows(this.tables.conversations, writes);
      }),
    ]);
  }

  private inSeries<T>(step: () => Promise<T>): Promise<T> {
    const run = this.conversationsTail.then(step, step);
    this.conversationsTail = run.catch(() => undefined);
    return run;
  }

  /**
   * Each (user, conversation) takes the batch's newest message unless a newer one is stored. The cell
   * timestamp is the message ts, so the newest ms wins whatever the order of arrival, across processes;
   * the read before the write settles messages of the same ms by id, and read and write run in series
   * within this process. Two processes writing one conversation in the same ms could still leave the
   * older of two same-ms messages; the event log gives each conversation to one archiver at a time, so
   * only a rebalance overlaps them (and both then replay the same records).
   */
  private async conversationWrites(c: HBaseClient, lasts: ReturnType<typeof planMessages>['last']) {
    const writes: Array<{ row: string; cells: CellInput[] }> = [];
    for (const chunk of chunks(lasts, 1000)) {
      const current = await c.getMany(this.tables.conversations, chunk.map((l) => ({ row: l.user, columns: [`${FAMILY}:${l.conversation}`] })));
      chunk.forEach((l, i) => {
        const cell = current[i]?.cells[0];
        let storedId: string | undefined;
        try {
          storedId = cell ? (JSON.parse(cell.value.toString('utf8')) as Envelope).id : undefined;
        } catch {
          storedId = undefined; // unreadable: overwrite it
        }
        if (storedId !== undefined && isArchiveId(storedId) && compareIds(storedId, l.message.id) >= 0) return;
        const timestamp = Math.max(0, Math.floor(l.message.ts), cell?.timestamp ?? 0);
        writes.push({ row: l.user, cells: [{ family: FAMILY, qualifier: l.conversation, value: JSON.stringify(l.message), timestamp }] });
      });
    }
    return writes;
  }

  async setState({ conversation, id, state, reader }: ReceiptMark): Promise<void> {
    if (!isReceiptState(state)) throw new RangeError(`a receipt state is delivered or read, not ${JSON.stringify(state)}`);
    if (!isArchiveId(id) || !keyable(conversation)) return; // no message has that id
    const row = messageKey(conversation, id);
    if (tooLong(row)) return;
    const c = await this.client();
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const current = await c.get(this.tables.messages, row, [`${FAMILY}:id`, `${FAMILY}:from`, `${FAMILY}:to`, `${FAMILY}:group`, `${FAMILY}:state`]);
      if (!cellValue(current, FAMILY, 'id')) return; // not archived: nothing to mark
      const cell = (q: string) => cellValue(current, FAMILY, q)?.toString('utf8');
      if (!markable({ from: cell('from'), to: cell('to'), group: cell('group') }, reader)) return;
      const was = cellValue(current, FAMILY, 'state')?.toString('utf8');
      if (!advances(was, state)) return;
      if (await c.checkAndPut(this.tables.messages, row, FAMILY, 'state', was, [{ family: FAMILY, qualifier: 'state', value: state }])) return;
    }
    throw new Error(`setState ${conversation} ${id}: lost ${CAS_ATTEMPTS} compare-and-set races`);
  }

  async page(conversation: string, options: { before?: string; limit: number }): Promise<ArchivedMessage[]> {
    const range = pageRange(conversation, options.before);
    if (!range || !(options.limit > 0)) return [];
    const c = await this.client();
    const rows = await c.scan(this.tables.messages, { startRow: range.start, stopRow: range.stop, limit: Math.floor(options.limit) });
    return rows.map(messageFromRow).filter((m): m is ArchivedMessage => m !== undefined);
  }

  async *scan(conversation: string, options: { from: number; to: number }): AsyncIterable<ArchivedMessage> {
    const { from, to } = options;
    const range = timeRange(conversation, from, to);
    if (!range) return;
    const c = await this.client();
    const chunk = this.options.scanChunk ?? 500;
    // Reversed scans read the newest-first rows backwards: oldest first, a chunk at a time.
    for (let high: Buffer | null = range.high; high; ) {
      const rows = await c.scan(this.tables.messages, { startRow: high, stopRow: range.low, reversed: true, limit: chunk });
      for (const row of rows) {
        const m = messageFromRow(row);
        if (m && m.ts >= from && m.ts < to) yield m;
      }
      high = rows.length < chunk ? null : messageKeyBelow(rows[rows.length - 1].row);
    }
  }

  async conversations(userId: string, limit: number): Promise<ConversationSummary[]> {
    if (!keyable(userId) || userId.length === 0 || Buffer.byteLength(userId) > MAX_ROW_BYTES || !(limit > 0)) return [];
    const c = await this.client();
    const row = await c.get(this.tables.conversations, userId, [FAMILY]);
    const lasts: { conversation: string; message: ArchivedMessage }[] = [];
    for (const cell of row?.cells ?? []) {
      try {
        const message = JSON.parse(cell.value.toString('utf8')) as ArchivedMessage;
        lasts.push({ conversation: conversationOf(message), message });
      } catch {
        /* an unreadable cell is skipped */
      }
    }
    const list = summarize(userId, lasts, limit);
    // The receipt state lives on the message row; the summary takes it from there.
    const states = await c.getMany(
      this.tables.messages,
      list.map((s) => ({ row: messageKey(conversationOf(s.lastMessage), s.lastMessage.id), columns: [`${FAMILY}:state`] })),
    );
    list.forEach((s, i) => {
      const state = cellValue(states[i], FAMILY, 'state')?.toString('utf8');
      if (isReceiptState(state)) s.lastMessage.state = state;
    });
    return list;
  }

  async sync(userId: string, options: { after?: string; limit: number }): Promise<ArchivedMessage[]> {
    const range = syncRange(userId, options.after);
    if (!range || !(options.limit > 0)) return [];
    const c = await this.client();
    const pointers = await c.scan(this.tables.inbox, { startRow: range.start, stopRow: range.stop, limit: Math.floor(options.limit) });
    // A receipt's pointer holds the receipt (m:r); a message's names its conversation (m:c).
    const messagePointers = pointers.filter((p) => !cellValue(p, FAMILY, 'r'));
    const rows = await c.getMany(
      this.tables.messages,
      messagePointers.map((p) => ({ row: messageKey(cellValue(p, FAMILY, 'c')?.toString('utf8') ?? '', idOfInboxKey(p.row)) })),
    );
    const byPointer = new Map(messagePointers.map((p, i) => [p, messageFromRow(rows[i])]));
    return pointers
      .map((p) => {
        const receipt = cellValue(p, FAMILY, 'r');
        return receipt ? (JSON.parse(receipt.toString('utf8')) as ArchivedMessage) : byPointer.get(p);
      })
      .filter((m): m is ArchivedMessage => m !== undefined);
  }

  async putMetrics(points: readonly MetricPoint[]): Promise<void> {
    const rows = [...planMetrics(points).values()];
    if (rows.length === 0) return;
    await this.putRows(this.tables.metrics, rows.map((r) => ({ row: r.key, cells: [{ family: FAMILY, qualifier: 'v', value: r.value }] })));
  }

  async metrics(metric: string, options: { from: number; to: number }): Promise<MetricPoint[]> {
    const c = await this.client();
    const table = this.tables.metrics;
    return readMetrics(metric, options.from, options.to, {
      first: async (start, stop) => (await c.scan(table, { startRow: start, stopRow: stop, limit: 1, columns: [FAMILY] }))[0]?.row,
      rows: async (start, stop) =>
        (await c.scan(table, { startRow: start, stopRow: stop, columns: [`${FAMILY}:v`] })).map((r) => ({ key: r.row, value: cellValue(r, FAMILY, 'v')!.toString('utf8') })),
    });
  }

  async ping(): Promise<boolean> {
    try {
      const c = await this.client();
      await c.get(this.tables.conversations, '\u0000ping', [FAMILY]);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.pool;
    this.pool = undefined;
    for (const c of (await pending?.catch(() => undefined)) ?? []) c.close();
  }
}
