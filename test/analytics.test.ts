// The analytics jobs over the embedded event log and archive, and over the real Kafka and HBase of
// test/stack: a known event set (duplicates, out-of-order and late events) gives exact window values; the
// partitions' partial windows merge into exact results; a job killed mid-window (in process, and by SIGKILL
// of `parley start --role analytics` on the real stack) and restarted writes the same values; `parley
// analytics replay --from T` recomputes windows and clears stale rows.
import assert from './helpers/assert.ts';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StreamJob, StreamJobSet, stateNameOf } from '../analytics/engine.ts';
import { createJobs, metricNames } from '../analytics/jobs/index.ts';
import { readSeries } from '../analytics/series.ts';
import { EmbeddedStateStore } from '../analytics/state-store-embedded.ts';
import { HBaseStateStore } from '../analytics/state-store-hbase.ts';
import type { StateStore } from '../analytics/state-store.ts';
import { HOUR, MINUTE, windowLabel } from '../analytics/windows.ts';
import type { Archive, MetricPoint } from '../consumers/archive.ts';
import { EmbeddedArchive } from '../consumers/archive-embedded.ts';
import { HBaseArchive } from '../consumers/archive-hbase.ts';
import { conversationOf } from '../common/envelope.ts';
import { EmbeddedEventLog } from '../common/event-log-embedded.ts';
import { KafkaEventLog } from '../common/event-log-kafka.ts';
import type { EventLog, LogRecord } from '../common/event-log.ts';
import { EPOCH } from '../common/ids.ts';
import { createLogger } from '../common/log.ts';
import { rand, requireStack, sleep, tempDir } from './contracts/support.ts';
import { killChild, repo, startChild, type ChildParley } from './helpers/child.ts';

const logger = createLogger(process.env.PARLEY_TEST_LOG ?? 'silent', 'analytics-test');
const SETTINGS = { exactDistinct: 1000, offlineAfterMs: 10_000 };
const JOBS = createJobs(SETTINGS);
const LATENESS = 60_000;
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const S = 1000;

// --- events ---------------------------------------------------------------------------------------

interface Msg {
  id: string;
  from: string;
  to: string;
  ts: number;
  kind: 'text' | 'attachment' | 'receipt';
  transport: 'tcp' | 'tls' | 'ws';
  ref?: string;
}

let seq = 0;
function msg(from: string, to: string, ts: number, opts: Partial<Pick<Msg, 'kind' | 'transport' | 'ref'>> = {}): Msg {
  const id = ((BigInt(ts - EPOCH) << 22n) | BigInt(++seq % 4096)).toString();
  return { id, from, to, ts, kind: opts.kind ?? (opts.ref ? 'receipt' : 'text'), transport: opts.transport ?? 'tcp', ...(opts.ref ? { ref: opts.ref } : {}) };
}
const receipt = (from: string, to: string, ts: number, of: Msg, transport: Msg['transport'] = 'tcp') => msg(from, to, ts, { ref: of.id, transport });

/** The event-log record the broker writes for a message (consumers/events.ts). */
function record(m: Msg): LogRecord {
  const message: Record<string, unknown> = { id: m.id, from: m.from, to: m.to, ts: m.ts, cid: `c${m.id.slice(-6)}`, kind: m.kind };
  if (m.kind === 'receipt') Object.assign(message, { ref: m.ref, state: 'delivered' });
  else if (m.kind === 'attachment') Object.assign(message, { body: 'photo', attachment: { key: 'k', name: 'p.jpg', mime: 'image/jpeg', size: 10 } });
  else message.body = 'hi';
  return { key: conversationOf(m), value: JSON.stringify({ v: 1, type: 'message', transport: m.transport, participants: [m.from, m.to], message }) };
}

/**
 * The known set, in log order, in one partition (lateness 60 s). Times in seconds after T0 (12:00:00):
 * minute 0 holds m1 m2 m3 r1 m5, minute 1 m4 r2, minute 2 m6 r3, minute 61 m8; m1 comes twice in its open
 * minute (dropped), m7 and m2's second copy come after minute 0 closed, m9 after minute 1 closed (late).
 */
function knownSet(T0: number): { first: LogRecord[]; second: LogRecord[] } {
  const m1 = msg('alice', 'bob', T0 + 5 * S);
  const m2 = msg('bob', 'alice', T0 + 10 * S, { transport: 'ws' });
  const m3 = msg('carol', 'alice', T0 + 20 * S, { kind: 'attachment' });
  const r1 = receipt('bob', 'alice', T0 + 12 * S, m1, 'ws'); // out of order: before m3
  const m4 = msg('alice', 'carol', T0 + 70 * S);
  const m5 = msg('dave', 'bob', T0 + 50 * S); // out of order, minute 0 still open (watermark 10 s)
  const r2 = receipt('alice', 'carol', T0 + 75 * S, m3); // m3 delivered after 55 s
  const m6 = msg('bob', 'alice', T0 + 130 * S); // watermark 70 s: minute 0 closes
  const m7 = msg('carol', 'dave', T0 + 55 * S); // late
  const r3 = receipt('alice', 'bob', T0 + 135 * S, m2); // m2 delivered after 125 s, its minute closed
  const m8 = msg('dave', 'alice', T0 + 3700 * S); // watermark 3640 s: minutes 1, 2 and hour 0 close
  const m9 = msg('alice', 'bob', T0 + 100 * S); // late
  const r = (m: Msg) => record(m);
  return {
    first: [m1, m2, m3, m1, r1, m4, m5, r2].map(r),
    second: [m6, m7, m2, r3, m8, m9].map(r),
  };
}

const k = (metric: string, labels: string, window: '1m' | '1h', minute: number) => `${metric}{${labels}} ${window}@${minute}`;

/** Every non-zero value the known set gives, keyed as snapshot() keys them (minutes after T0). */
function knownExpected(): Record<string, number> {
  const e: Record<string, number> = {};
  const put = (metric: string, labels: string, values: [('1m' | '1h'), number, number][]) => {
    for (const [w, minute, v] of values) e[k(metric, labels, w, minute)] = v;
  };
  put('messages', 'kind=text', [['1m', 0, 3], ['1m', 1, 1], ['1m', 2, 1], ['1m', 61, 1], ['1h', 0, 5], ['1h', 60, 1]]);
  put('messages', 'kind=attachment', [['1m', 0, 1], ['1h', 0, 1]]);
  put('messages', 'kind=receipt', [['1m', 0, 1], ['1m', 1, 1], ['1m', 2, 1], ['1h', 0, 3]]);
  put('messages_by_transport', 'transport=tcp', [['1m', 0, 3], ['1m', 1, 2], ['1m', 2, 2], ['1m', 61, 1], ['1h', 0, 7], ['1h', 60, 1]]);
  put('messages_by_transport', 'transport=ws', [['1m', 0, 2], ['1h', 0, 2]]);
  for (const job of JOBS) put('late_events', `job=${job.name}`, [['1m', 2, 2], ['1m', 61, 1], ['1h', 0, 2], ['1h', 60, 1]]);
  put('active_users', '', [['1m', 0, 4], ['1m', 1, 1], ['1m', 2, 2], ['1m', 61, 1], ['1h', 0, 4], ['1h', 60, 1]]);
  put('top_conversations', 'conversation=u:alice:bob,rank=1', [['1m', 0, 2], ['1m', 2, 1], ['1h', 0, 3]]);
  put('top_conversations', 'conversation=u:alice:carol,rank=2', [['1m', 0, 1], ['1h', 0, 2]]);
  put('top_conversations', 'conversation=u:bob:dave,rank=3', [['1m', 0, 1], ['1h', 0, 1]]);
  put('top_conversations', 'conversation=u:alice:carol,rank=1', [['1m', 1, 1]]);
  put('top_conversations', 'conversation=u:alice:dave,rank=1', [['1m', 61, 1], ['1h', 60, 1]]);
  put('delivery_receipts', '', [['1m', 0, 1], ['1m', 1, 1], ['1m', 2, 1], ['1h', 0, 3]]);
  for (const q of ['p50', 'p95', 'p99']) {
    put('delivery_latency_ms', `q=${q}`, [['1m', 0, 7000], ['1m', 1, 55_000], ['1m', 2, 125_000], ['1h', 0, q === 'p50' ? 55_000 : 125_000]]);
  }
  // Minute 0: m1 m2 m3 m5 pending, r1 and r2 (in time) take m1 and m3; r3 comes after minute 0 closed.
  put('backlog_pending', '', [['1m', 0, 2], ['1m', 1, 1], ['1m', 2, 1], ['1m', 61, 1], ['1h', 0, 4]]);
  put('backlog_delivered', '', [['1m', 1, 1], ['1m', 2, 1], ['1h', 0, 2]]);
  put('backlog_wait_ms', 'q=p50', [['1m', 1, 55_000], ['1m', 2, 125_000], ['1h', 0, 55_000]]);
  put('backlog_wait_ms', 'q=max', [['1m', 1, 55_000], ['1m', 2, 125_000], ['1h', 0, 125_000]]);
  return e;
}

/** Filler before the known set: a day earlier, many conversations, so a kill lands while batches are in flight. */
function filler(T0: number, n: number): LogRecord[] {
  const base = T0 - 86_400_000;
  return Array.from({ length: n }, (_, i) => record(msg(`f${i % 17}`, `g${i % 13}`, base + i * 50, { transport: i % 3 === 0 ? 'ws' : 'tcp' })));
}

// --- reading results --------------------------------------------------------------------------------

const labelText = (labels: Record<string, string> | undefined) =>
  Object.keys(labels ?? {})
    .filter((key) => key !== 'window')
    .sort()
    .map((key) => `${key}=${labels![key]}`)
    .join(',');

/** Every non-zero metric row of [from, from + 2 h), with the top conversations re-ranked as the API does. */
async function snapshot(archive: Archive, from: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const to = from + 2 * HOUR;
  const keyOf = (p: MetricPoint) => k(p.metric, labelText(p.labels), windowLabel(p.windowMs) as '1m' | '1h', (p.windowStart - from) / MINUTE);
  for (const metric of metricNames(JOBS)) {
    if (metric === 'top_conversations') continue;
    for (const p of await archive.metrics(metric, { from, to })) {
      assert.equal(p.labels?.window, windowLabel(p.windowMs), 'every row says its window length');
      if (p.value !== 0) out[keyOf(p)] = p.value;
    }
  }
  for (const [window, windowMs] of [['1m', MINUTE], ['1h', HOUR]] as const) {
    for (const p of await readSeries(archive, { metric: 'top_conversations', window, windowMs, from, to }, () => true)) out[keyOf({ ...p, metric: 'top_conversations' })] = p.value;
  }
  return out;
}

// --- backends ---------------------------------------------------------------------------------------

interface Backend {
  log: EventLog;
  archive: Archive;
  store: StateStore;
  /** Settings for a child `parley` on the same log, archive and state. */
  env: Record<string, string>;
  /** Closes the in-process adapters (the embedded ones lock their files) and opens them again after `run`. */
  without<T>(run: () => Promise<T>): Promise<T>;
  cleanup(): Promise<void>;
}

async function embeddedBackend(): Promise<Backend> {
  const tmp = await tempDir('analytics');
  const open = () => ({
    log: new EmbeddedEventLog(tmp.dir, { fsync: false, logger, retryMinMs: 20, retryMaxMs: 200, maxBatch: 50 }),
    archive: new EmbeddedArchive(tmp.dir, { fsync: false }),
    store: new EmbeddedStateStore(tmp.dir, { fsync: false }),
  });
  const b: Backend = {
    ...open(),
    env: { PARLEY_DATA_DIR: tmp.dir, PARLEY_EMBEDDED_FSYNC: 'false' },
    async without(run) {
      await Promise.all([b.log.close(), b.archive.close(), b.store.close()]);
      try {
        return await run();
      } finally {
        Object.assign(b, open());
      }
    },
    async cleanup() {
      await Promise.all([b.log.close(), b.archive.close(), b.store.close()]);
      await tmp.remove();
    },
  };
  return b;
}

async function realBackend(): Promise<Backend> {
  const stack = requireStack(['PARLEY_KAFKA_BROKERS', 'PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT', 'PARLEY_HBASE_TRANSPORT']);
  const tmp = await tempDir('analytics-real');
  const hbase = { host: stack.PARLEY_HBASE_HOST, port: Number(stack.PARLEY_HBASE_PORT), transport: stack.PARLEY_HBASE_TRANSPORT as 'framed' | 'buffered', namespace: `ta${rand(4)}` };
  const log = new KafkaEventLog(stack.PARLEY_KAFKA_BROKERS.split(','), `parley-analytics-test-${rand(3)}`, {
    logger,
    sessionTimeout: 6000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 300,
    maxWaitTimeMs: 200,
    retryMinMs: 50,
  });
  const archive = new HBaseArchive(hbase);
  const store = new HBaseStateStore(hbase);
  await archive.ensureSchema();
  await store.ensureSchema();
  return {
    log,
    archive,
    store,
    env: {
      PARLEY_DATA_DIR: tmp.dir,
      PARLEY_KAFKA_BROKERS: stack.PARLEY_KAFKA_BROKERS,
      PARLEY_HBASE_HOST: hbase.host,
      PARLEY_HBASE_PORT: String(hbase.port),
      PARLEY_HBASE_TRANSPORT: hbase.transport,
      PARLEY_HBASE_NAMESPACE: hbase.namespace,
    },
    without: (run) => run(),
    async cleanup() {
      await log.close();
      await store.dropSchema().catch(() => {});
      await archive.dropSchema().catch(() => {});
      await store.close();
      await archive.close();
      await tmp.remove();
    },
  };
}

// --- running jobs -----------------------------------------------------------------------------------

function jobsOn(b: Pick<Backend, 'log' | 'store' | 'archive'>, topic: string, latenessMs = LATENESS): StreamJob[] {
  return JOBS.map((job) => new StreamJob({ log: b.log, topic, store: b.store, archive: b.archive, logger, job, latenessMs }));
}

async function startAll(jobs: StreamJob[]): Promise<StreamJob[]> {
  await Promise.all(jobs.map((j) => j.start()));
  return jobs;
}

/** Waits until every job's checkpoints cover `total` records over partitions 0..partitions-1. */
async function caughtUp(store: StateStore, topic: string, partitions: number, total: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = await Promise.all(
      JOBS.map(async (job) => {
        let n = 0;
        for (let p = 0; p < partitions; p++) {
          const saved = await store.checkpoint(stateNameOf(job.name, topic), p).catch(() => undefined);
          if (saved) n += (JSON.parse(saved) as { offset: number }).offset;
        }
        return n;
      }),
    );
    if (done.every((n) => n === total)) return;
    if (Date.now() > deadline) throw new Error(`jobs checkpointed ${done.join(', ')} of ${total} records`);
    await sleep(100);
  }
}

async function checkpointed(store: StateStore, topic: string): Promise<boolean> {
  return (await store.checkpoint(stateNameOf('traffic', topic), 0).catch(() => undefined)) !== undefined;
}

/** `target` with one method replaced (fault injection). */
function swap<T extends object, K extends keyof T>(target: T, method: K, replacement: T[K]): T {
  return new Proxy(target, {
    get(t, prop) {
      if (prop === method) return replacement;
      const v = Reflect.get(t, prop, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

function runCli(env: Record<string, string>, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'cli/parley.ts'), ...args], {
      cwd: repo,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PARLEY_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// --- the suites -------------------------------------------------------------------------------------

for (const kind of ['embedded', 'real'] as const) {
  describe(`analytics jobs, ${kind} event log and archive`, () => {
    let b: Backend;
    let knownTopic = '';
    const newTopic = async (partitions: number) => {
      const topic = `test.analytics.${rand(4)}`;
      await b.log.ensureTopic(topic, partitions);
      return topic;
    };
    before(async () => {
      b = kind === 'embedded' ? await embeddedBackend() : await realBackend();
    });
    after(async () => {
      await b?.cleanup();
    });

    it('gives exact 1m and 1h windows for a known set with duplicates, out-of-order and late events', async () => {
      const topic = (knownTopic = await newTopic(1));
      const { first, second } = knownSet(T0);
      await b.log.append(topic, [...first, ...second]);
      const jobs = await startAll(jobsOn(b, topic));
      try {
        await caughtUp(b.store, topic, 1, first.length + second.length);
      } finally {
        await Promise.all(jobs.map((j) => j.stop()));
      }
      assert.deepEqual(await snapshot(b.archive, T0), knownExpected());
    });

    it('two instances of each job share the partitions and merge their partial windows into exact results', async () => {
      const topic = await newTopic(6);
      const base = T0 + 3 * HOUR;
      const users = Array.from({ length: 30 }, (_, i) => `u${String(i).padStart(2, '0')}`);
      const messages: Msg[] = [];
      const records: LogRecord[] = [];
      for (let i = 0; i < 300; i++) {
        const from = users[i % 30];
        const to = users[(i * 7 + 3) % 30] === from ? users[(i + 1) % 30] : users[(i * 7 + 3) % 30];
        // Scrambled times over two minutes: out of order, but never by more than the lateness here (5 min).
        const m = msg(from, to, base + ((i * 397) % 110_000), { transport: i % 4 === 0 ? 'ws' : 'tcp', kind: i % 9 === 0 ? 'attachment' : 'text' });
        messages.push(m);
        records.push(record(m));
        if (i % 3 === 0) {
          const r = receipt(to, from, m.ts + (i % 50) * 100 + 10, m);
          messages.push(r);
          records.push(record(r));
        }
      }
      const duplicates = records.filter((_, i) => i % 10 === 0);
      await b.log.append(topic, [...records, ...duplicates]);
      // Two members per group: each takes some partitions; every window has partials from both.
      const jobs = await startAll([...jobsOn(b, topic, 5 * MINUTE), ...jobsOn(b, topic, 5 * MINUTE)]);
      try {
        await caughtUp(b.store, topic, 6, records.length + duplicates.length);
      } finally {
        await Promise.all(jobs.map((j) => j.stop()));
      }

      // The same numbers, worked out plainly from the message list.
      const expected: Record<string, number> = {};
      const add = (key: string, n = 1) => (expected[key] = (expected[key] ?? 0) + n);
      for (const [w, ms] of [['1m', MINUTE], ['1h', HOUR]] as const) {
        const groups = new Map<number, Msg[]>();
        for (const m of messages) {
          const start = Math.floor(m.ts / ms) * ms;
          groups.set(start, [...(groups.get(start) ?? []), m]);
        }
        for (const [start, list] of groups) {
          const at = (start - base) / MINUTE;
          for (const m of list) {
            add(k('messages', `kind=${m.kind}`, w, at));
            add(k('messages_by_transport', `transport=${m.transport}`, w, at));
          }
          add(k('active_users', '', w, at), new Set(list.map((m) => m.from)).size);
          const counts = new Map<string, number>();
          for (const m of list) if (m.kind !== 'receipt') counts.set(conversationOf(m), (counts.get(conversationOf(m)) ?? 0) + 1);
          [...counts.entries()]
            .sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1))
            .slice(0, 10)
            .forEach(([c, n], i) => add(k('top_conversations', `conversation=${c},rank=${i + 1}`, w, at), n));
          const latencies = list
            .filter((m) => m.ref)
            .map((m) => m.ts - messages.find((o) => o.id === m.ref)!.ts)
            .sort((x, y) => x - y);
          if (latencies.length) {
            add(k('delivery_receipts', '', w, at), latencies.length);
            for (const [q, p] of [['p50', 0.5], ['p95', 0.95], ['p99', 0.99]] as const) add(k('delivery_latency_ms', `q=${q}`, w, at), latencies[Math.ceil(p * latencies.length) - 1]);
          }
          if (w === '1m') {
            const receipted = new Set(messages.filter((m) => m.ref).map((m) => m.ref));
            const pending = list.filter((m) => m.kind !== 'receipt' && !receipted.has(m.id)).length;
            if (pending) add(k('backlog_pending', '', w, at), pending);
          }
        }
      }
      const got = await snapshot(b.archive, base);
      assert.deepEqual(got, expected);
      // Per-partition sums would overcount: a sender's conversations sit in several partitions.
      assert.equal(got[k('active_users', '', '1h', 0)], 30);
    });

    it('a job killed mid-window and restarted writes the same values (in process: crash, crash after checkpoint, crash before checkpoint)', async () => {
      const topic = await newTopic(1);
      const base = T0 + 6 * HOUR;
      const fill = filler(base, kind === 'embedded' ? 1500 : 600);
      const { first, second } = knownSet(base);
      await b.log.append(topic, fill);

      // A: killed while batches are in flight.
      const a = await startAll(jobsOn(b, topic));
      while (!(await checkpointed(b.store, topic))) await sleep(5);
      await Promise.all(a.map((j) => j.kill()));

      // B: its third checkpoint is written but the batch then fails (as a crash before the commit would);
      // killed once it has read everything so far, with minutes 0 and 1 still open.
      await b.log.append(topic, first);
      let checkpoints = 0;
      const storeB = swap(b.store, 'putCheckpoint', async (job: string, p: number, v: string) => {
        await b.store.putCheckpoint(job, p, v);
        if (++checkpoints === 3) throw new Error('crash after the checkpoint');
      });
      const jobsB = await startAll(jobsOn({ ...b, store: storeB }, topic));
      await caughtUp(b.store, topic, 1, fill.length + first.length);
      await Promise.all(jobsB.map((j) => j.kill()));

      // C: after more events, one metric write fails (partials written, no checkpoint yet).
      await b.log.append(topic, second);
      let writes = 0;
      const archiveC = swap(b.archive, 'putMetrics', async (points: readonly MetricPoint[]) => {
        if (++writes === 2) throw new Error('crash before the checkpoint');
        return b.archive.putMetrics(points);
      });
      const jobsC = await startAll(jobsOn({ ...b, archive: archiveC }, topic));
      try {
        await caughtUp(b.store, topic, 1, fill.length + first.length + second.length);
      } finally {
        await Promise.all(jobsC.map((j) => j.stop()));
      }
      assert.ok(checkpoints >= 3 && writes >= 2, 'both faults happened');
      assert.deepEqual(await snapshot(b.archive, base), knownExpected());
    });

    it('the backlog’s pending ids go to change rows, not into every checkpoint; a restart rebuilds them, also from an older checkpoint that held them', async () => {
      const n = kind === 'embedded' ? 1200 : 400;
      for (const older of [false, true]) {
        const topic = await newTopic(1);
        const base = T0 + (older ? 42 : 40) * HOUR;
        // n messages in minute 0, none answered, then receipts for the first 100.
        const sent = Array.from({ length: n }, (_, i) => msg(`p${i % 50}`, `q${i % 40}`, base + 5 * S + i * 10));
        const early = sent.slice(0, 100).map((m, i) => receipt(m.to, m.from, base + 20 * S + i, m));
        await b.log.append(topic, [...sent, ...early].map(record));
        const first = await startAll(jobsOn(b, topic));
        await caughtUp(b.store, topic, 1, n + 100);
        await Promise.all(first.map((j) => j.stop()));

        const name = stateNameOf('backlog', topic);
        const saved = (await b.store.checkpoint(name, 0))!;
        const pendingIds = sent.slice(100).map((m) => m.id);
        assert.ok(!pendingIds.some((id) => saved.includes(id)), 'no pending id is in the checkpoint');
        assert.ok(saved.length < 2000, `the checkpoint stays small: ${saved.length} bytes for ${n - 100} pending messages`);
        if (older) {
          // What the build before wrote: the pending ids in the checkpoint, seen rows with ids only.
          const c = JSON.parse(saved) as { offset: number; windows: { ms: number; start: number; s: { pending?: string[] } }[] };
          const minute = c.windows.find((w) => w.ms === MINUTE && w.start === base)!;
          minute.s.pending = pendingIds;
          const ids = await b.store.seen(name, 0, base, c.offset);
          await b.store.dropSeen(name, 0, base);
          await b.store.putSeen([{ job: name, partition: 0, windowStart: base, offset: c.offset, ids }]);
          await b.store.putCheckpoint(name, 0, JSON.stringify(c));
          assert.deepEqual(await b.store.changes(name, 0, base, c.offset), []);
        }

        // After the restart: receipts for 50 more, then a message that closes minute 0.
        const late = sent.slice(100, 150).map((m, i) => receipt(m.to, m.from, base + 30 * S + i, m));
        const closer = msg('p1', 'q1', base + 200 * S);
        await b.log.append(topic, [...late, closer].map(record));
        const second = await startAll(jobsOn(b, topic));
        try {
          await caughtUp(b.store, topic, 1, n + 100 + 50 + 1);
        } finally {
          await Promise.all(second.map((j) => j.stop()));
        }
        const rows = await b.archive.metrics('backlog_pending', { from: base, to: base + MINUTE });
        const minute0 = rows.find((p) => p.windowMs === MINUTE && p.windowStart === base);
        assert.equal(minute0?.value, n - 150, `${older ? 'older checkpoint' : 'change rows'}: pending when minute 0 closed`);
      }
    });

    it('the jobs on one consumer group (as parley start runs them): a batch one job fails reaches all again, and none counts it twice', async () => {
      const topic = await newTopic(1);
      const base = T0 + 30 * HOUR;
      const { first, second } = knownSet(base);
      await b.log.append(topic, [...first, ...second]);
      // The first job's metric writes fail twice: the batch goes to all five again; the four that checkpointed it skip it.
      let failures = 0;
      const failing = swap(b.archive, 'putMetrics', async (points: readonly MetricPoint[]) => {
        if (failures < 2) {
          failures++;
          throw new Error('archive unavailable');
        }
        return b.archive.putMetrics(points);
      });
      const jobs = jobsOn(b, topic).map((job, i) => (i === 0 ? new StreamJob({ log: b.log, topic, store: b.store, archive: failing, logger, job: JOBS[0], latenessMs: LATENESS }) : job));
      const set = new StreamJobSet(jobs, { log: b.log, topic });
      await set.start();
      try {
        await caughtUp(b.store, topic, 1, first.length + second.length);
      } finally {
        await set.stop();
      }
      assert.equal(failures, 2, 'the faults happened');
      assert.deepEqual(await snapshot(b.archive, base), knownExpected());
    });

    if (kind === 'real') {
      it('SIGKILL of `parley start --role analytics` mid-window, then a restart, gives the same values', async () => {
        const topic = await newTopic(1);
        const base = T0 + 9 * HOUR;
        const fill = filler(base, 800);
        const { first, second } = knownSet(base);
        await b.log.append(topic, [...fill, ...first]);
        const env = { ...b.env, PARLEY_KAFKA_TOPIC: topic, PARLEY_HOST: '127.0.0.1', PARLEY_HTTP_PORT: '0', PARLEY_MQTT_PORT: '0' };
        const children: ChildParley[] = [];
        try {
          const c1 = await startChild(env, 'analytics');
          children.push(c1);
          while (!(await checkpointed(b.store, topic))) await sleep(5);
          await killChild(c1); // SIGKILL while it works through the filler

          const c2 = await startChild(env, 'analytics');
          children.push(c2);
          await caughtUp(b.store, topic, 1, fill.length + first.length, 180_000);
          await killChild(c2); // minutes 0 and 1 open

          await b.log.append(topic, second);
          const c3 = await startChild(env, 'analytics');
          children.push(c3);
          await caughtUp(b.store, topic, 1, fill.length + first.length + second.length, 180_000);
          await killChild(c3, 'SIGTERM');
        } finally {
          for (const c of children) await killChild(c);
        }
        assert.deepEqual(await snapshot(b.archive, base), knownExpected());
      });
    }

    it('`parley analytics replay --from T` recomputes the windows and zeroes stale rows', async () => {
      assert.ok(knownTopic, 'runs after the known-set test');
      // A wrong value and a conversation that was never there, in closed windows of the known set.
      await b.archive.putMetrics([
        { metric: 'messages', windowStart: T0, windowMs: MINUTE, value: 99, labels: { kind: 'text', window: '1m' } },
        { metric: 'top_conversations', windowStart: T0, windowMs: MINUTE, value: 50, labels: { conversation: 'u:zed:zoe', window: '1m' } },
      ]);
      assert.notDeepEqual(await snapshot(b.archive, T0), knownExpected());
      const res = await b.without(() => runCli({ ...b.env, PARLEY_KAFKA_TOPIC: knownTopic }, ['analytics', 'replay', '--from', new Date(T0 + 30 * S).toISOString()]));
      assert.equal(res.code, 0, res.stderr);
      const report = JSON.parse(res.stdout.trim().split('\n').pop()!);
      assert.equal(report.start, new Date(T0).toISOString());
      assert.equal(report.records, 14 * JOBS.length);
      assert.ok(report.rowsZeroed >= 1);
      assert.deepEqual(await snapshot(b.archive, T0), knownExpected());
      const stale = (await b.archive.metrics('top_conversations', { from: T0, to: T0 + MINUTE })).find((p) => p.labels?.conversation === 'u:zed:zoe');
      assert.equal(stale?.value, 0);

      const bad = await b.without(() => runCli({ ...b.env, PARLEY_KAFKA_TOPIC: knownTopic }, ['analytics', 'replay', '--from', 'yesterday']));
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /--from must be/);
    });
  });
}
