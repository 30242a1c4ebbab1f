// Archive port: the history of every message, for scroll-back, sync and analysts (HBase table
// `parley:messages` in production, a sorted key-value store on disk embedded, same row keys).
//
// Row key of a message: {salt}{conversation}{reversed id}, where
//   salt          two hex digits: (FNV-1a 32 of the conversation id) mod 16, spreading conversations over regions
//   conversation  `u:{a}:{b}` for 1:1 (the two user ids sorted) or `g:{groupId}`, then a 0x00 byte
//   reversed id   20 decimal digits of (2^64 - 1 - id), so a forward scan reads the newest first
// Writes are idempotent: the row is derived from the message id, so a replay rewrites the same cells.
import type { Envelope } from '../common/envelope.ts';

export type ReceiptState = 'delivered' | 'read';

/** A message as archived: the envelope plus the receipt state the receiver reported, if any. */
export interface ArchivedMessage extends Envelope {
  state?: ReceiptState;
}

/**
 * A receipt as the archive records it: `reader` reports `state` for the message `id` of `conversation`. Only
 * a 1:1 message sent to `reader` takes it, so no one can mark their own or someone else's messages read.
 */
export interface ReceiptMark {
  conversation: string;
  id: string;
  state: ReceiptState;
  reader: string;
}

export interface ConversationSummary {
  type: 'user' | 'group';
  /** The peer's user id (1:1) or the group id. */
  id: string;
  lastMessage: ArchivedMessage;
}

export interface MetricPoint {
  metric: string;
  /** Window start, ms since the epoch. */
  windowStart: number;
  windowMs: number;
  value: number;
  /** Optional breakdown, e.g. { kind: 'text' }. */
  labels?: Record<string, string>;
}

export interface Archive {
  readonly adapter: 'hbase' | 'embedded';
  /** Creates namespace and tables if missing. */
  ensureSchema(): Promise<void>;
  /**
   * Stores messages (idempotent by id) and indexes them for each participant's conversation list and
   * sync: `participants` are the users who may read the message (sender and receivers). A receipt is
   * indexed for sync only: it is in no conversation's page or list (setState records what it says).
   */
  putMessages(batch: readonly { message: Envelope; participants: readonly string[] }[]): Promise<void>;
  /**
   * Records a receipt on the message it refers to, when that message was sent to the receipt's reader; the
   * state only moves forward (delivered → read). Any other receipt records nothing.
   */
  setState(mark: ReceiptMark): Promise<void>;
  /** One conversation, newest first: ids below `before` (all when absent), at most `limit`. */
  page(conversation: string, options: { before?: string; limit: number }): Promise<ArchivedMessage[]>;
  /** Messages of a conversation with from ≤ ts < to, oldest first, as a stream (analysts' export). */
  scan(conversation: string, options: { from: number; to: number }): AsyncIterable<ArchivedMessage>;
  /** The user's conversations, newest activity first. */
  conversations(userId: string, limit: number): Promise<ConversationSummary[]>;
  /**
   * Every message to or from the user with id > `after`, oldest first, at most `limit`: receipts too, as
   * sent (a receipt is in no conversation's page; putMessages gives it to its sender's and receiver's sync).
   */
  sync(userId: string, options: { after?: string; limit: number }): Promise<ArchivedMessage[]>;
  /** Metric rows (analytics): upsert by (metric, labels, windowStart); readers get the last value written. */
  putMetrics(points: readonly MetricPoint[]): Promise<void>;
  metrics(metric: string, options: { from: number; to: number }): Promise<MetricPoint[]>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export { conversationOf } from '../common/envelope.ts';
