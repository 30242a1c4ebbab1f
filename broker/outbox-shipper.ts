// Moves the outbox to the event log in batches, oldest first. While the event log is down it retries
// with backoff and the outbox grows; nothing is dropped. A record is dropped from the outbox only after
// the event log has it, so a crash between the two ships it again (at least once; consumers are idempotent).
import type { EventLog } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import type { Outbox } from './outbox.ts';

const BATCH = 1000;
const MAX_BACKOFF_MS = 5000;

export class OutboxShipper {
  private stopped = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;
  /** Records shipped since start (for tests and metrics). */
  shipped = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly log: EventLog,
    private readonly topic: string,
    private readonly logger: Logger,
    private readonly onBacklog: (length: number) => void = () => {},
    private readonly warnAt = 100_000,
    /** After a quiet spell, lets records gather this long before shipping: one log append (and its fsyncs) for many messages. */
    private readonly lingerMs = 0,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** New records are in the outbox: ship without waiting for the idle poll. */
  poke(): void {
    this.wake?.();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let batch;
      try {
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
        await this.sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 6)));
        continue;
      }
      if (batch.length < BATCH) {
        this.onBacklog(await this.outbox.length().catch(() => -1));
        await this.sleep(1000);
        if (this.lingerMs > 0 && !this.stopped) await new Promise((r) => setTimeout(r, this.lingerMs));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }
}
