// Runs one job on the event log, in the style of Spark Structured Streaming: as a consumer group of its own
// (StreamJob.start: replays, tests) or with the other jobs on a shared one (StreamJobSet: `parley start`).
//
// State is per partition: each partition has its own watermark (its max event time − allowed lateness)
// and its own open windows. Kafka gives a partition to one member of the group at a time, so one writer
// owns each partition's state, and the results do not depend on which instance ran which partition or
// where a batch was cut: the same records in the same order give the same state.
//
// One batch, in this order:
//   1. every record: late (its 1-minute window is closed: end ≤ watermark) → counted in `late_events` of the
//      partition's newest windows; a message id already seen in its 1-minute window → dropped (the log is
//      at least once); otherwise added to its 1-minute and 1-hour windows. Windows whose end the watermark
//      passes close (their state goes; their partial stays).
//   2. the partials of every window touched are written (partial rows, versioned by offset);
//   3. each touched window's metric rows are merged from all partitions' partials and upserted to the
//      archive, then the partials are read again and the merge redone if another instance wrote meanwhile;
//   4. the ids this batch took into each open 1-minute window are written as rows of their own, keyed by
//      the batch's end offset (the duplicate filter grows by the batch, it is not rewritten whole), with what
//      the batch changed in a job's own growing state of the window (Job.takeChanges: the backlog's pending
//      ids), then the checkpoint (open windows, watermark, next offset) in one row; it owns the id rows up
//      to its offset;
//   5. the handler resolves and the log commits the offsets.
// A crash anywhere before 4 replays the batch from the previous checkpoint and rewrites identical rows; a
// crash between 4 and 5 replays it too, and records below the checkpoint's offset are skipped. Nothing is
// counted twice, and a failed batch drops the partition's in-memory state so the retry starts from the
// checkpoint.
//
// Lateness is decided on the 1-minute window for both lengths, so a 1-hour window is always the sum of its
// minutes. (Spark would still take an event into an open hour whose minute has closed; here it is late.)
import type { Archive, MetricPoint } from '../consumers/archive.ts';
import { MESSAGES_TOPIC, type ConsumedRecord, type EventLog, type Subscription } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import { IdSet } from './id-set.ts';
import { LATE_EVENTS, type AnyJob } from './job.ts';
import type { SeenRow, StateStore } from './state-store.ts';
import { HOUR, MINUTE, WINDOWS, toEvent, windowLabel, windowStart, type AnalyticsEvent } from './windows.ts';

/** The consumer group of a job: `parley-analytics.{job}`, suffixed with the topic when it is not the default. */
export const groupOf = (job: string, topic: string = MESSAGES_TOPIC) => (topic === MESSAGES_TOPIC ? `parley-analytics.${job}` : `parley-analytics.${job}.${topic}`);
/**
 * The consumer group the jobs of a deployment share (StreamJobSet): `parley-analytics-jobs`, suffixed with
 * the topic when it is not the default.
 */
export const sharedGroupOf = (topic: string = MESSAGES_TOPIC) => (topic === MESSAGES_TOPIC ? 'parley-analytics-jobs' : `parley-analytics-jobs.${topic}`);
/** The name of a job's state rows (checkpoints, partials): the job, suffixed like its group. */
export const stateNameOf = (job: string, topic: string = MESSAGES_TOPIC) => (topic === MESSAGES_TOPIC ? job : `${job}.${topic}`);

/** Prometheus hooks (service.ts); all optional. */
export interface EngineCounters {
  /** `n` events of a batch had this outcome (counted once per batch, not per event). */
  event(job: string, outcome: Outcome, n: number): void;
  watermark(job: string, partition: number, ms: number): void;
  windowClosed(job: string): void;
}

export interface EngineOptions {
  log: EventLog;
  topic: string;
  store: StateStore;
  archive: Archive;
  logger: Logger;
  job: AnyJob;
  latenessMs: number;
  /** Lets records gather this long between a partition's batches (EventLog lingerMs); 0: batch at once. */
  lingerMs?: number;
  /** Name of the state rows; stateNameOf(job, topic) unless replaying into fresh state. */
  stateName?: string;
  /** Consumer group; groupOf(job, topic) unless replaying. */
  group?: string;
  /** Events stamped before this time are ignored entirely (replays). */
  skipBefore?: number;
  counters?: EngineCounters;
  /** Called after each batch's checkpoint (replays follow progress with it). */
  onBatch?(partition: number, records: readonly ConsumedRecord[]): void;
}

type Outcome = 'accepted' | 'duplicate' | 'late' | 'skipped';
/** A batch's events by outcome, handed to the counters once at its end. */
type Tally = Record<Outcome, number>;

interface WindowState {
  ms: number;
  start: number;
  /** Late events counted while this was the partition's newest window. */
  late: number;
  /** Minute windows: the message ids taken, to drop duplicates. */
  ids: IdSet | null;
  /** Minute windows: ids taken since the last checkpoint (written as a seen row with it). */
  fresh: string[] | null;
  agg: unknown;
}

interface PartitionState {
  /** The next offset to take; records below are in the state already. */
  offset: number;
  /** Max event time taken; the watermark is this minus the lateness. */
  maxTs: number | null;
  windows: Map<number, WindowState>;
}

interface SavedWindow {
  ms: number;
  start: number;
  late: number;
  /** Checkpoints of version 1 held a minute window's ids here; version 2 keeps them in seen rows. */
  ids?: string[];
  s: unknown;
}

interface Checkpoint {
  v: 1 | 2;
  offset: number;
  maxTs: number | null;
  windows: SavedWindow[];
}

interface Partial {
  /** The partition's next offset when written: the version compared when merging. */
  v: number;
  late: number;
  p: unknown;
}

/**
 * A window's key in a partition's maps: its start plus its length's slot in WINDOWS (starts are whole
 * minutes, so minute and hour windows starting together stay apart). A number, not a string: the engine
 * looks windows up several times per event and job.
 */
function keyOf(ms: number, start: number): number {
  const slot = WINDOWS.indexOf(ms as (typeof WINDOWS)[number]);
  if (slot < 0) throw new Error(`no window of ${ms} ms`);
  return start + slot;
}
/** Rounds of merge-and-check before a window's rows are left for the next batch to settle. */
const MERGE_ROUNDS = 5;

export class StreamJob {
  readonly job: AnyJob;
  readonly stateName: string;
  readonly group: string;
  private readonly parts = new Map<number, PartitionState>();
  private subscription: Subscription | null = null;
  private dead = false;

  constructor(private readonly o: EngineOptions) {
    this.job = o.job;
    this.stateName = o.stateName ?? stateNameOf(o.job.name, o.topic);
    this.group = o.group ?? groupOf(o.job.name, o.topic);
  }

  async start(): Promise<void> {
    this.dead = false;
    this.subscription = await this.o.log.consume({ topic: this.o.topic, group: this.group, fromBeginning: true, lingerMs: this.o.lingerMs, handle: (batch) => this.handle(batch) });
  }

  /** Stops after the batch in hand (its checkpoint and commit). */
  async stop(): Promise<void> {
    const s = this.subscription;
    this.subscription = null;
    await s?.stop();
  }

  /**
   * Stops as a crash would (tests): every write from now on fails, so the batch in hand is neither
   * checkpointed nor committed, and what was in memory is forgotten.
   */
  async kill(): Promise<void> {
    this.dead = true;
    await this.stop();
    this.parts.clear();
  }

  /** `events`: the batch's records as toEvent gives them, when the caller has them already (StreamJobSet). */
  async handle(batch: ConsumedRecord[], events: readonly (Readonly<AnalyticsEvent> | null)[] = batch.map(toEvent)): Promise<void> {
    if (batch.length === 0) return;
    const partition = batch[0].partition;
    try {
      await this.process(partition, batch, events);
    } catch (err) {
      // The retry starts from the checkpoint, not from what this attempt half did.
      this.parts.delete(partition);
      throw err;
    }
    this.o.onBatch?.(partition, batch);
  }

  private io<T>(step: () => Promise<T>): Promise<T> {
    if (this.dead) return Promise.reject(new Error(`analytics job ${this.job.name} was killed`));
    return step();
  }

  private async process(partition: number, batch: ConsumedRecord[], events: readonly (Readonly<AnalyticsEvent> | null)[]): Promise<void> {
    const st = await this.partitionState(partition, Number(batch[0].offset));
    const before = st.offset;
    const touched = new Map<number, WindowState>();
    const tally: Tally = { accepted: 0, duplicate: 0, late: 0, skipped: 0 };
    for (let i = 0; i < batch.length; i++) {
      const offset = Number(batch[i].offset);
      if (offset < st.offset) continue; // in the checkpoint already
      st.offset = offset + 1;
      const event = events[i];
      if (!event || (this.o.skipBefore !== undefined && event.ts < this.o.skipBefore)) {
        tally.skipped++;
        continue;
      }
      tally[this.take(st, event, touched)]++;
    }
    const counters = this.o.counters;
    if (counters) for (const outcome of Object.keys(tally) as Outcome[]) if (tally[outcome] > 0) counters.event(this.job.name, outcome, tally[outcome]);
    if (st.offset === before) {
      this.parts.set(partition, st);
      return;
    }
    const closed = [...touched.values()].filter((w) => w.ms === MINUTE && !st.windows.has(keyOf(w.ms, w.start)));
    await this.io(() =>
      this.o.store.putPartials(
        [...touched.values()].map((w) => ({
          job: this.stateName,
          windowMs: w.ms,
          windowStart: w.start,
          partition,
          value: JSON.stringify({ v: st.offset, late: w.late, p: this.job.partial(w.agg, w.ms) } satisfies Partial),
        })),
      ),
    );
    await this.publish([...touched.values()]);
    const seen: SeenRow[] = [];
    for (const w of st.windows.values()) {
      if (w.ms !== MINUTE) continue;
      const changes = this.job.takeChanges?.(w.agg);
      if (w.fresh!.length === 0 && changes === undefined) continue;
      seen.push({ job: this.stateName, partition, windowStart: w.start, offset: st.offset, ids: w.fresh!, ...(changes === undefined ? {} : { changes: JSON.stringify(changes) }) });
    }
    await this.io(() => this.o.store.putSeen(seen));
    await this.io(() => this.o.store.putCheckpoint(this.stateName, partition, JSON.stringify(save(st, this.job))));
    for (const w of st.windows.values()) if (w.fresh) w.fresh = [];
    this.parts.set(partition, st);
    // Closed windows' ids are no longer needed. Not fatal: rows left behind (a failure here, a crash) are
    // never read again and expire with the partials.
    for (const w of closed) {
      await this.io(() => this.o.store.dropSeen(this.stateName, partition, w.start)).catch((err: Error) => {
        this.o.logger.warn({ job: this.job.name, partition, window: w.start, err: err.message }, 'could not drop a closed window\'s seen ids; they will expire');
      });
    }
    if (st.maxTs !== null) this.o.counters?.watermark(this.job.name, partition, st.maxTs - this.o.latenessMs);
  }

  /** The partition's state for a batch starting at `first`: the one in memory if it ends there, else the checkpoint. */
  private async partitionState(partition: number, first: number): Promise<PartitionState> {
    const mine = this.parts.get(partition);
    if (mine && mine.offset === first) return mine;
    this.parts.delete(partition);
    const saved = await this.io(() => this.o.store.checkpoint(this.stateName, partition));
    if (saved === undefined) return { offset: first, maxTs: null, windows: new Map() };
    const checkpoint = JSON.parse(saved) as Checkpoint;
    const st = load(checkpoint, this.job);
    if (checkpoint.v === 2) {
      for (const w of st.windows.values()) {
        if (w.ms !== MINUTE) continue;
        for (const id of await this.io(() => this.o.store.seen(this.stateName, partition, w.start, checkpoint.offset))) w.ids!.add(id);
        if (!this.job.replayChanges) continue;
        for (const changes of await this.io(() => this.o.store.changes(this.stateName, partition, w.start, checkpoint.offset))) this.job.replayChanges(w.agg, JSON.parse(changes));
      }
    }
    if (st.offset < first) {
      // Offsets were committed past the checkpoint: not by this code (it checkpoints first), so by an older
      // group or a reset. The records between are not in the state.
      this.o.logger.warn({ job: this.job.name, partition, checkpoint: st.offset, first }, 'analytics checkpoint is behind the committed offset; records in between are missing');
      st.offset = first;
    }
    return st;
  }

  private window(st: PartitionState, ms: number, start: number): WindowState {
    const key = keyOf(ms, start);
    let w = st.windows.get(key);
    if (!w) st.windows.set(key, (w = { ms, start, late: 0, ids: ms === MINUTE ? new IdSet() : null, fresh: ms === MINUTE ? [] : null, agg: this.job.empty(ms) }));
    return w;
  }

  private take(st: PartitionState, e: AnalyticsEvent, touched: Map<number, WindowState>): Exclude<Outcome, 'skipped'> {
    const minuteStart = windowStart(e.ts, MINUTE);
    if (st.maxTs !== null && minuteStart + MINUTE <= st.maxTs - this.o.latenessMs) {
      // Late: its minute is closed. Counted where the partition is now, in both lengths.
      for (const ms of WINDOWS) {
        const w = this.window(st, ms, windowStart(st.maxTs, ms));
        w.late++;
        touched.set(keyOf(ms, w.start), w);
      }
      return 'late';
    }
    const minute = this.window(st, MINUTE, minuteStart);
    if (!minute.ids!.add(e.id)) return 'duplicate';
    minute.fresh!.push(e.id);
    for (const ms of WINDOWS) {
      // Open: the minute is open, and an hour ends no earlier than its minutes.
      const w = ms === MINUTE ? minute : this.window(st, ms, windowStart(e.ts, ms));
      this.job.add(w.agg, e, ms);
      touched.set(keyOf(ms, w.start), w);
    }
    const related = this.job.relatedTime?.(e);
    if (related !== undefined) {
      const w = st.windows.get(keyOf(MINUTE, windowStart(related, MINUTE)));
      if (w && this.job.applyRelated!(w.agg, e)) touched.set(keyOf(MINUTE, w.start), w);
    }
    if (st.maxTs === null || e.ts > st.maxTs) {
      st.maxTs = e.ts;
      this.closeWindows(st, touched);
    }
    return 'accepted';
  }

  /** Closes every window the watermark has passed, minutes first (a closing minute reports to its hour). */
  private closeWindows(st: PartitionState, touched: Map<number, WindowState>): void {
    const watermark = st.maxTs! - this.o.latenessMs;
    const closing = [...st.windows.values()].filter((w) => w.start + w.ms <= watermark).sort((a, b) => a.ms - b.ms || a.start - b.start);
    for (const w of closing) {
      if (w.ms === MINUTE && this.job.closeMinute) {
        const hour = this.window(st, HOUR, windowStart(w.start, HOUR));
        this.job.closeMinute(w.agg, hour.agg);
        touched.set(keyOf(HOUR, hour.start), hour);
      }
      st.windows.delete(keyOf(w.ms, w.start));
      touched.set(keyOf(w.ms, w.start), w);
      this.o.counters?.windowClosed(this.job.name);
    }
  }

  /**
   * Upserts the merged rows of each window. Another instance may write a partial of the same window
   * between our read and our write, and our older merge could land last: so the partials are read again
   * after the write, and the merge is redone until what was merged is still what is stored.
   */
  private async publish(windows: WindowState[]): Promise<void> {
    let pending = windows.map((w) => ({ ms: w.ms, start: w.start }));
    let seen = await this.io(() => Promise.all(pending.map((w) => this.o.store.partials(this.stateName, w.ms, w.start))));
    for (let round = 1; pending.length > 0; round++) {
      const points = pending.flatMap((w, i) => this.merged(w.ms, w.start, seen[i]));
      await this.io(() => this.o.archive.putMetrics(points));
      if (round === MERGE_ROUNDS) break;
      const again = await this.io(() => Promise.all(pending.map((w) => this.o.store.partials(this.stateName, w.ms, w.start))));
      const changed = pending.map((_, i) => i).filter((i) => versions(again[i]) !== versions(seen[i]));
      pending = changed.map((i) => pending[i]);
      seen = changed.map((i) => again[i]);
    }
  }

  private merged(ms: number, start: number, rows: { partition: number; value: string }[]): MetricPoint[] {
    if (rows.length === 0) return [];
    const partials = rows.map((r) => JSON.parse(r.value) as Partial);
    const values = this.job.results(this.job.merge(partials.map((p) => p.p), ms), ms);
    values.push({ metric: LATE_EVENTS, labels: { job: this.job.name }, value: partials.reduce((n, p) => n + p.late, 0) });
    return values.map((v) => ({ metric: v.metric, windowStart: start, windowMs: ms, value: v.value, labels: { ...v.labels, window: windowLabel(ms) } }));
  }
}

/**
 * Several jobs on one subscription: the log is read (on Kafka: fetched and decoded) once for all of them
 * instead of once per job. Every batch goes to every job; its offsets are committed once all of them have
 * checkpointed it. When one fails, the batch is delivered again to all: the others skip it, since their
 * checkpoints are past it, so nothing is counted twice. A job that keeps failing holds the others back,
 * which separate groups would not; in exchange a deployment runs one consumer for its analytics, not five.
 */
export class StreamJobSet {
  private subscription: Subscription | null = null;

  constructor(
    private readonly jobs: readonly StreamJob[],
    private readonly o: { log: EventLog; topic: string; lingerMs?: number; group?: string },
  ) {}

  async start(): Promise<void> {
    const { log, topic, lingerMs } = this.o;
    this.subscription = await log.consume({ topic, group: this.o.group ?? sharedGroupOf(topic), fromBeginning: true, lingerMs, handle: (batch) => this.handle(batch) });
  }

  /** Stops after the batch in hand (every job's checkpoint, then the commit). */
  async stop(): Promise<void> {
    const s = this.subscription;
    this.subscription = null;
    await s?.stop();
  }

  private async handle(batch: ConsumedRecord[]): Promise<void> {
    // Each record's event is made once for all the jobs.
    const events = batch.map(toEvent);
    // Every job finishes (or fails) its part before the batch is retried, so no job runs a partition twice at once.
    const outcomes = await Promise.allSettled(this.jobs.map((job) => job.handle(batch, events)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

function versions(rows: { partition: number; value: string }[]): string {
  return rows
    .map((r) => `${r.partition}:${(JSON.parse(r.value) as Partial).v}`)
    .sort()
    .join(',');
}

function save(st: PartitionState, job: AnyJob): Checkpoint {
  return {
    v: 2,
    offset: st.offset,
    maxTs: st.maxTs,
    windows: [...st.windows.values()].map((w) => ({ ms: w.ms, start: w.start, late: w.late, s: job.save(w.agg) })),
  };
}

/** A checkpoint's state; a version-1 checkpoint's ids become fresh, so the next checkpoint writes them as seen rows. */
function load(c: Checkpoint, job: AnyJob): PartitionState {
  const windows = new Map<number, WindowState>();
  for (const w of c.windows) {
    const minute = w.ms === MINUTE;
    windows.set(keyOf(w.ms, w.start), { ms: w.ms, start: w.start, late: w.late, ids: minute ? new IdSet(w.ids) : null, fresh: minute ? [...(w.ids ?? [])] : null, agg: job.load(w.s, w.ms) });
  }
  return { offset: c.offset, maxTs: c.maxTs, windows };
}
