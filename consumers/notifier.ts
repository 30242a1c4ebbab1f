// The notifier: a consumer group on the event log that tells a webhook about messages whose receiver has
// no device online, ready for an FCM/APNs relay. Each batch becomes at most one POST per user (coalesced),
// signed with HMAC-SHA256, retried with backoff; the batch is committed only after every POST succeeded or
// was given up on, so a crash re-sends rather than loses (the relay dedupes by message id).
import { createHmac } from 'node:crypto';
import type { Presence } from '../broker/presence.ts';
import type { ConsumedRecord, EventLog, Subscription } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import { parseEvent } from './events.ts';

export interface PushSettings {
  url: string;
  secret: string;
  maxAttempts: number;
  /** First retry delay; doubles each attempt. */
  backoffMs: number;
}

export interface PushItem {
  id: string;
  from: string;
  group?: string;
  kind: string;
  ts: number;
  /** The first 120 characters of the body, for the notification text. */
  preview?: string;
}

export const notifierGroup = (topic: string) => `parley-notifier.${topic}`;

/** `sha256=` + HMAC-SHA256 over `{timestamp}.{body}`, the value of `X-Parley-Signature`. */
export function signPush(secret: string, timestamp: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export class Notifier {
  private subscription: Subscription | null = null;
  private stopped = false;
  /** Notifications posted (one per user per batch) and given up on. */
  sent = 0;
  failed = 0;

  constructor(
    private readonly log: EventLog,
    private readonly topic: string,
    private readonly presence: Presence,
    private readonly settings: PushSettings,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    // A new notifier has nothing to say about old messages: it starts at the end of the log.
    this.subscription = await this.log.consume({ topic: this.topic, group: notifierGroup(this.topic), fromBeginning: false, handle: (b) => this.handle(b) });
  }

  async handle(batch: ConsumedRecord[]): Promise<void> {
    const byUser = new Map<string, PushItem[]>();
    for (const record of batch) {
      const e = parseEvent(record.value);
      if (!e || e.message.kind === 'typing') continue;
      const m = e.message;
      for (const user of e.participants) {
        if (user === m.from) continue;
        let items = byUser.get(user);
        if (!items) byUser.set(user, (items = []));
        items.push({ id: m.id, from: m.from, group: m.group, kind: m.kind, ts: m.ts, preview: m.body?.slice(0, 120) });
      }
    }
    await Promise.all(
      [...byUser].map(async ([user, items]) => {
        if (await this.presence.isOnline(user)) return;
        await this.post(user, items);
      }),
    );
  }

  private async post(user: string, messages: PushItem[]): Promise<void> {
    const body = JSON.stringify({ user, count: messages.length, messages });
    for (let attempt = 1; !this.stopped; attempt++) {
      const timestamp = String(Date.now());
      try {
        const res = await fetch(this.settings.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-parley-timestamp': timestamp, 'x-parley-signature': signPush(this.settings.secret, timestamp, body) },
          body,
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.sent++;
          return;
        }
        if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
          this.failed++;
          this.logger.error({ user, status: res.status }, 'push webhook refused a notification; not retried');
          return;
        }
        this.logger.warn({ user, status: res.status, attempt }, 'push webhook failed; retrying');
      } catch (err) {
        this.logger.warn({ user, err: (err as Error).message, attempt }, 'push webhook unreachable; retrying');
      }
      if (attempt >= this.settings.maxAttempts) {
        this.failed++;
        this.logger.error({ user, messages: messages.length }, 'push notification given up after retries');
        return;
      }
      await new Promise((r) => setTimeout(r, this.settings.backoffMs * 2 ** (attempt - 1)));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.subscription?.stop();
    this.subscription = null;
  }
}
