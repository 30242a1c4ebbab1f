// Accepting one chat message: validate → stamp (synchronous, so a burst is numbered in arrival order) →
// recipients → dedupe and store for every recipient and in the outbox (the event-log mirror), in one
// atomic write → deliver once the write survives any process's death → ack once it is on disk. Each step
// is a small named function; a feature adds a step.
import type { Config } from '../common/config.ts';
import {
  ackEnvelope,
  conversationOf,
  encodeEnvelope,
  errorEnvelope,
  isFailure,
  parseOutgoing,
  type Envelope,
  type Outgoing,
} from '../common/envelope.ts';
import { asParleyError, badRequest, forbidden, ParleyError, unknownRecipient } from '../common/errors.ts';
import type { IdGenerator } from '../common/ids.ts';
import type { Logger } from '../common/log.ts';
import type { AcceptStore } from './accept-store.ts';
import type { Metrics } from '../common/metrics.ts';
import type { Device } from './devices.ts';
import { checkAttachment, grantAttachment, type AttachmentGate } from '../blob/accept-step.ts';
import type { Groups } from './groups.ts';
import type { Recipients } from './recipients.ts';
import type { Router } from './router.ts';
import type { SendTarget } from './topics.ts';

export interface AcceptDeps {
  config: Readonly<Config>;
  ids: IdGenerator;
  store: AcceptStore;
  router: Router;
  recipients: Recipients;
  attachments: AttachmentGate['attachments'];
  groups: Groups;
  metrics: Metrics;
  log: Logger;
  /** Told when records entered the outbox, so the shipper need not wait for its idle poll. */
  outboxFilled(): void;
}

interface Accepting {
  device: Device;
  target: SendTarget;
  message: Envelope;
  text: string;
  /** Users whose queues get the message. */
  recipients: string[];
  /** Set when (sender, cid) was accepted before: the earlier id and time are acked again. */
  earlier?: { id: string; ts: number };
  /** Settles once the store is on disk: the ack waits for it, deliveries do not (AcceptStore, Stored). */
  durable: Promise<unknown> | null;
  started: number;
  /** Resolves when the device's previous message has been handed to the queue: stores keep arrival order. */
  turn: Promise<void>;
  passTurn: () => void;
}

/**
 * A step returns a promise only when it has something to wait for: a step that does not apply (the
 * attachment steps for a text message) or answers from memory (a known receiver) costs no promise.
 */
type Step = (a: Accepting, deps: AcceptDeps) => void | Promise<void>;

/**
 * The users a message goes to: the receiver, or every member of the group but the sender. Answered at once
 * (no promise) for a receiver the directory confirmed a moment ago.
 */
function recipientsOf(sender: string, target: SendTarget, deps: AcceptDeps): string[] | Promise<string[]> {
  if (target.type === 'group') return groupRecipients(sender, target.id, deps);
  if (deps.recipients.known(target.id) === true) return [target.id];
  return deps.recipients.exists(target.id).then((exists) => {
    if (!exists) throw unknownRecipient(`no user ${target.id}`);
    return [target.id];
  });
}

async function groupRecipients(sender: string, groupId: string, deps: AcceptDeps): Promise<string[]> {
  // Read on every message: a member removed a moment ago no longer receives.
  const members = await deps.groups.members(groupId);
  if (!members.includes(sender)) throw forbidden(`not a member of group ${groupId}`);
  return members.filter((m) => m !== sender);
}

function resolveRecipients(a: Accepting, deps: AcceptDeps): void | Promise<void> {
  const recipients = recipientsOf(a.message.from, a.target, deps);
  if (Array.isArray(recipients)) {
    a.recipients = recipients;
    return;
  }
  return recipients.then((r) => {
    a.recipients = r;
  });
}

/**
 * The envelope as one user receives it. A group message is encoded once with the group id as `to` (so it
 * is archived that way); each member's copy names the member as `to`, by replacing that one field —
 * `"to":"…"` first appears as the field itself, since `id` and `from` hold no quotes.
 */
function textFor(a: Accepting, userId: string): string {
  if (!a.message.group) return a.text;
  return a.text.replace(`"to":"${a.message.to}"`, `"to":"${userId}"`);
}

/** The event-log record of a message: built around the envelope's own JSON, which is encoded once. */
function eventRecord(a: Accepting): { key: string; value: string } {
  const participants = a.recipients.includes(a.message.from) ? a.recipients : [a.message.from, ...a.recipients];
  const head = JSON.stringify({ v: 1, type: 'message', transport: a.device.transport, participants });
  return { key: conversationOf(a.message), value: `${head.slice(0, -1)},"message":${a.text}}` };
}

/**
 * Claims (sender, cid) and stores the message in every recipient's queue and in the outbox, in one durable
 * write, before the ack; a resend gets the earlier id and time instead (PROTOCOL.md, `cid`). Earlier steps
 * may finish out of order (a directory lookup); these writes must not, so they are handed over in arrival
 * order. Handing over is synchronous in every adapter, so the next message need not wait for this one's
 * fsync or round trip. The step ends once the write is written (it then survives any process's death);
 * the ack waits for `durable`.
 */
async function dedupeAndStore(a: Accepting, deps: AcceptDeps): Promise<void> {
  await a.turn;
  const { id, ts, from, cid } = a.message;
  const stored = deps.store.store({
    sender: from,
    cid,
    claim: `${id}:${ts}`,
    ttlSeconds: deps.config.dedupeTtlSeconds,
    queue: a.recipients.map((userId) => ({ userId, message: { id, payload: textFor(a, userId) } })),
    outbox: [eventRecord(a)],
  });
  a.passTurn();
  a.durable = stored.durable;
  const earlier = await stored.written;
  if (earlier !== null) {
    const [firstId, firstTs] = earlier.split(':');
    a.earlier = { id: firstId, ts: Number(firstTs) };
  }
}

export const acceptSteps: Step[] = [resolveRecipients, checkAttachment, grantAttachment, dedupeAndStore];

/**
 * What a publish comes to, run once every earlier publish of its device has got as far: `deliver` first
 * (in order with the device's earlier deliveries), then `tell` the sender once `after` has settled (in order
 * with its earlier answers), or `failed` when `after` rejects.
 */
interface Outcome {
  deliver: (() => void) | null;
  after: Promise<unknown> | null;
  tell: () => void;
  failed: ((err: unknown) => void) | null;
}

export class Acceptor {
  constructor(private readonly deps: AcceptDeps) {}

  /**
   * Handles one `send/...` publish. Validation and numbering happen before the first await; the rest
   * runs concurrently with later publishes, but deliveries, and acks, complete in the order sent. Resolves
   * once the sender has its answer (the PUBACK follows it).
   */
  accept(device: Device, target: SendTarget, payload: Buffer): Promise<void> {
    const started = performance.now();
    const parsed = parseOutgoing(payload, this.deps.config.maxBodyBytes);
    if (isFailure(parsed)) return this.inOrder(device, Promise.resolve(this.refusal(device, parsed.error, parsed.cid)));
    if (parsed.kind === 'typing') return this.inOrder(device, this.typing(device, target, parsed));
    // A receipt goes to the one user who sent the message it names (PROTOCOL.md), never to a whole group.
    if (parsed.kind === 'receipt' && target.type === 'group') {
      const error = badRequest("a receipt goes to the message's sender alone, on send/user/{sender}");
      return this.inOrder(device, Promise.resolve(this.refusal(device, error, parsed.cid)));
    }
    const turn = device.storeTurn;
    let passTurn!: () => void;
    device.storeTurn = new Promise<void>((resolve) => (passTurn = resolve));
    const message = this.stamp(device, target, parsed);
    const a: Accepting = { device, target, message, text: '', recipients: [], durable: null, started, turn, passTurn };
    a.text = encodeEnvelope(a.message);
    return this.inOrder(device, this.run(a).then(() => this.outcome(a), (err) => this.refusal(device, this.failure(a, err), a.message.cid)));
  }

  private stamp(device: Device, target: SendTarget, msg: Outgoing): Envelope {
    const { id, ts } = this.deps.ids.next();
    // `from` comes from the session, never from the payload. A group message is stamped with the group
    // id as `to`; each member's copy is addressed to the member (textFor).
    const e: Envelope = { id, from: device.userId, to: target.id, ts, ...msg };
    if (target.type === 'group') e.group = target.id;
    return e;
  }

  private async run(a: Accepting): Promise<void> {
    try {
      for (const step of acceptSteps) {
        const waiting = step(a, this.deps);
        if (waiting) await waiting;
        if (a.earlier) return;
      }
    } finally {
      // A message that stops early still hands the turn on, in order.
      void a.turn.then(a.passTurn);
    }
  }

  /**
   * Runs the outcome `work` resolves to in the device's order: its deliveries after the device's earlier
   * ones (device.tail), its answer after the earlier answers (device.told) and after its own `after`.
   * Resolves once the answer is sent.
   */
  private inOrder(device: Device, work: Promise<Outcome>): Promise<void> {
    const delivered = device.tail;
    const told = device.told;
    const outcome = (async () => {
      const o = await work;
      await delivered;
      o.deliver?.();
      return o;
    })();
    device.tail = outcome.then(noop, noop);
    const answered = (async () => {
      const o = await outcome;
      await told;
      if (o.after) {
        try {
          await o.after;
        } catch (err) {
          o.failed?.(err);
          return;
        }
      }
      o.tell();
    })().catch((err) => this.deps.log.error({ err }, 'accept pipeline failed'));
    device.told = answered;
    return answered;
  }

  /** A stored message: delivered once written, acked once durable. A resend: acked again, nothing delivered. */
  private outcome(a: Accepting): Outcome {
    const { message: m, device, earlier } = a;
    return {
      deliver: earlier ? null : () => this.deliver(a),
      after: a.durable,
      tell: earlier
        ? () => {
            this.deps.metrics.duplicates.inc();
            device.notify(Buffer.from(ackEnvelope(m.cid, earlier.id, earlier.ts)));
          }
        : () => {
            // The outbox record is on disk now: the shipper may take it (one wake-up for all the acks of a sync).
            this.deps.outboxFilled();
            device.notify(Buffer.from(ackEnvelope(m.cid, m.id, m.ts)));
            this.deps.metrics.accepted.inc({ kind: m.kind, transport: device.transport });
            this.deps.metrics.acceptSeconds.observe((performance.now() - a.started) / 1000);
          },
      failed: (err) => this.refuse(device, this.failure(a, err), m.cid),
    };
  }

  private deliver(a: Accepting): void {
    const { message: m, device } = a;
    const shared = m.group ? null : Buffer.from(a.text);
    for (const userId of a.recipients) {
      const text = textFor(a, userId);
      this.deps.router.deliver(userId, { id: m.id, text, payload: shared ?? Buffer.from(text), queued: true, qos: 1 }, device);
    }
    // The sender's other devices see the whole conversation; they catch up on missed copies by sync.
    if (!a.recipients.includes(m.from)) {
      const text = textFor(a, m.from);
      this.deps.router.deliver(m.from, { id: m.id, text, payload: shared ?? Buffer.from(text), queued: false, qos: 1 }, device);
    }
  }

  /**
   * The error a failed message is answered with. A message refused before the store did not use up its cid.
   * One whose store failed may or may not have been written (the reply, or the disk's sync, is what
   * failed): its claim stays, so a resend is acked under the first id if the write happened and stored now
   * if it did not (AcceptStore).
   */
  private failure(a: Accepting, err: unknown): ParleyError {
    if (!(err instanceof ParleyError)) this.deps.log.error({ err, user: a.message.from }, 'message could not be stored');
    return asParleyError(err);
  }

  private refusal(device: Device, error: ParleyError, cid?: string): Outcome {
    return { deliver: null, after: null, tell: () => this.refuse(device, error, cid), failed: null };
  }

  refuse(device: Device, error: ParleyError, cid?: string): void {
    this.deps.metrics.refused.inc({ code: error.code });
    device.notify(Buffer.from(errorEnvelope(error, cid)));
  }

  /** Typing goes live to online devices only: no id, no ack, no queue, no archive. */
  private async typing(device: Device, target: SendTarget, msg: Outgoing): Promise<Outcome> {
    let to: string[];
    try {
      to = await recipientsOf(device.userId, target, this.deps);
    } catch (err) {
      return this.refusal(device, asParleyError(err), msg.cid);
    }
    const ts = Date.now();
    const group = target.type === 'group' ? { group: target.id } : {};
    // Each copy names its receiver as `to` (PROTOCOL.md), in a group as in a 1:1 conversation.
    const deliver = () => {
      for (const userId of to) {
        const text = JSON.stringify({ kind: 'typing', cid: msg.cid, from: device.userId, to: userId, ts, ...group });
        this.deps.router.deliver(userId, { id: '', text, payload: Buffer.from(text), queued: false, qos: 0 }, device);
      }
    };
    return { deliver, after: null, tell: noop, failed: null };
  }
}

const noop = () => {};
