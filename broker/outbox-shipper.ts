// Moves the outbox to the event log in batches, oldest first. While the event log is down it retries
// with backoff and the outbox grows; nothing is dropped. A record is dropped from the outbox only after
// the event log has it, so a crash between the two ships it again (at least once; consumers are idempotent).
import type { EventLog } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import type { Outbox } from './outbox.ts';

const BATCH = 1000;
const MAX_BACKOFF_MS = 5000;
/**
 * While records flow, the backlog gauge is refreshed at most this often: reading the outbox's length after
 * every batch was one more Redis round trip per batch, for a gauge scraped every few seconds. An empty
 * outbox (nothing shipped) and every failure report at once, so an idle gauge reads 0.
 */
const BACKLOG_EVERY_MS = 1000;

export interface ShipperOptions {
  /** Told the outbox's length: after a failure, when the outbox is empty, and at most once a second while records flow. */
  onBacklog?: (length: number) => void;
  /** A backlog this long logs its failures as errors, not warnings. */
  warnAt?: number;
  /** After a quiet spell, lets records gather this long before shipping: one log append (and its fsyncs) for many messages. */
  lingerMs?: number;
  /** With nothing to ship and no poke, looks at the outbox again after this long (records of another writer, a lost wake-up). */
  idlePollMs?: number;
}

export class OutboxShipper {
  private stopped = false;
  /** Ends the idle wait: a poke, or stop(). */
  private wake: (() => void) | null = null;
  /** Ends any wait, the backoff after a failure too: stop(). */
  private halt: (() => void) | null = null;
  /** A poke that came while the shipper was busy: its next idle wait ends at once, so those records do not wait for the poll. */
  private poked = false;
  private running: Promise<void> | null = null;
  private failures = 0;
  private backlogAt = -Infinity;
  private readonly onBacklog: (length: number) => void;
  private readonly warnAt: number;
  private readonly lingerMs: number;
  private readonly idlePollMs: number;
  /** Records shipped since start (for tests and metrics). */
  shipped = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly log: EventLog,
    private readonly topic: string,
    private readonly logger: Logger,
    options: ShipperOptions = {},
  ) {
    this.onBacklog = options.onBacklog ?? (() => {});
    this.warnAt = options.warnAt ?? 100_000;
    this.lingerMs = options.lingerMs ?? 0;
    this.idlePollMs = options.idlePollMs ?? 1000;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** New records are in the outbox: ship without waiting for the idle poll. */
  poke(): void {
    if (this.wake) this.wake();
    else this.poked = true;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let batch;
      try {
        // Records a poke from now on announces may have come too late for this peek: they get a round of their own.
        this.poked = false;
        batch = await this.outbox.peek(BATCH);
        if (batch.length > 0) {
          await this.log.append(this.topic, batch);
          await this.outbox.drop(batch.length);
          this.shipped += batch.length;
          if (this.failures > 0) this.logger.info({ after: this.failures }, 'event log reachable again; shipping the outbox');
          this.failures = 0;
        }
      } catch (err) {
        this.failures++;
        const backlog = await this.outbox.length().catch(() => -1);
        this.onBacklog(backlog);
        const level = backlog >= this.warnAt ? 'error' : 'warn';
        if (this.failures === 1 || this.failures % 20 === 0) this.logger[level]({ err, backlog }, 'event log unavailable; messages wait in the outbox');
        // New messages do not cut the backoff short: at thousands a second they would retry without pause.
        await this.sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 6)), false);
        continue;
      }
      const now = performance.now();
      if (batch.length === 0 || now - this.backlogAt >= BACKLOG_EVERY_MS) {
        this.backlogAt = now;
        this.onBacklog(await this.outbox.length().catch(() => -1));
      }
      if (batch.length < BATCH) {
        await this.sleep(this.idlePollMs, true);
        if (this.lingerMs > 0 && !this.stopped) await new Promise((r) => setTimeout(r, this.lingerMs));
      }
    }
  }

  /** Waits `ms`, or less: until stop(), and with `byPoke` until a poke (at once if one came while busy). */
  private sleep(ms: number, byPoke: boolean): Promise<void> {
    if (this.stopped || (byPoke && this.poked)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = this.halt = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.halt = done;
      if (byPoke) this.wake = done;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.halt?.();
    await this.running;
  }
}
