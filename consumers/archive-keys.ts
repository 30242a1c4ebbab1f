// The archive's tables and row keys, shared by the HBase and the embedded adapter so that both lay the
// history out the same way (consumers/archive.ts has the port). Analysts reading HBase directly:
//
//   table parley:messages        one row per message, one family `m` (1 version); created pre-split into 16
//                                regions at '01'..'0f' where the gateway allows it (not HBase 2.6.1's Thrift2
//                                over the framed transport, see archive-hbase.ts: then HBase splits it as it grows)
//     row     {salt}{conversation}0x00{reversed id}
//             salt          two hex digits, (FNV-1a 32 of the conversation id's UTF-8) mod 16: '00'..'0f'
//             conversation  `u:{a}:{b}` for 1:1 (the two user ids sorted) or `g:{groupId}`; a 0x00 or 0x01
//                           byte in it (never in a valid id) is written 0x01 0x01 / 0x01 0x02, so the 0x00
//                           after it always ends the conversation and no id is a key prefix of another
//             reversed id   20 decimal digits of (2^64 - 1 - id): a forward scan reads the newest first
//     columns m:id m:from m:to m:group m:ts m:cid m:kind m:body m:attachment m:ref m:state, plain UTF-8
//             (ts in decimal ms since the epoch, attachment as JSON {key,name,mime,size}, state `delivered`
//             or `read`, written by receipts; absent fields have no cell). Message cells carry the message
//             ts as their HBase timestamp, so replaying a message rewrites identical cells.
//
//   table parley:inbox           one row per (participant, message), for sync; pre-split like messages
//     row     {salt(user)}{user}0x00{id, 20 digits zero-padded}   (user escaped as above; ascending ids)
//     columns m:c = the conversation id; the message is the parley:messages row of (m:c, id), except for a
//             receipt, which has no messages row (it is the m:state of the message it names): its m:r holds
//             the receipt's envelope as JSON, so sync returns it as sent
//
//   table parley:conversations   one row per user, one column per conversation the user takes part in
//     row     {user}
//     columns m:{conversation id} = JSON of the conversation's last message (the envelope, without state),
//             cell timestamp = that message's ts, so an older message arriving late never wins (two
//             messages of the same ms are settled by id, the higher wins)
//
//   table parley:metrics         windowed metrics from analytics; a rewrite of a window replaces it
//     row     {metric}0x00{labels}0x00{window start, 13 digits zero-padded ms since the epoch}
//             labels: JSON of the labels with keys sorted (`{}` for none); metric escaped as above
//     columns m:v = JSON {value, windowMs, labels}
//
// Row keys are at most 32,767 bytes (HBase's limit): longer ids, and ids with lone UTF-16 surrogates (they
// would encode alike), are refused on write and find nothing on read.
//
// The embedded adapter (classic-level) keeps one sorted key space: {table}0x00{row key} for `messages`,
// `inbox` and `metrics`, and `conversations`0x00{user, escaped}0x00{conversation id} for each conversation
// cell. Values: a message row is the archived message as JSON (its state included), an inbox row the
// conversation id (a receipt's: the receipt's envelope as JSON, which begins with `{` where no conversation
// id does), the others as in HBase.
import { conversationOf, type ArchivedMessage, type MetricPoint, type ReceiptState } from './archive.ts';
import { EPOCH, ID_PATTERN, compareIds } from '../common/ids.ts';
import type { Envelope } from '../common/envelope.ts';

export const DEFAULT_NAMESPACE = 'parley';
export const TABLES = { messages: 'messages', inbox: 'inbox', conversations: 'conversations', metrics: 'metrics' } as const;
export type TableRole = keyof typeof TABLES;
/** The column family of every table. */
export const FAMILY = 'm';
export const SALT_BUCKETS = 16;
/** Split points for the salted tables: one region per salt bucket. */
export const SPLIT_KEYS: readonly string[] = Array.from({ length: SALT_BUCKETS - 1 }, (_, i) => salt(i + 1));
/** HBase refuses longer row keys (Short.MAX_VALUE); both adapters hold the same limit. */
export const MAX_ROW_BYTES = 32_767;

const MAX_ID = (1n << 64n) - 1n;
/** Snowflake layout of common/ids.ts: the time sits above 10 node bits and 12 sequence bits. */
const TIME_SHIFT = 22n;
const ZERO = Buffer.from([0]);

function salt(bucket: number): string {
  return bucket.toString(16).padStart(2, '0');
}
/** The salts, by bucket. */
const SALTS = Array.from({ length: SALT_BUCKETS }, (_, i) => salt(i));

/** FNV-1a, 32 bits, over the UTF-8 bytes. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // ASCII is its own UTF-8 (every valid id is); anything else is hashed over its encoding.
    if (c >= 0x80) return fnv1a32Bytes(Buffer.from(text, 'utf8'));
    hash = Math.imul(hash ^ c, 0x01000193) >>> 0;
  }
  return hash;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193) >>> 0;
  return hash;
}

export function saltOf(id: string): string {
  return SALTS[fnv1a32(id) % SALT_BUCKETS];
}

/** {salt(id)}{id, escaped}0x00: how a `messages` row (by conversation) and an `inbox` row (by user) begin. */
function saltedPrefix(id: string): Buffer {
  return Buffer.concat([Buffer.from(saltOf(id)), escapePart(id), ZERO]);
}

/** Whether an id is its own escaped UTF-8 (escapePart): ASCII without 0x00 or 0x01, as every valid id is. */
export function plainKeyPart(id: string): boolean {
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 2 || c >= 0x80) return false;
  }
  return true;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether an id can be part of a key: a string that UTF-8 encodes without loss (a lone surrogate
 * encodes as U+FFFD, so two such ids could share a key). Reads of other ids find nothing; writes fail.
 */
export function keyable(id: unknown): id is string {
  return typeof id === 'string' && !LONE_SURROGATE.test(id);
}

/** UTF-8 with 0x00 → 0x01 0x01 and 0x01 → 0x01 0x02: order-preserving and free of 0x00, so `part 0x00` is prefix-free. */
export function escapePart(text: string): Buffer {
  const raw = Buffer.from(text, 'utf8');
  if (!raw.includes(0) && !raw.includes(1)) return raw;
  const out: number[] = [];
  for (const b of raw) {
    if (b === 0) out.push(1, 1);
    else if (b === 1) out.push(1, 2);
    else out.push(b);
  }
  return Buffer.from(out);
}

/** A message id as the archive takes it: 1-20 digits, no leading zero, at most 2^64 - 1. */
export function isArchiveId(id: unknown): id is string {
  return typeof id === 'string' && ID_PATTERN.test(id) && (id === '0' || id[0] !== '0') && BigInt(id) <= MAX_ID;
}

/** A cursor (`before`, `after`): digits only; values past 2^64 - 1 are allowed and mean "beyond every id". */
function cursorValue(cursor: string, name: string): bigint {
  if (typeof cursor !== 'string' || !/^[0-9]{1,40}$/.test(cursor)) throw new RangeError(`${name} must be a message id`);
  return BigInt(cursor);
}

const pad = (n: bigint, width: number) => n.toString().padStart(width, '0');
const reversed = (id: bigint) => pad(MAX_ID - id, 20);

export function tooLong(key: Buffer): boolean {
  return key.length > MAX_ROW_BYTES;
}

/** The byte string right after every key that starts with `prefix` (which ends in 0x00). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] += 1;
  return end;
}

// --- parley:messages -------------------------------------------------------------------------------

export function messagePrefix(conversation: string): Buffer {
  return saltedPrefix(conversation);
}

export function messageKey(conversation: string, id: string): Buffer {
  return Buffer.concat([messagePrefix(conversation), Buffer.from(reversed(BigInt(id)))]);
}

/** A forward range: `start` inclusive, `stop` exclusive; null when it is empty or names no storable row. */
export interface KeyRange {
  start: Buffer;
  stop: Buffer;
}

/** The rows of `page`: ids below `before` (all when absent), read forward, newest first. */
export function pageRange(conversation: string, before?: string): KeyRange | null {
  if (before !== undefined) cursorValue(before, 'before');
  if (!keyable(conversation)) return null;
  const prefix = messagePrefix(conversation);
  if (tooLong(prefix)) return null;
  if (before === undefined) return { start: prefix, stop: prefixEnd(prefix) };
  const b = cursorValue(before, 'before');
  if (b === 0n) return null;
  // ids ≤ b - 1, i.e. reversed ids ≥ MAX - (b - 1).
  const start = b > MAX_ID ? prefix : Buffer.concat([prefix, Buffer.from(reversed(b - 1n))]);
  return { start, stop: prefixEnd(prefix) };
}

/** The smallest id a message stamped at `ts` can have. */
function firstIdAt(ts: number): bigint {
  return BigInt(Math.max(0, Math.floor(ts) - EPOCH)) << TIME_SHIFT;
}

/** A backward range, as HBase's reversed scans take it: `high` inclusive, `low` exclusive. */
export interface BackwardRange {
  high: Buffer;
  low: Buffer;
}

/**
 * The rows of `scan`: ids stamped in [from, to), read backwards for oldest first. Callers still check
 * each message's ts (the range is exact for ids the broker stamped).
 */
export function timeRange(conversation: string, from: number, to: number): BackwardRange | null {
  if (!Number.isFinite(from) || !Number.isFinite(to)) throw new RangeError('from and to must be numbers (ms since the epoch)');
  if (!keyable(conversation)) return null;
  const prefix = messagePrefix(conversation);
  if (tooLong(prefix) || to <= from) return null;
  const lowId = firstIdAt(from); // inclusive
  const highId = firstIdAt(to); // exclusive
  if (lowId > MAX_ID || highId <= lowId) return null;
  // ids in [lowId, highId) ⇔ reversed ids in (MAX - highId, MAX - lowId].
  return {
    high: Buffer.concat([prefix, Buffer.from(reversed(lowId))]),
    low: highId > MAX_ID ? prefix : Buffer.concat([prefix, Buffer.from(reversed(highId))]),
  };
}

/** The row key just below a message row key of the same conversation (for walking backwards), or null. */
export function messageKeyBelow(key: Buffer): Buffer | null {
  const digits = BigInt(key.subarray(key.length - 20).toString('latin1'));
  if (digits === 0n) return null;
  return Buffer.concat([key.subarray(0, key.length - 20), Buffer.from(pad(digits - 1n, 20))]);
}

// --- parley:inbox ----------------------------------------------------------------------------------

export function inboxPrefix(user: string): Buffer {
  return saltedPrefix(user);
}

export function inboxKey(user: string, id: string): Buffer {
  return Buffer.concat([inboxPrefix(user), Buffer.from(pad(BigInt(id), 20))]);
}

export function idOfInboxKey(key: Buffer): string {
  return BigInt(key.subarray(key.length - 20).toString('latin1')).toString();
}

/** The rows of `sync`: ids above `after` (all when absent), oldest first. */
export function syncRange(user: string, after?: string): KeyRange | null {
  if (after !== undefined) cursorValue(after, 'after');
  if (!keyable(user)) return null;
  const prefix = inboxPrefix(user);
  if (tooLong(prefix)) return null;
  if (after === undefined) return { start: prefix, stop: prefixEnd(prefix) };
  const a = cursorValue(after, 'after');
  if (a >= MAX_ID) return null;
  return { start: Buffer.concat([prefix, Buffer.from(pad(a + 1n, 20))]), stop: prefixEnd(prefix) };
}

// --- parley:metrics --------------------------------------------------------------------------------

const MAX_WINDOW_START = 9_999_999_999_999;

export function canonicalLabels(labels: Record<string, string> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort();
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, String(labels![k])])));
}

export function metricPrefix(metric: string): Buffer {
  return Buffer.concat([escapePart(metric), ZERO]);
}

/** The rows of one metric and label set: {metric}0x00{labels}0x00. */
export function seriesPrefix(metric: string, labels: string): Buffer {
  return Buffer.concat([metricPrefix(metric), Buffer.from(labels, 'utf8'), ZERO]);
}

export function metricKey(point: MetricPoint): Buffer {
  if (!keyable(point.metric) || point.metric.length === 0) throw new RangeError('a metric point needs a metric name (well-formed text)');
  if (!Number.isSafeInteger(point.windowStart) || point.windowStart < 0 || point.windowStart > MAX_WINDOW_START)
    throw new RangeError(`windowStart must be an integer of ms since the epoch, got ${point.windowStart}`);
  if (!Number.isFinite(point.windowMs) || !Number.isFinite(point.value)) throw new RangeError('windowMs and value must be finite numbers');
  const key = Buffer.concat([seriesPrefix(point.metric, canonicalLabels(point.labels)), Buffer.from(pad(BigInt(point.windowStart), 13))]);
  if (tooLong(key)) throw new RangeError(`metric row key of ${key.length} bytes exceeds ${MAX_ROW_BYTES}`);
  return key;
}

/** The label set (canonical JSON) of a metric row key under `metricPrefix(metric)`. */
export function labelsOfMetricKey(key: Buffer, prefixLength: number): string {
  return key.subarray(prefixLength, key.length - 14).toString('utf8');
}

/** The first row of `series` at or after `windowStart`. */
export function windowKey(series: Buffer, windowStart: number): Buffer {
  const ws = Math.max(0, Math.ceil(windowStart));
  if (ws > MAX_WINDOW_START) return prefixEnd(series);
  return Buffer.concat([series, Buffer.from(pad(BigInt(ws), 13))]);
}

/** How an adapter reads rows of the metrics table: [start, stop) forward, keys without the table. */
export interface MetricRows {
  first(start: Buffer, stop: Buffer): Promise<Buffer | undefined>;
  rows(start: Buffer, stop: Buffer): Promise<Array<{ key: Buffer; value: string }>>;
}

/**
 * Every label set of `metric`, windows in [from, to): one short read finds the next label set, one range
 * read takes its windows, so the cost follows the answer, not the metric's whole history.
 */
export async function readMetrics(metric: string, from: number, to: number, io: MetricRows): Promise<MetricPoint[]> {
  if (!keyable(metric) || metric.length === 0 || !(to > from)) return [];
  const prefix = metricPrefix(metric);
  if (tooLong(prefix)) return [];
  const end = prefixEnd(prefix);
  const out: { labels: string; point: MetricPoint }[] = [];
  for (let cursor = prefix; ; ) {
    const next = await io.first(cursor, end);
    if (!next) break;
    const labels = labelsOfMetricKey(next, prefix.length);
    const series = seriesPrefix(metric, labels);
    const start = windowKey(series, from);
    const stop = windowKey(series, to);
    if (Buffer.compare(start, stop) < 0) for (const r of await io.rows(start, stop)) out.push({ labels, point: decodeMetric(metric, r.key, r.value) });
    cursor = prefixEnd(series);
  }
  return out
    .sort((a, b) => a.point.windowStart - b.point.windowStart || (a.labels < b.labels ? -1 : a.labels > b.labels ? 1 : 0))
    .map((x) => x.point);
}

export interface MetricValue {
  value: number;
  windowMs: number;
  labels: Record<string, string>;
}

export function encodeMetric(point: MetricPoint): string {
  const labels = JSON.parse(canonicalLabels(point.labels)) as Record<string, string>;
  return JSON.stringify({ value: point.value, windowMs: point.windowMs, labels } satisfies MetricValue);
}

export function decodeMetric(metric: string, key: Buffer, value: string): MetricPoint {
  const v = JSON.parse(value) as MetricValue;
  const point: MetricPoint = { metric, windowStart: Number(key.subarray(key.length - 13).toString('latin1')), windowMs: v.windowMs, value: v.value };
  if (v.labels && Object.keys(v.labels).length > 0) point.labels = v.labels;
  return point;
}

/** Points of one batch by row key, the last one written for a key winning (as a rewrite would). */
export function planMetrics(points: readonly MetricPoint[]): Map<string, { key: Buffer; value: string }> {
  const rows = new Map<string, { key: Buffer; value: string }>();
  for (const p of points) {
    const key = metricKey(p);
    rows.set(key.toString('latin1'), { key, value: encodeMetric(p) });
  }
  return rows;
}

// --- what a putMessages batch writes ---------------------------------------------------------------

/** The fields the archive keeps: the envelope's own, never a receipt state (that is setState's). */
export function archivedEnvelope(m: Envelope): Envelope {
  const e: Envelope = { id: m.id, from: m.from, to: m.to, ts: m.ts, cid: m.cid, kind: m.kind };
  if (m.group !== undefined) e.group = m.group;
  if (m.body !== undefined) e.body = m.body;
  if (m.attachment !== undefined) e.attachment = { key: m.attachment.key, name: m.attachment.name, mime: m.attachment.mime, size: m.attachment.size };
  if (m.ref !== undefined) e.ref = m.ref;
  return e;
}

export interface PlannedMessage {
  conversation: string;
  message: Envelope;
  key: Buffer;
  /** Readers: the participants given, plus the sender, plus the receiver of a 1:1 message. */
  readers: string[];
}

export interface PlannedLast {
  user: string;
  conversation: string;
  message: Envelope;
}

export interface WritePlan {
  messages: PlannedMessage[];
  /** Sync pointers; a receipt's carries the receipt itself (`receipt`, its envelope as JSON): it has no messages row. */
  inbox: { user: string; key: Buffer; conversation: string; ts: number; receipt?: string }[];
  /** For every (user, conversation) of the batch, its newest message in the batch. */
  last: PlannedLast[];
}

/**
 * Checks a whole batch before anything is written (a bad message fails the batch and writes nothing)
 * and works out every row it touches. Repeated ids in one batch are written once.
 */
/**
 * What a batch of messages writes. `tables`: bytes that go in front of every `messages` and `inbox` key
 * (the embedded adapter's table prefixes, so its keys are built once); the row-key limit counts without them.
 */
export function planMessages(batch: readonly { message: Envelope; participants: readonly string[] }[], tables?: { messages: Buffer; inbox: Buffer }): WritePlan {
  const messagesTable = tables?.messages ?? NO_TABLE;
  const inboxTable = tables?.inbox ?? NO_TABLE;
  const byId = new Map<string, PlannedMessage>();
  for (const { message, participants } of batch) {
    if (!message || !isArchiveId(message.id)) throw new RangeError(`cannot archive a message whose id is ${JSON.stringify(message?.id)}`);
    if (typeof message.from !== 'string' || typeof message.to !== 'string') throw new RangeError(`message ${message.id} needs from and to`);
    if (!Number.isFinite(message.ts)) throw new RangeError(`message ${message.id} needs a numeric ts`);
    if (!keyable(message.from) || !keyable(message.to) || (message.group !== undefined && !keyable(message.group)))
      throw new RangeError(`message ${message.id}: from, to and group must be well-formed text`);
    const conversation = conversationOf(message);
    const key = saltedKey(messagesTable, conversation, reversed(BigInt(message.id)));
    if (key.length - messagesTable.length > MAX_ROW_BYTES) throw new RangeError(`message ${message.id}: conversation id too long for a row key (${key.length - messagesTable.length} bytes)`);
    const readers = new Set<string>();
    for (const p of participants) if (typeof p === 'string') readers.add(p);
    readers.add(message.from);
    if (!message.group) readers.add(message.to);
    for (const r of readers) {
      // Its inbox key (prefix, 20 digits) must fit. A UTF-16 unit is at most 3 bytes of UTF-8, an escaped
      // one 2: only a long id needs its prefix built to tell.
      if (r.length === 0 || !keyable(r) || (r.length * 3 + 23 > MAX_ROW_BYTES && inboxPrefix(r).length + 20 > MAX_ROW_BYTES))
        throw new RangeError(`message ${message.id}: participant id empty, ill-formed or too long`);
    }
    const archived = archivedEnvelope(message);
    if (message.kind === 'receipt' && isReceiptState(message.state)) archived.state = message.state;
    byId.set(message.id, { conversation, message: archived, key, readers: [...readers] });
  }
  // A receipt is no message of its conversation (it is the state of the one it names, setState): it is only
  // in its sender's and receiver's sync, as sent.
  const receipts: PlannedMessage[] = [];
  const messages: PlannedMessage[] = [];
  for (const m of byId.values()) (m.message.kind === 'receipt' ? receipts : messages).push(m);
  const inbox: WritePlan['inbox'] = [];
  for (const r of receipts) {
    const digits = r.message.id.padStart(20, '0');
    const receipt = JSON.stringify(r.message);
    for (const user of r.readers) inbox.push({ user, key: saltedKey(inboxTable, user, digits), conversation: r.conversation, ts: r.message.ts, receipt });
  }
  const last = new Map<string, PlannedLast>();
  for (const m of messages) {
    const digits = m.message.id.padStart(20, '0');
    for (const user of m.readers) {
      inbox.push({ user, key: saltedKey(inboxTable, user, digits), conversation: m.conversation, ts: m.message.ts });
      const k = `${user}\u0000${m.conversation}`;
      const seen = last.get(k);
      if (!seen || compareIds(m.message.id, seen.message.id) > 0) last.set(k, { user, conversation: m.conversation, message: m.message });
    }
  }
  return { messages, inbox, last: [...last.values()] };
}

const NO_TABLE = Buffer.alloc(0);

/**
 * `table` + {salt(id)}{id, escaped}0x00 (messagePrefix, inboxPrefix) + `digits`, in one buffer: what
 * planMessages writes for every message and reader. A plain id (plainKeyPart) is written as it is, any
 * other goes the long way.
 */
export function saltedKey(table: Buffer, id: string, digits: string): Buffer {
  if (!plainKeyPart(id)) return Buffer.concat([table, saltedPrefix(id), Buffer.from(digits, 'latin1')]);
  const key = Buffer.allocUnsafe(table.length + 2 + id.length + 1 + digits.length);
  let at = table.copy(key);
  at += key.write(saltOf(id), at, 'latin1');
  at += key.write(id, at, 'latin1');
  key[at++] = 0;
  key.write(digits, at, 'latin1');
  return key;
}

// --- reading ---------------------------------------------------------------------------------------

const RANK: Record<string, number> = { delivered: 1, read: 2 };

/** Whether `next` moves a message's receipt state forward from `current`. */
export function advances(current: string | undefined, next: ReceiptState): boolean {
  return (RANK[next] ?? 0) > (current ? (RANK[current] ?? 0) : 0);
}

/**
 * Whether `reader`'s receipt may mark the message: a 1:1 message sent to the reader by someone else. A
 * receipt for one's own message, another pair's or a group's records nothing.
 */
export function markable(m: { from?: string; to?: string; group?: string }, reader: string): boolean {
  return m.group === undefined && m.to === reader && m.from !== reader;
}

export function isReceiptState(s: unknown): s is ReceiptState {
  return s === 'delivered' || s === 'read';
}

/** A user's conversation list from the last message of each, newest activity first. */
export function summarize(user: string, lasts: { conversation: string; message: ArchivedMessage }[], limit: number) {
  return lasts
    .sort((a, b) => compareIds(b.message.id, a.message.id))
    .slice(0, Math.max(0, limit))
    .map(({ conversation, message }) => {
      if (conversation.startsWith('g:')) return { type: 'group' as const, id: conversation.slice(2), lastMessage: message };
      return { type: 'user' as const, id: message.from === user ? message.to : message.from, lastMessage: message };
    });
}

export { compareIds };
