// The EventLog of another thread in this process, over common/rpc.ts: the consumer thread reads the
// embedded log that the broker thread owns (one writer per data dir; with Kafka the consumer thread has a
// client of its own). Batches cross by structured clone as the lines the log wrote (one byte array, parsed
// on this side: PackedRecords); a batch is committed only when the handler in the calling thread has
// finished, as with any EventLog, so a consumer thread that dies leaves its batches uncommitted and they
// come back.
import type { ConsumeOptions, EventLog, LogRecord, Subscription } from './event-log.ts';
import { unpackConsumed } from './event-log-embedded-group.ts';
import type { PackedConsumeOptions } from './event-log-embedded.ts';
import type { PackedRecords } from './event-log-segments.ts';
import type { RpcEndpoint } from './rpc.ts';

/** A log that can hand out its batches packed (the embedded one). */
type PackingLog = EventLog & { consumePacked(options: PackedConsumeOptions): Promise<Subscription> };
const packs = (log: EventLog): log is PackingLog => typeof (log as Partial<PackingLog>).consumePacked === 'function';

type RemoteConsume = Omit<ConsumeOptions, 'handle'> & { id: number };

/** Serves `log` to the other side; `stop()` ends the subscriptions it opened (its thread exited or stops). */
export function serveEventLog(rpc: RpcEndpoint, log: EventLog): { stop(): Promise<void> } {
  const subscriptions = new Map<number, Subscription>();
  rpc.serve('eventLog.ensureTopic', (topic: string, partitions: number) => log.ensureTopic(topic, partitions));
  rpc.serve('eventLog.append', (topic: string, records: LogRecord[]) => log.append(topic, records));
  rpc.serve('eventLog.ping', () => log.ping());
  rpc.serve('eventLog.consume', async ({ id, ...options }: RemoteConsume) => {
    if (subscriptions.has(id)) throw new RangeError(`subscription ${id} is already open`);
    if (!packs(log)) throw new RangeError(`the ${log.adapter} event log is not read from another thread: that thread has a client of its own`);
    const sub = await log.consumePacked({ ...options, handle: (batch) => rpc.call<void>('eventLog.handle', id, batch) });
    subscriptions.set(id, sub);
  });
  rpc.serve('eventLog.stop', async (id: number) => {
    const sub = subscriptions.get(id);
    subscriptions.delete(id);
    await sub?.stop();
  });
  return {
    async stop() {
      const all = [...subscriptions.values()];
      subscriptions.clear();
      await Promise.all(all.map((s) => s.stop()));
    },
  };
}

export class RpcEventLog implements EventLog {
  private nextId = 1;
  private readonly handlers = new Map<number, ConsumeOptions['handle']>();

  constructor(
    private readonly rpc: RpcEndpoint,
    /** The adapter behind the other end. */
    readonly adapter: EventLog['adapter'],
  ) {
    rpc.serve('eventLog.handle', async (id: number, batch: PackedRecords) => {
      const handle = this.handlers.get(id);
      // A batch for a subscription this side stopped: fail it, so that it is not committed.
      if (!handle) throw new Error(`subscription ${id} is not open here`);
      await handle(unpackConsumed(batch, `the ${this.adapter} event log's partition ${batch.partition}`));
    });
  }

  ensureTopic(topic: string, partitions: number): Promise<void> {
    return this.rpc.call('eventLog.ensureTopic', topic, partitions);
  }

  append(topic: string, records: readonly LogRecord[]): Promise<void> {
    return this.rpc.call('eventLog.append', topic, records);
  }

  async consume({ handle, ...options }: ConsumeOptions): Promise<Subscription> {
    // The id is chosen here and the handler set before asking: the first batch may arrive before the reply.
    const id = this.nextId++;
    this.handlers.set(id, handle);
    try {
      await this.rpc.call('eventLog.consume', { ...options, id } satisfies RemoteConsume);
    } catch (err) {
      this.handlers.delete(id);
      throw err;
    }
    let stopped = false;
    return {
      stop: async () => {
        if (stopped) return;
        stopped = true;
        try {
          await this.rpc.call('eventLog.stop', id);
        } catch (err) {
          // The other side is gone, and its subscriptions with it: nothing is left to stop.
          if (!this.rpc.closed) throw err;
        } finally {
          this.handlers.delete(id);
        }
      },
    };
  }

  ping(): Promise<boolean> {
    return this.rpc.call<boolean>('eventLog.ping').catch(() => false);
  }

  /** The log itself belongs to the other side; this side only lets go of its handlers. */
  async close(): Promise<void> {
    this.handlers.clear();
  }
}
