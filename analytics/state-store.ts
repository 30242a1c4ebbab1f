// StateStore port: where the analytics jobs keep what must survive a crash, beside the Archive's metric
// rows (which hold only numbers). Two kinds of rows:
//   checkpoint  one per (job, partition): the open windows' state, the watermark and the next offset, as
//               of the last batch handled; overwritten whole (one row, so one atomic write) before the
//               batch's offsets are committed.
//   partial     one per (job, window, partition): that partition's mergeable share of a window, versioned
//               by the partition's offset; the metric rows of a window are merged from all its partials.
//               Partials expire PARTIAL_TTL_SECONDS after their last write (a window's partitions have
//               long finished with it by then).
//   seen        the message ids one batch took into a partition's open 1-minute window, keyed by the
//               offset the batch ended at, so the window's duplicate filter is written once per id rather
//               than whole in every checkpoint; a checkpoint at offset o owns the rows with offsets ≤ o.
//               A seen row also carries, for jobs whose minute-window state grows with its events (a set of
//               ids), what the batch changed in that state (Job.takeChanges), so that the checkpoint need
//               not hold that part: it is rebuilt from the rows up to the checkpoint's offset, in order.
//               Dropped when the window closes; they expire like partials if a crash leaves some behind.
// HBase table `{namespace}:analytics_state` in production, LevelDB under {dataDir}/analytics embedded.

export const PARTIAL_TTL_SECONDS = 7 * 86400;

export interface PartialRow {
  job: string;
  windowMs: number;
  windowStart: number;
  partition: number;
  /** JSON. */
  value: string;
}

export interface SeenRow {
  job: string;
  partition: number;
  windowStart: number;
  /** The partition's next offset after the batch that took these ids. */
  offset: number;
  ids: readonly string[];
  /** What the batch changed in the job's own state of the window (Job.takeChanges), as JSON; absent when nothing. */
  changes?: string;
}

export interface StateStore {
  readonly adapter: 'hbase' | 'embedded';
  ensureSchema(): Promise<void>;
  checkpoint(job: string, partition: number): Promise<string | undefined>;
  putCheckpoint(job: string, partition: number, value: string): Promise<void>;
  putPartials(rows: readonly PartialRow[]): Promise<void>;
  /** Every partition's partial of one window. */
  partials(job: string, windowMs: number, windowStart: number): Promise<{ partition: number; value: string }[]>;
  /** Stores the ids each batch took into a window (one row per window and batch end offset). */
  putSeen(rows: readonly SeenRow[]): Promise<void>;
  /** The ids of one partition's window, from rows whose offset is at most `upTo`. */
  seen(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]>;
  /** The changes of one partition's window from rows whose offset is at most `upTo`, oldest first. */
  changes(job: string, partition: number, windowStart: number, upTo: number): Promise<string[]>;
  /** Deletes one partition's rows of a window (it closed). */
  dropSeen(job: string, partition: number, windowStart: number): Promise<void>;
  /** Deletes a job's checkpoints, partials and seen rows (a finished replay). */
  dropJob(job: string): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

const JOB = /^[A-Za-z0-9._-]{1,100}$/;
const pad = (n: number, width: number) => String(n).padStart(width, '0');

export function checkJob(job: string): string {
  if (!JOB.test(job)) throw new RangeError(`invalid analytics job name ${JSON.stringify(job)}`);
  return job;
}

// Row keys, shared by both adapters so that they sort the same: fixed-width numbers, 0x00 separators.
export const checkpointPrefix = (job: string) => `c\u0000${checkJob(job)}\u0000`;
export const checkpointKey = (job: string, partition: number) => `${checkpointPrefix(job)}${pad(partition, 5)}`;
export const partialJobPrefix = (job: string) => `w\u0000${checkJob(job)}\u0000`;
export const partialPrefix = (job: string, windowMs: number, windowStart: number) => `${partialJobPrefix(job)}${pad(windowMs, 10)}\u0000${pad(windowStart, 13)}\u0000`;
export const partialKey = (r: Pick<PartialRow, 'job' | 'windowMs' | 'windowStart' | 'partition'>) => `${partialPrefix(r.job, r.windowMs, r.windowStart)}${pad(r.partition, 5)}`;
export const partitionOfKey = (key: string) => Number(key.slice(-5));
// Seen rows sort under the job's partial prefix (so dropJob and the partial TTL cover them) but after every
// partial window: `s` sorts after the digits of a window length.
export const seenPrefix = (job: string, partition: number, windowStart: number) => `${partialJobPrefix(job)}s\u0000${pad(partition, 5)}\u0000${pad(windowStart, 13)}\u0000`;
export const seenKey = (r: Pick<SeenRow, 'job' | 'partition' | 'windowStart' | 'offset'>) => `${seenPrefix(r.job, r.partition, r.windowStart)}${pad(r.offset, 20)}`;
export const offsetOfSeenKey = (key: string) => Number(key.slice(-20));
/** Ids never hold a comma (message ids are Snowflake digits; the engine checks). */
export const SEEN_SEPARATOR = ',';

/** The ids of seen rows (key, joined ids) whose offset is at most `upTo`: what both adapters' seen() answer. */
export function seenIds(rows: Iterable<readonly [key: string, ids: string]>, upTo: number): string[] {
  const out: string[] = [];
  for (const [key, ids] of rows) {
    if (offsetOfSeenKey(key) > upTo || ids.length === 0) continue;
    for (const id of ids.split(SEEN_SEPARATOR)) out.push(id);
  }
  return out;
}
/** The changes of seen rows (key, changes or '') whose offset is at most `upTo`, in offset order: what both adapters' changes() answer. */
export function seenChanges(rows: Iterable<readonly [key: string, changes: string]>, upTo: number): string[] {
  const out: { offset: number; changes: string }[] = [];
  for (const [key, changes] of rows) {
    const offset = offsetOfSeenKey(key);
    if (offset <= upTo && changes.length > 0) out.push({ offset, changes });
  }
  // Keys sort by offset already (fixed width); sorted again so that neither adapter's scan order matters.
  return out.sort((a, b) => a.offset - b.offset).map((r) => r.changes);
}
/** The first key after every key starting with `prefix` (which ends in 0x00). */
export const prefixEnd = (prefix: string) => `${prefix.slice(0, -1)}\u0001`;
