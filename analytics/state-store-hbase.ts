// StateStore on HBase: table `{namespace}:analytics_state` (beside the archive's tables), row keys of
// state-store.ts. Checkpoints in family `c` (kept), partials in family `w` with a TTL of
// PARTIAL_TTL_SECONDS, so HBase expires them itself; seen rows in `w` too. One column `s` (the JSON) per row; a put of one row
// is atomic, which is what a checkpoint relies on.
import { cellValue, connect, tableName, type HBaseClient, type HBaseTransport } from '../common/hbase/client.ts';
import {
  PARTIAL_TTL_SECONDS,
  checkpointKey,
  checkpointPrefix,
  partialJobPrefix,
  partialKey,
  partialPrefix,
  partitionOfKey,
  prefixEnd,
  seenKey,
  seenChanges,
  seenIds,
  seenPrefix,
  SEEN_SEPARATOR,
  type PartialRow,
  type SeenRow,
  type StateStore,
} from './state-store.ts';

export const STATE_TABLE = 'analytics_state';

export interface HBaseStateStoreOptions {
  host: string;
  port: number;
  transport: HBaseTransport;
  namespace: string;
  /** TTL of the partials family, set when the table is created. */
  ttlSeconds?: number;
}

export class HBaseStateStore implements StateStore {
  readonly adapter = 'hbase';
  readonly table: string;
  private client?: Promise<HBaseClient>;
  private closed = false;

  constructor(private readonly options: HBaseStateStoreOptions) {
    this.table = tableName(options.namespace, STATE_TABLE);
  }

  /** One Thrift connection; it reconnects by itself after the gateway dropped it, and a failed open is tried again. */
  private hbase(): Promise<HBaseClient> {
    if (this.closed) return Promise.reject(new Error('analytics state store is closed'));
    if (!this.client) {
      this.client = connect(this.options.host, this.options.port, this.options.transport);
      this.client.catch(() => (this.client = undefined));
    }
    return this.client;
  }

  async ensureSchema(): Promise<void> {
    const c = await this.hbase();
    await c.createTableIfMissing({
      namespace: this.options.namespace,
      table: STATE_TABLE,
      families: [
        { name: 'c', maxVersions: 1 },
        { name: 'w', maxVersions: 1, timeToLiveSeconds: this.options.ttlSeconds ?? PARTIAL_TTL_SECONDS },
      ],
    });
  }

  /** Drops the table, and the namespace if nothing else is left in it (tests, tear-down). */
  async dropSchema(): Promise<void> {
    const c = await this.hbase();
    await c.dropTable(this.options.namespace, STATE_TABLE);
    if (this.options.namespace !== 'default') await c.dropNamespace(this.options.namespace).catch(() => false);
  }

  async checkpoint(job: string, partition: number): Promise<string | undefined> {
    const c = await this.hbase();
    return cellValue(await c.get(this.table, checkpointKey(job, partition), ['c:s']), 'c', 's')?.toString('utf8');
  }

  async putCheckpoint(job: string, partition: number, value: string): Promise<void> {
    const c = await this.hbase();
    await c.put(this.table, checkpointKey(job, partition), [{ family: 'c', qualifier: 's', value }]);
  }

  async putPartials(rows: readonly PartialRow[]): Promise<void> {
    if (rows.length === 0) return;
    const c = await this.hbase();
    await c.putMany(this.table, rows.map((r) => ({ row: partialKey(r), cells: [{ family: 'w', qualifier: 's', value: r.value }] })));
  }

  async partials(job: string, windowMs: number, windowStart: number): Promise<{ partition: number; value: string }[]> {
    const c = await this.hbase();
    const prefix = partialPrefix(job, windowMs, windowStart);
    const rows = await c.scan(this.table, { startRow: prefix, stopRow: prefixEnd(prefix), columns: ['w:s'] });
    return rows.flatMap((r) => {
      const v = cellValue(r, 'w', 's');
      return v ? [{ partition: partitionOfKey(r.row.toString('utf8')), value: v.toString('utf8') }] : [];
    });
  }

  async putSeen(rows: readonly SeenRow[]): Promise<void> {
    if (rows.length === 0) return;
    const c = await this.hbase();
    await c.putMany(
      this.table,
      rows.map((r) => {
        const cells = [{ family: 'w', qualifier: 's', value: r.ids.join(SEEN_SEPARATOR) }];
        if (r.changes) cells.push({ family: 'w', qualifier: 'c', value: r.changes });
        return { row: seenKey(r), cells };
      }),
    );
  }

  async seen(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]> {
    return seenIds(await this.seenColumn(job, partition, windowStart, 's'), upTo);
  }

  async changes(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]> {
    return seenChanges(await this.seenColumn(job, partition, windowStart, 'c'), upTo);
  }

  /** One column of a window's seen rows (`s` ids, `c` changes), by row key; '' where a row has none. */
  private async seenColumn(job: string, partition: number, windowStart: number, qualifier: 's' | 'c'): Promise<[string, string][]> {
    const c = await this.hbase();
    const prefix = seenPrefix(job, partition, windowStart);
    const rows = await c.scan(this.table, { startRow: prefix, stopRow: prefixEnd(prefix), columns: [`w:${qualifier}`] });
    return rows.map((r) => [r.row.toString('utf8'), cellValue(r, 'w', qualifier)?.toString('utf8') ?? '']);
  }

  async dropSeen(job: string, partition: number, windowStart: number): Promise<void> {
    await this.deletePrefix(seenPrefix(job, partition, windowStart));
  }

  async dropJob(job: string): Promise<void> {
    for (const prefix of [checkpointPrefix(job), partialJobPrefix(job)]) await this.deletePrefix(prefix);
  }

  private async deletePrefix(prefix: string): Promise<void> {
    const c = await this.hbase();
    for (;;) {
      const rows = await c.scan(this.table, { startRow: prefix, stopRow: prefixEnd(prefix), limit: 1000 });
      if (rows.length === 0) break;
      for (const r of rows) await c.deleteRow(this.table, r.row);
    }
  }

  async ping(): Promise<boolean> {
    try {
      const c = await this.hbase();
      await c.get(this.table, '\u0000ping', ['c']);
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const pending = this.client;
    this.client = undefined;
    (await pending?.catch(() => undefined))?.close();
  }
}
