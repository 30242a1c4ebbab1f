// Where a step's slow messages fall in time. Each generator counts the messages its clients receive, per
// 100 ms from the step's origin (one instant for all generators) by when each message was sent: how many,
// how many were slower than LATE_MS (the p99 target), and the slowest.
// A p99 made of a few bursts (a GC pause, a stalled event loop, a CPU taken by a neighbour) reads
// differently from one where every message is a little slow: the first packs its late messages into a
// small part of the step, the second spreads them over all of it.

export const TAIL_BUCKET_MS = 100;
/** A message slower than this, end to end, is late: the p99 the issue asks for at half of peak. */
export const LATE_MS = 5;

/**
 * Per TAIL_BUCKET_MS from the step's origin: [messages, late messages, slowest µs, and (results from round 30
 * on) how late the generators' send loop was at its worst in that bucket, µs]. The last tells a burst the
 * load made (a generator held, then sending what fell due at once) from one the system under test made.
 */
export type Timeline = [number, number, number, number?][];

/** The bucket of `sentAfterMs` (a send a hair before the origin counts in the first), made if it is not there yet. */
function bucketAt(t: Timeline, sentAfterMs: number): Timeline[number] {
  const i = Math.max(0, Math.floor(sentAfterMs / TAIL_BUCKET_MS));
  while (t.length <= i) t.push([0, 0, 0]);
  return t[i];
}

export function recordTimeline(t: Timeline, sentAfterMs: number, latencyUs: number): void {
  const b = bucketAt(t, sentAfterMs);
  b[0]++;
  if (latencyUs > LATE_MS * 1000) b[1]++;
  if (latencyUs > b[2]) b[2] = latencyUs;
}

/**
 * A generator's send loop, at `sentAfterMs`, sent messages that fell due `lagUs` before: the bucket keeps the
 * worst. A loop that keeps up is late by its 1 ms timer and the receiving it does between ticks (a few ms at
 * worst in 100 ms); one held by a GC or by a CPU it did not get is late by as long as it was held, and sends
 * what fell due meanwhile at once.
 */
export function recordSendLag(t: Timeline, sentAfterMs: number, lagUs: number): void {
  const b = bucketAt(t, sentAfterMs);
  const lag = Math.max(0, lagUs);
  if (b[3] === undefined || lag > b[3]) b[3] = lag;
}

/** The generators' timelines as one: counts added bucket by bucket, the slowest of any, the worst send lag of any. */
export function mergeTimelines(parts: readonly Timeline[]): Timeline {
  const out: Timeline = [];
  for (const t of parts) {
    t.forEach(([n, late, slowest, lag], i) => {
      const b = (out[i] ??= [0, 0, 0]);
      b[0] += n;
      b[1] += late;
      b[2] = Math.max(b[2], slowest);
      if (lag !== undefined) b[3] = Math.max(b[3] ?? 0, lag);
    });
  }
  return out;
}

export interface TailSummary {
  messages: number;
  /** Messages slower than LATE_MS, and their share of all. */
  late: number;
  lateShare: number;
  /**
   * The least time that holds half of the late messages, in whole buckets (ms), which need not be next to each
   * other: the step's worst moments. Bursts give a small part of the step; a steady tail about half of it.
   * Null when none was late.
   */
  halfLateWithinMs: number | null;
  /** The timeline's length, ms. */
  spanMs: number;
  /** How late the generators' send loop was at its worst, ms; null for results without it (before round 30). */
  sendLagMaxMs: number | null;
}

export function summarizeTail(t: Timeline): TailSummary {
  let messages = 0;
  let late = 0;
  let sendLagMaxMs: number | null = null;
  for (const [n, l, , lag] of t) {
    messages += n;
    late += l;
    if (lag !== undefined) sendLagMaxMs = Math.max(sendLagMaxMs ?? 0, lag / 1000);
  }
  let halfLateWithinMs: number | null = null;
  if (late > 0) {
    const busiest = t.map(([, l]) => l).sort((a, b) => b - a);
    let seen = 0;
    let k = 0;
    while (seen * 2 < late) seen += busiest[k++];
    halfLateWithinMs = k * TAIL_BUCKET_MS;
  }
  return { messages, late, lateShare: messages ? late / messages : 0, halfLateWithinMs, spanMs: t.length * TAIL_BUCKET_MS, sendLagMaxMs };
}

const seconds = (msValue: number) => (msValue < 10_000 ? (msValue / 1000).toFixed(1) : String(Math.round(msValue / 1000)));

const share = (s: TailSummary) => `${(s.lateShare * 100).toFixed(2)}%`;

/** "2.23% over 5 ms (half of them in the worst 0.4 of 25 s)", or "none over 5 ms". */
export function tailText(s: TailSummary): string {
  if (s.late === 0) return `none over ${LATE_MS} ms`;
  return `${share(s)} over ${LATE_MS} ms (half of them in the worst ${seconds(s.halfLateWithinMs!)} of ${seconds(s.spanMs)} s)`;
}

/** "2.23% over 5 ms, half in the worst 0.4 s" (a chart's legend). */
export function tailShort(s: TailSummary): string {
  if (s.late === 0) return `none over ${LATE_MS} ms`;
  return `${share(s)} over ${LATE_MS} ms, half in the worst ${seconds(s.halfLateWithinMs!)} s`;
}

/** The same for a table cell: "2.23% / 0.4 s". */
export function tailCell(s: TailSummary | undefined): string {
  if (!s) return '–';
  if (s.late === 0) return '0%';
  return `${share(s)} / ${seconds(s.halfLateWithinMs!)} s`;
}

/** "send loop ≤ 12.5 ms late" (the generators'), or '' for results without it. */
export function sendLagText(s: TailSummary): string {
  return s.sendLagMaxMs === null ? '' : `send loop ≤ ${s.sendLagMaxMs.toFixed(1)} ms late`;
}
