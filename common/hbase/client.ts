// A narrow, typed HBase client over the Thrift2 gateway (binary protocol), built on the generated
// code in gen/ (see README.md). Only what Parley needs: put, get, scan, check-and-put, deleteRow,
// create and drop a table.
// One TCP connection per client; it reconnects on the next call after the gateway dropped it
// (the gateway closes idle sockets after hbase.thrift.server.socket.read.timeout).
import thrift from 'thrift';
import THBaseService from './gen/THBaseService.js';
import ttypes from './gen/hbase_types.js';

export type Bytes = Buffer | string;
export type HBaseTransport = 'framed' | 'buffered';

export interface CellInput {
  family: string;
  qualifier: Bytes;
  value: Bytes;
  /** Milliseconds since the epoch; the server's clock when absent. */
  timestamp?: number;
}

export interface HBaseCell {
  family: string;
  qualifier: Buffer;
  value: Buffer;
  timestamp: number;
}

export interface HBaseRow {
  row: Buffer;
  cells: HBaseCell[];
}

/** A whole family ('m') or one column ('m:body'). */
export type ColumnSpec = string;

export interface ScanOptions {
  /** Inclusive. With `reversed`, the highest row to return (HBase's reversed-scan convention). */
  startRow?: Bytes;
  /** Exclusive. With `reversed`, the lower bound. */
  stopRow?: Bytes;
  /** At most this many rows; all matching rows when absent. */
  limit?: number;
  reversed?: boolean;
  columns?: ColumnSpec[];
}

export interface FamilySpec {
  name: string;
  maxVersions?: number;
  timeToLiveSeconds?: number;
}

export interface TableSpec {
  /** 'default' when absent. */
  namespace?: string;
  table: string;
  families: Array<string | FamilySpec>;
  /** Pre-split the table at these row keys (e.g. one region per salt bucket). */
  splitKeys?: Bytes[];
}

export interface ConnectOptions {
  connectTimeoutMs?: number;
  /** A call that takes longer fails, and the connection is dropped (its replies could arrive late). */
  callTimeoutMs?: number;
}

export interface HBaseClient {
  put(table: string, row: Bytes, cells: CellInput[]): Promise<void>;
  /** One round trip for many rows (Thrift2 putMultiple). */
  putMany(table: string, rows: Array<{ row: Bytes; cells: CellInput[] }>): Promise<void>;
  /** The row's newest cells, or undefined if the row does not exist. */
  get(table: string, row: Bytes, columns?: ColumnSpec[]): Promise<HBaseRow | undefined>;
  /** One round trip for many gets (Thrift2 getMultiple); answers in the order asked, undefined for a missing row. */
  getMany(table: string, gets: Array<{ row: Bytes; columns?: ColumnSpec[] }>): Promise<Array<HBaseRow | undefined>>;
  scan(table: string, options?: ScanOptions): Promise<HBaseRow[]>;
  /**
   * Puts `cells` on `row` only if the cell family:qualifier holds exactly `expected` (or, with `expected`
   * undefined, does not exist); true if it did and the put was applied (Thrift2 checkAndPut).
   */
  checkAndPut(table: string, row: Bytes, family: string, qualifier: Bytes, expected: Bytes | undefined, cells: CellInput[]): Promise<boolean>;
  deleteRow(table: string, row: Bytes): Promise<void>;
  /** Creates the namespace and the table if they are missing; true if this call created the table. */
  createTableIfMissing(spec: TableSpec): Promise<boolean>;
  /** Disables and deletes a table (tests, tear-down); false if it did not exist. */
  dropTable(namespace: string | undefined, table: string): Promise<boolean>;
  /** Deletes a namespace, which must hold no tables; false if it did not exist. */
  dropNamespace(namespace: string): Promise<boolean>;
  close(): void;
}

/** 'ns:table' as HBase spells a qualified table name. */
export function tableName(namespace: string | undefined, table: string): string {
  return !namespace || namespace === 'default' ? table : `${namespace}:${table}`;
}

/** The value of one cell of a row, if present. */
export function cellValue(row: HBaseRow | undefined, family: string, qualifier: Bytes): Buffer | undefined {
  const q = toBuffer(qualifier);
  return row?.cells.find((c) => c.family === family && c.qualifier.equals(q))?.value;
}

export async function connect(
  host: string,
  port: number,
  transport: HBaseTransport,
  options: ConnectOptions = {},
): Promise<HBaseClient> {
  const client = new ThriftHBaseClient(host, port, transport, options);
  await client.open();
  return client;
}

type Client = THBaseService.Client;

const SCAN_BATCH = 500;

function toBuffer(value: Bytes): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
}

function toColumns(columns: ColumnSpec[] | undefined): InstanceType<typeof ttypes.TColumn>[] | undefined {
  return columns?.map((spec) => {
    const colon = spec.indexOf(':');
    return colon < 0
      ? new ttypes.TColumn({ family: toBuffer(spec) })
      : new ttypes.TColumn({ family: toBuffer(spec.slice(0, colon)), qualifier: toBuffer(spec.slice(colon + 1)) });
  });
}

function toPut(row: Bytes, cells: CellInput[]) {
  return new ttypes.TPut({
    row: toBuffer(row),
    columnValues: cells.map(
      (c) =>
        new ttypes.TColumnValue({
          family: toBuffer(c.family),
          qualifier: toBuffer(c.qualifier),
          value: toBuffer(c.value),
          // node-int64 accepts a number; the generated writer calls writeI64 on it.
          timestamp: c.timestamp === undefined ? undefined : (c.timestamp as never),
        }),
    ),
  });
}

function toNumber(i64: unknown): number {
  if (typeof i64 === 'number') return i64;
  if (i64 && typeof (i64 as { toNumber?: unknown }).toNumber === 'function') {
    return (i64 as { toNumber(allowImprecise: boolean): number }).toNumber(true);
  }
  return Number(i64);
}

function fromResult(result: InstanceType<typeof ttypes.TResult>): HBaseRow | undefined {
  // [thrift2 IDL] "if no Result is found, row and columnValues will not be set".
  if (!result.row || !result.columnValues?.length) return undefined;
  return {
    row: result.row,
    cells: result.columnValues.map((cv) => ({
      family: cv.family.toString('utf8'),
      qualifier: cv.qualifier,
      value: cv.value,
      timestamp: toNumber(cv.timestamp),
    })),
  };
}

function asError(err: unknown): Error {
  if (err instanceof Error) return err;
  const message = (err as { message?: unknown })?.message;
  return new Error(`HBase Thrift2: ${typeof message === 'string' ? message : String(err)}`);
}

/** Long-lived connection state, so a class (STYLE.md 7). */
class ThriftHBaseClient implements HBaseClient {
  private connection?: thrift.Connection;
  private client?: Client;
  private opening?: Promise<Client>;
  private readonly pending = new Set<(err: Error) => void>();
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly transport: HBaseTransport,
    private readonly options: ConnectOptions,
  ) {}

  async open(): Promise<void> {
    await this.ensure();
  }

  private ensure(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error('HBase client is closed'));
    if (this.client) return Promise.resolve(this.client);
    this.opening ??= this.dial().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private dial(): Promise<Client> {
    return new Promise<Client>((resolve, reject) => {
      const connection = thrift.createConnection(this.host, this.port, {
        transport: this.transport === 'framed' ? thrift.TFramedTransport : thrift.TBufferedTransport,
        protocol: thrift.TBinaryProtocol,
      });
      const timer = setTimeout(() => {
        connection.destroy();
        reject(new Error(`HBase Thrift2 ${this.host}:${this.port}: no connection after ${this.options.connectTimeoutMs ?? 5000} ms`));
      }, this.options.connectTimeoutMs ?? 5000);
      let connected = false;
      connection.on('connect', () => {
        connected = true;
        clearTimeout(timer);
        this.connection = connection;
        this.client = thrift.createClient(THBaseService.Client, connection);
        resolve(this.client);
      });
      const gone = (err?: Error) => {
        clearTimeout(timer);
        if (!connected) {
          reject(err ?? new Error(`HBase Thrift2 ${this.host}:${this.port}: connection closed`));
          return;
        }
        if (this.connection === connection) this.drop(err ?? new Error('HBase Thrift2 connection closed'));
      };
      connection.on('error', (err: Error) => gone(err));
      connection.on('close', () => gone());
    });
  }

  /** Forgets the connection and fails every call still waiting on it: its replies will never come. */
  private drop(err: Error): void {
    const connection = this.connection;
    this.connection = undefined;
    this.client = undefined;
    connection?.destroy();
    for (const fail of [...this.pending]) fail(err);
  }

  private async call<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.ensure();
    return new Promise<T>((resolve, reject) => {
      const timeoutMs = this.options.callTimeoutMs ?? 30_000;
      const settle = () => {
        clearTimeout(timer);
        this.pending.delete(fail);
      };
      const fail = (err: Error) => {
        settle();
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new Error(`HBase Thrift2 call timed out after ${timeoutMs} ms`));
        this.drop(new Error('HBase Thrift2 connection dropped after a timeout'));
      }, timeoutMs);
      this.pending.add(fail);
      fn(client).then(
        (value) => {
          settle();
          resolve(value);
        },
        (err: unknown) => fail(asError(err)),
      );
    });
  }

  async put(table: string, row: Bytes, cells: CellInput[]): Promise<void> {
    await this.call((c) => c.put(toBuffer(table), toPut(row, cells)));
  }

  async putMany(table: string, rows: Array<{ row: Bytes; cells: CellInput[] }>): Promise<void> {
    if (rows.length === 0) return;
    await this.call((c) => c.putMultiple(toBuffer(table), rows.map((r) => toPut(r.row, r.cells))));
  }

  async get(table: string, row: Bytes, columns?: ColumnSpec[]): Promise<HBaseRow | undefined> {
    const tget = new ttypes.TGet({ row: toBuffer(row), columns: toColumns(columns) });
    return fromResult(await this.call((c) => c.get(toBuffer(table), tget)));
  }

  async getMany(table: string, gets: Array<{ row: Bytes; columns?: ColumnSpec[] }>): Promise<Array<HBaseRow | undefined>> {
    if (gets.length === 0) return [];
    const tgets = gets.map((g) => new ttypes.TGet({ row: toBuffer(g.row), columns: toColumns(g.columns) }));
    const results = await this.call((c) => c.getMultiple(toBuffer(table), tgets));
    return results.map(fromResult);
  }

  async checkAndPut(table: string, row: Bytes, family: string, qualifier: Bytes, expected: Bytes | undefined, cells: CellInput[]): Promise<boolean> {
    // [thrift2 IDL] checkAndPut: "if not provided the check is for the non-existence of the column".
    const value = expected === undefined ? (null as unknown as Buffer) : toBuffer(expected);
    return this.call((c) => c.checkAndPut(toBuffer(table), toBuffer(row), toBuffer(family), toBuffer(qualifier), value, toPut(row, cells)));
  }

  async scan(table: string, options: ScanOptions = {}): Promise<HBaseRow[]> {
    const { limit } = options;
    const tscan = new ttypes.TScan({
      startRow: options.startRow === undefined ? undefined : toBuffer(options.startRow),
      stopRow: options.stopRow === undefined ? undefined : toBuffer(options.stopRow),
      columns: toColumns(options.columns),
      reversed: options.reversed ?? false,
      caching: limit === undefined ? SCAN_BATCH : Math.min(limit, SCAN_BATCH),
      limit,
    });
    const tableBuf = toBuffer(table);
    const rows: HBaseRow[] = [];
    const keep = (results: InstanceType<typeof ttypes.TResult>[]) => {
      for (const r of results) {
        const row = fromResult(r);
        if (row) rows.push(row);
      }
    };
    if (limit !== undefined && limit <= SCAN_BATCH) {
      // One round trip: the gateway opens, reads and closes the scanner itself.
      if (limit > 0) keep(await this.call((c) => c.getScannerResults(tableBuf, tscan, limit)));
      return rows;
    }
    const id = await this.call((c) => c.openScanner(tableBuf, tscan));
    try {
      for (;;) {
        const want = limit === undefined ? SCAN_BATCH : Math.min(SCAN_BATCH, limit - rows.length);
        if (want <= 0) break;
        const batch = await this.call((c) => c.getScannerRows(id, want));
        keep(batch);
        if (batch.length < want) break;
      }
    } finally {
      await this.call((c) => c.closeScanner(id)).catch(() => {});
    }
    return rows;
  }

  async deleteRow(table: string, row: Bytes): Promise<void> {
    // No columns: the whole row goes (every family, every version).
    await this.call((c) => c.deleteSingle(toBuffer(table), new ttypes.TDelete({ row: toBuffer(row) })));
  }

  async createTableIfMissing(spec: TableSpec): Promise<boolean> {
    const namespace = spec.namespace ?? 'default';
    if (namespace !== 'default') {
      const existing = await this.call((c) => c.listNamespaces());
      if (!existing.includes(namespace)) {
        await this.call((c) => c.createNamespace(new ttypes.TNamespaceDescriptor({ name: namespace }))).catch(
          (err: Error) => {
            // Another process created it between our two calls.
            if (!/NamespaceExistException/.test(err.message)) throw err;
          },
        );
      }
    }
    const name = new ttypes.TTableName({ ns: toBuffer(namespace), qualifier: toBuffer(spec.table) });
    if (await this.call((c) => c.tableExists(name))) return false;
    const columns = spec.families.map((f) => {
      const family = typeof f === 'string' ? { name: f } : f;
      return new ttypes.TColumnFamilyDescriptor({
        name: toBuffer(family.name),
        maxVersions: family.maxVersions,
        timeToLive: family.timeToLiveSeconds,
      });
    });
    const desc = new ttypes.TTableDescriptor({ tableName: name, columns });
    const splitKeys = spec.splitKeys?.map(toBuffer) ?? [];
    try {
      await this.call((c) => c.createTable(desc, splitKeys));
      return true;
    } catch (err) {
      if (/TableExistsException/.test((err as Error).message)) return false;
      throw err;
    }
  }

  async dropTable(namespace: string | undefined, table: string): Promise<boolean> {
    const name = new ttypes.TTableName({ ns: toBuffer(namespace ?? 'default'), qualifier: toBuffer(table) });
    if (!(await this.call((c) => c.tableExists(name)))) return false;
    if (!(await this.call((c) => c.isTableDisabled(name)))) await this.call((c) => c.disableTable(name));
    await this.call((c) => c.deleteTable(name));
    return true;
  }

  async dropNamespace(namespace: string): Promise<boolean> {
    if (!(await this.call((c) => c.listNamespaces())).includes(namespace)) return false;
    await this.call((c) => c.deleteNamespace(namespace));
    return true;
  }

  close(): void {
    this.closed = true;
    this.drop(new Error('HBase client is closed'));
  }
}
