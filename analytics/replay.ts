// `parley analytics replay --from T`: recomputes the windows from T on, after a job changed. The jobs run
// again on a fresh consumer group reading the log from the beginning (one group for all of them, as
// `parley start` runs them: each record is read and parsed once), each with state of its own, skipping
// events before the start of T's hour (so every window it writes is whole), and upserts the same metric
// rows the live job writes. Rows of closed windows from T on that the replay did not write (a conversation
// no longer in a top 10, a window with no events any more) are set to 0. It stops once it has read what
// the log held when it started; its state is deleted at the end.
import type { Archive, MetricPoint } from '../consumers/archive.ts';
import { canonicalLabels } from '../consumers/archive-keys.ts';
import type { Config } from '../common/config.ts';
import type { EventLog } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import { StreamJob, StreamJobSet, sharedGroupOf, stateNameOf } from './engine.ts';
import { LATE_EVENTS } from './job.ts';
import { createJobs } from './jobs/index.ts';
import type { StateStore } from './state-store.ts';
import { HOUR, MINUTE, windowStart } from './windows.ts';

export interface ReplayOptions {
  from: number;
  /** Job names; every job when absent. */
  jobs?: string[];
  /** Done once no batch of records older than the replay came for this long (default 2 s). */
  idleMs?: number;
  progress?(line: string): void;
}

export interface ReplayReport {
  /** The start of the hour of `from`: the first window rewritten. */
  start: number;
  jobs: string[];
  records: number;
  rowsWritten: number;
  rowsZeroed: number;
}

export interface ReplayDeps {
  config: Readonly<Config>;
  log: EventLog;
  archive: Archive;
  store: StateStore;
  logger: Logger;
}

const rowKey = (p: Pick<MetricPoint, 'metric' | 'labels' | 'windowStart'>) => `${p.metric}\u0000${canonicalLabels(p.labels)}\u0000${p.windowStart}`;

export async function replay(deps: ReplayDeps, options: ReplayOptions): Promise<ReplayReport> {
  const { config, log, store, logger } = deps;
  const all = createJobs(config.analytics);
  const unknown = (options.jobs ?? []).filter((name) => !all.some((j) => j.name === name));
  if (unknown.length) throw new Error(`unknown job ${unknown.join(', ')} (one of ${all.map((j) => j.name).join(', ')})`);
  const jobs = options.jobs?.length ? all.filter((j) => options.jobs!.includes(j.name)) : all;
  const start = windowStart(options.from, HOUR);
  const stamp = `replay-${Date.now().toString(36)}`;
  const startedAt = Date.now();
  const idleMs = options.idleMs ?? 2000;
  await store.ensureSchema();

  // Every row the replay writes, to find the stale ones afterwards; and its newest minute (≈ its max event time).
  const written = new Set<string>();
  let newest = -Infinity;
  const putMetrics = async (points: readonly MetricPoint[]) => {
    await deps.archive.putMetrics(points);
    for (const p of points) {
      written.add(rowKey(p));
      if (p.windowMs === MINUTE) newest = Math.max(newest, p.windowStart);
    }
  };
  const archive = new Proxy(deps.archive, {
    get(target, prop) {
      if (prop === 'putMetrics') return putMetrics;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });

  let records = 0;
  let lastOld = Date.now();
  const engines = jobs.map(
    (job) =>
      new StreamJob({
        log,
        topic: config.messagesTopic,
        store,
        archive,
        logger,
        job,
        latenessMs: config.analytics.latenessMs,
        stateName: `${stamp}.${stateNameOf(job.name, config.messagesTopic)}`,
        skipBefore: start,
        onBatch(_partition, batch) {
          records += batch.length;
          // A batch holding records the log had before the replay started: still catching up.
          if (batch.some((r) => r.timestamp < startedAt)) lastOld = Date.now();
        },
      }),
  );
  const set = new StreamJobSet(engines, { log, topic: config.messagesTopic, group: `${sharedGroupOf(config.messagesTopic)}.${stamp}` });
  const ticker = setInterval(() => options.progress?.(`replaying ${jobs.map((j) => j.name).join(', ')} from ${new Date(start).toISOString()}: ${records} records`), 2000);
  try {
    await set.start();
    lastOld = Date.now();
    while (Date.now() - lastOld < idleMs) await new Promise((r) => setTimeout(r, 100));
  } finally {
    clearInterval(ticker);
    await set.stop();
  }

  // Stale rows: in windows the replay's watermark passed (so it wrote everything they hold).
  const horizon = newest - config.analytics.latenessMs;
  let rowsZeroed = 0;
  for (const job of jobs) {
    for (const metric of [...job.metrics, LATE_EVENTS]) {
      if (!(horizon > start)) break;
      const rows = await deps.archive.metrics(metric, { from: start, to: horizon });
      const stale = rows.filter(
        (p) => p.windowStart + p.windowMs <= horizon && !written.has(rowKey(p)) && p.value !== 0 && (metric !== LATE_EVENTS || p.labels?.job === job.name),
      );
      if (stale.length) await deps.archive.putMetrics(stale.map((p) => ({ ...p, value: 0 })));
      rowsZeroed += stale.length;
    }
  }
  for (const e of engines) await store.dropJob(e.stateName);
  return { start, jobs: jobs.map((j) => j.name), records, rowsWritten: written.size, rowsZeroed };
}
