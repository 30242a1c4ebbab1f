// StateStore in the process: LevelDB (classic-level) under {dataDir}/analytics, keys of state-store.ts.
// Partials and seen rows carry their write time and are swept once they are PARTIAL_TTL_SECONDS old (at open,
// then hourly).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
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

const SWEEP_EVERY_MS = 3600_000;
/**
 * A seen row's value: `{written at} {ids}`, then NUL and the batch's changes when it has some. NUL is in
 * neither part: ids are digits, and the changes are JSON, which writes control characters escaped.
 */
const CHANGES_MARK = '\u0000';
function seenPart(value: string): { ids: string; changes: string } {
  const mark = value.indexOf(CHANGES_MARK);
  const body = value.slice(value.indexOf(' ') + 1, mark < 0 ? undefined : mark);
  return { ids: body, changes: mark < 0 ? '' : value.slice(mark + 1) };
}

export class EmbeddedStateStore implements StateStore {
  readonly adapter = 'embedded';
  readonly location: string;
  private readonly db: ClassicLevel<string, string>;
  private opening?: Promise<void>;
  private sweeper?: NodeJS.Timeout;

  constructor(
    dataDir: string,
    private readonly options: { fsync?: boolean; ttlSeconds?: number } = {},
  ) {
    this.location = path.join(dataDir, 'analytics');
    mkdirSync(dataDir, { recursive: true });
    this.db = new ClassicLevel<string, string>(this.location, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  }

  private ready(): Promise<void> {
    this.opening ??= this.db.open().then(
      () => {
        void this.sweep().catch(() => {});
        this.sweeper = setInterval(() => void this.sweep().catch(() => {}), SWEEP_EVERY_MS).unref();
      },
      (err: Error) => {
        this.opening = undefined;
        throw new Error(`cannot open the analytics state at ${this.location}: ${err.message}`);
      },
    );
    return this.opening;
  }

  private get sync() {
    return { sync: this.options.fsync ?? true };
  }

  async ensureSchema(): Promise<void> {
    await this.ready();
  }

  async checkpoint(job: string, partition: number): Promise<string | undefined> {
    await this.ready();
    return this.db.get(checkpointKey(job, partition));
  }

  async putCheckpoint(job: string, partition: number, value: string): Promise<void> {
    await this.ready();
    await this.db.put(checkpointKey(job, partition), value, this.sync);
  }

  async putPartials(rows: readonly PartialRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.ready();
    const at = Date.now();
    await this.db.batch(
      rows.map((r) => ({ type: 'put' as const, key: partialKey(r), value: `${at} ${r.value}` })),
      this.sync,
    );
  }

  async partials(job: string, windowMs: number, windowStart: number): Promise<{ partition: number; value: string }[]> {
    await this.ready();
    const prefix = partialPrefix(job, windowMs, windowStart);
    const rows = await this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) }).all();
    return rows.map(([key, value]) => ({ partition: partitionOfKey(key), value: value.slice(value.indexOf(' ') + 1) }));
  }

  async putSeen(rows: readonly SeenRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.ready();
    const at = Date.now();
    await this.db.batch(
      rows.map((r) => ({ type: 'put' as const, key: seenKey(r), value: `${at} ${r.ids.join(SEEN_SEPARATOR)}${r.changes ? `${CHANGES_MARK}${r.changes}` : ''}` })),
      this.sync,
    );
  }

  async seen(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]> {
    return seenIds((await this.seenRows(job, partition, windowStart)).map(([key, part]) => [key, part.ids] as const), upTo);
  }

  async changes(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]> {
    return seenChanges((await this.seenRows(job, partition, windowStart)).map(([key, part]) => [key, part.changes] as const), upTo);
  }

  /** One partition's seen rows of a window: key, ids and changes. */
  private async seenRows(job: string, partition: number, windowStart: number): Promise<[string, { ids: string; changes: string }][]> {
    await this.ready();
    const prefix = seenPrefix(job, partition, windowStart);
    return (await this.db.iterator({ gte: prefix, lt: prefixEnd(prefix) }).all()).map(([key, value]) => [key, seenPart(value)]);
  }

  async dropSeen(job: string, partition: number, windowStart: number): Promise<void> {
    await this.ready();
    const prefix = seenPrefix(job, partition, windowStart);
    await this.db.clear({ gte: prefix, lt: prefixEnd(prefix) });
  }

  async dropJob(job: string): Promise<void> {
    await this.ready();
    for (const prefix of [checkpointPrefix(job), partialJobPrefix(job)]) await this.db.clear({ gte: prefix, lt: prefixEnd(prefix) });
  }

  /** Deletes partials written more than the TTL ago. */
  async sweep(now = Date.now()): Promise<number> {
    await this.ready();
    const cutoff = now - (this.options.ttlSeconds ?? PARTIAL_TTL_SECONDS) * 1000;
    const old: string[] = [];
    for await (const [key, value] of this.db.iterator({ gte: 'w\u0000', lt: 'w\u0001' })) if (Number(value.slice(0, value.indexOf(' '))) < cutoff) old.push(key);
    if (old.length) await this.db.batch(old.map((key) => ({ type: 'del' as const, key })));
    return old.length;
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
    clearInterval(this.sweeper);
    await this.opening?.catch(() => undefined);
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close();
  }
}
