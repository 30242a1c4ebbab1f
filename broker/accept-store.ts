// AcceptStore port: the one durable write of an accepted message. It claims the message's (sender, cid)
// and, in the same atomic step, stores the message in every recipient's queue and its record in the
// outbox; or, when the cid was claimed before, writes nothing and answers with that earlier claim.
//
// Claim and store are one step because a claim that outlives a store that never happened loses the
// message: the sender's resend would be acked under the first id while no queue holds it (PROTOCOL.md,
// guarantees 1 and `cid`). A store whose outcome is unknown (an error after the write was sent) must not
// give the claim back either: a resend then finds out which way it went.
import type { LogRecord } from '../common/event-log.ts';
import type { QueuedMessage } from './offline-queue.ts';

export interface AcceptWrite {
  sender: string;
  cid: string;
  /** Kept for `ttlSeconds` and answered to every later store of the same (sender, cid). */
  claim: string;
  ttlSeconds: number;
  /** One entry per recipient; each queue keeps at most the configured number of messages, oldest leave. */
  queue: readonly { userId: string; message: QueuedMessage }[];
  outbox: readonly LogRecord[];
}

/** How far a store has got. */
export interface Stored {
  /**
   * Resolves once the write survives the death of any process (it may still be in the page cache): null,
   * or the earlier claim (then nothing was written). Live deliveries wait for this.
   */
  written: Promise<string | null>;
  /**
   * Settles once the write is on disk as well (for an earlier claim: once what it rests on is), never before
   * `written`; rejects when that could not be made sure of (the write itself may then be there). The ack
   * waits for this.
   */
  durable: Promise<unknown>;
}

export interface AcceptStore {
  readonly adapter: 'redis' | 'embedded';
  /**
   * Claims and stores. The write is queued before `store` returns (an adapter may send the writes of one
   * event-loop turn together), so stores called in some order are applied in that order.
   */
  store(write: AcceptWrite): Stored;
  close(): Promise<void>;
}
