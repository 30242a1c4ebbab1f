// Accepting one chat message: validate → stamp (synchronous, so a burst is numbered in arrival order) →
// recipients → dedupe → store for every recipient → mirror → ack → deliver. Each step is a small named
// function; a feature adds a step.
import type { Config } from '../common/config.ts';
import {
  ackEnvelope,
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
import type { Metrics } from '../common/metrics.ts';
import type { Dedupe } from './dedupe.ts';
import type { Device, Delivery } from './devices.ts';
import type { OfflineQueue } from './offline-queue.ts';
import type { Recipients } from './recipients.ts';
import type { Router } from './router.ts';
import type { SendTarget } from './topics.ts';

/** Observers of accepted messages (the event-log outbox, analytics); they run before the ack. */
export type MessageAccepted = (message: Envelope, text: string, transport: Device['transport']) => Promise<void> | void;

export interface AcceptDeps {
  config: Readonly<Config>;
  ids: IdGenerator;
  dedupe: Dedupe;
  queue: OfflineQueue;
  router: Router;
  recipients: Recipients;
  metrics: Metrics;
  log: Logger;
  messageAccepted: MessageAccepted[];
}

interface Accepting {
  device: Device;
  target: SendTarget;
  message: Envelope;
  text: string;
  /** Users whose queues get the message. */
  recipients: string[];
  claimed: boolean;
  /** Set when (sender, cid) was accepted before: the earlier id and time are acked again. */
  earlier?: { id: string; ts: number };
  started: number;
  /** Resolves when the device's previous message has been handed to the queue: stores keep arrival order. */
  turn: Promise<void>;
  passTurn: () => void;
}

type Step = (a: Accepting, deps: AcceptDeps) => Promise<void>;

async function resolveRecipients(a: Accepting, deps: AcceptDeps): Promise<void> {
  if (a.target.type === 'group') throw forbidden(`not a member of group ${a.target.id}`);
  if (!(await deps.recipients.exists(a.target.id))) throw unknownRecipient(`no user ${a.target.id}`);
  a.recipients = [a.target.id];
}

async function dedupe(a: Accepting, deps: AcceptDeps): Promise<void> {
  const value = `${a.message.id}:${a.message.ts}`;
  const earlier = await deps.dedupe.claim(a.message.from, a.message.cid, value, deps.config.dedupeTtlSeconds);
  if (earlier === null) {
    a.claimed = true;
    return;
  }
  const [id, ts] = earlier.split(':');
  a.earlier = { id, ts: Number(ts) };
}

async function storeForRecipients(a: Accepting, deps: AcceptDeps): Promise<void> {
  // Earlier steps may finish out of order (a directory lookup, a dedupe round trip); the queue must not.
  // Handing over is synchronous in both adapters, so the next message need not wait for this one's fsync.
  await a.turn;
  const stored = deps.queue.push(a.recipients.map((userId) => ({ userId, message: { id: a.message.id, payload: a.text } })));
  a.passTurn();
  await stored;
}

async function mirror(a: Accepting, deps: AcceptDeps): Promise<void> {
  for (const listener of deps.messageAccepted) await listener(a.message, a.text, a.device.transport);
}

export const acceptSteps: Step[] = [resolveRecipients, dedupe, storeForRecipients, mirror];

export class Acceptor {
  constructor(private readonly deps: AcceptDeps) {}

  /**
   * Handles one `send/...` publish. Validation and numbering happen before the first await; the rest
   * runs concurrently with later publishes, but acks and deliveries complete in the order sent.
   */
  accept(device: Device, target: SendTarget, payload: Buffer): Promise<void> {
    const started = performance.now();
    const parsed = parseOutgoing(payload, this.deps.config.maxBodyBytes);
    if (isFailure(parsed)) return this.inOrder(device, Promise.resolve(() => this.refuse(device, parsed.error, parsed.cid)));
    if (parsed.kind === 'typing') return this.inOrder(device, this.typing(device, target, parsed));
    if (parsed.kind === 'attachment') {
      // Attachment keys come from POST /v1/attachments, which this build does not offer yet.
      return this.inOrder(device, Promise.resolve(() => this.refuse(device, badRequest('unknown attachment key'), parsed.cid)));
    }
    const turn = device.storeTurn;
    let passTurn!: () => void;
    device.storeTurn = new Promise<void>((resolve) => (passTurn = resolve));
    const message = this.stamp(device, target, parsed);
    const a: Accepting = { device, target, message, text: '', recipients: [], claimed: false, started, turn, passTurn };
    a.text = encodeEnvelope(a.message);
    return this.inOrder(device, this.run(a).then(() => () => this.finish(a), (err) => () => this.fail(a, err)));
  }

  private stamp(device: Device, target: SendTarget, msg: Outgoing): Envelope {
    const { id, ts } = this.deps.ids.next();
    // `from` comes from the session, never from the payload.
    const e: Envelope = { id, from: device.userId, to: target.type === 'user' ? target.id : device.userId, ts, ...msg };
    if (target.type === 'group') e.group = target.id;
    return e;
  }

  private async run(a: Accepting): Promise<void> {
    try {
      for (const step of acceptSteps) {
        await step(a, this.deps);
        if (a.earlier) return;
      }
    } finally {
      // A message that stops early still hands the turn on, in order.
      void a.turn.then(a.passTurn);
    }
  }

  /** Runs what `work` resolves to once every earlier publish of the device has finished. */
  private inOrder(device: Device, work: Promise<() => void | Promise<void>>): Promise<void> {
    const prev = device.tail;
    const done = (async () => {
      const finish = await work;
      await prev;
      await finish();
    })().catch((err) => this.deps.log.error({ err }, 'accept pipeline failed'));
    device.tail = done;
    return done;
  }

  private finish(a: Accepting): void {
    const { message: m, device } = a;
    if (a.earlier) {
      this.deps.metrics.duplicates.inc();
      device.notify(Buffer.from(ackEnvelope(m.cid, a.earlier.id, a.earlier.ts)));
      return;
    }
    device.notify(Buffer.from(ackEnvelope(m.cid, m.id, m.ts)));
    this.deps.metrics.accepted.inc({ kind: m.kind, transport: device.transport });
    this.deps.metrics.acceptSeconds.observe((performance.now() - a.started) / 1000);
    const payload = Buffer.from(a.text);
    for (const userId of a.recipients) this.deps.router.deliver(userId, { id: m.id, text: a.text, payload, queued: true, qos: 1 }, device);
    // The sender's other devices see the whole conversation; they catch up on missed copies by sync.
    if (!a.recipients.includes(m.from)) this.deps.router.deliver(m.from, { id: m.id, text: a.text, payload, queued: false, qos: 1 }, device);
  }

  private async fail(a: Accepting, err: unknown): Promise<void> {
    const error = asParleyError(err);
    if (!(err instanceof ParleyError)) this.deps.log.error({ err, user: a.message.from }, 'message could not be stored');
    // A refused message does not use up its cid.
    if (a.claimed) await this.deps.dedupe.release(a.message.from, a.message.cid).catch(() => undefined);
    this.refuse(a.device, error, a.message.cid);
  }

  refuse(device: Device, error: ParleyError, cid?: string): void {
    this.deps.metrics.refused.inc({ code: error.code });
    device.notify(Buffer.from(errorEnvelope(error, cid)));
  }

  /** Typing goes live to online devices only: no id, no ack, no queue, no archive. */
  private async typing(device: Device, target: SendTarget, msg: Outgoing): Promise<() => void> {
    try {
      if (target.type === 'group') throw forbidden(`not a member of group ${target.id}`);
      if (!(await this.deps.recipients.exists(target.id))) throw unknownRecipient(`no user ${target.id}`);
    } catch (err) {
      return () => this.refuse(device, asParleyError(err), msg.cid);
    }
    const text = JSON.stringify({ kind: 'typing', cid: msg.cid, from: device.userId, to: target.id, ts: Date.now() });
    const d: Delivery = { id: '', text, payload: Buffer.from(text), queued: false, qos: 0 };
    return () => this.deps.router.deliver(target.id, d, device);
  }
}
