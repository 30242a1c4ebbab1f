// Event time and tumbling windows, in the style of Spark Structured Streaming: every message event falls in
// one 1-minute and one 1-hour window by the time the broker accepted it (`message.ts`), whatever the order
// in which the log hands it over. A watermark (max event time seen − allowed lateness) says which windows
// are closed; an event whose 1-minute window is closed is late.
import { conversationOf, type Kind } from '../common/envelope.ts';
import type { ConsumedRecord } from '../common/event-log.ts';
import { ID_PATTERN, parseId } from '../common/ids.ts';
import { parseEvent } from '../consumers/events.ts';

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
/** The window lengths every job computes; the 1-minute one decides lateness and duplicates. */
export const WINDOWS = [MINUTE, HOUR] as const;
export type WindowMs = (typeof WINDOWS)[number];
export const WINDOW_NAMES: Record<string, WindowMs> = { '1m': MINUTE, '1h': HOUR };
/**
 * The `window` label every metric row carries ('1m', '1h'): the archive's row key is (metric, labels,
 * window start) without the length, so a minute and the hour starting at the same time need it apart.
 */
export const windowLabel = (ms: number) => (ms === HOUR ? '1h' : ms === MINUTE ? '1m' : `${ms}ms`);

/**
 * An event stamped further ahead of the log's own clock than this is taken at the log's time: one broker
 * with a clock far in the future would otherwise push the watermark ahead and make everything else late.
 */
export const MAX_CLOCK_SKEW_MS = 5 * MINUTE;

export const windowStart = (ts: number, ms: number) => Math.floor(ts / ms) * ms;

/** What the jobs need of one message event. */
export interface AnalyticsEvent {
  id: string;
  /** Event time: when the broker accepted the message, ms since the epoch. */
  ts: number;
  kind: Kind;
  from: string;
  to: string;
  group?: string;
  conversation: string;
  transport: string;
  ref?: string;
  state?: string;
}

/**
 * The event of one log record, or null for records that are not message events (skipped). Frozen:
 * StreamJobSet makes each record's event once and hands it to all its jobs.
 */
export function toEvent(record: ConsumedRecord): Readonly<AnalyticsEvent> | null {
  const e = parseEvent(record.value);
  if (!e) return null;
  const m = e.message;
  if (!ID_PATTERN.test(m.id) || typeof m.from !== 'string' || typeof m.to !== 'string') return null;
  let ts = Number.isFinite(m.ts) ? m.ts : parseId(m.id).ts;
  if (Number.isFinite(record.timestamp) && ts > record.timestamp + MAX_CLOCK_SKEW_MS) ts = record.timestamp;
  const event: AnalyticsEvent = { id: m.id, ts, kind: m.kind ?? 'text', from: m.from, to: m.to, conversation: conversationOf(m), transport: String(e.transport) };
  if (m.group) event.group = m.group;
  if (m.ref !== undefined) event.ref = m.ref;
  if (m.state !== undefined) event.state = m.state;
  return Object.freeze(event);
}

/** The acceptance time of the message a receipt refers to (it is in the Snowflake id), or undefined. */
export function refTime(e: AnalyticsEvent): number | undefined {
  if (e.kind !== 'receipt' || e.state !== 'delivered' || !e.ref || !ID_PATTERN.test(e.ref)) return undefined;
  return parseId(e.ref).ts;
}
