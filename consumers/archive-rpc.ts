// The Archive of another thread in this process, over common/rpc.ts: the embedded archive (one LevelDB,
// one opener) lives in the consumer thread that writes it, and the broker thread's history and analytics
// routes read it through this. `scan` crosses in chunks, pulled as the reader iterates.
import type { Envelope } from '../common/envelope.ts';
import type { RpcEndpoint } from '../common/rpc.ts';
import type { Archive, ArchivedMessage, ConversationSummary, MetricPoint, ReceiptMark } from './archive.ts';

/** Messages per `scan` round trip. */
const SCAN_CHUNK = 500;

type Puts = Parameters<Archive['putMessages']>[0];

/** Serves `archive` to the other side; `stop()` ends the scans it left open. */
export function serveArchive(rpc: RpcEndpoint, archive: Archive): { stop(): Promise<void> } {
  const scans = new Map<number, AsyncIterator<ArchivedMessage>>();
  let nextScan = 1;
  rpc.serve('archive.ensureSchema', () => archive.ensureSchema());
  rpc.serve('archive.putMessages', (batch: Puts) => archive.putMessages(batch));
  rpc.serve('archive.setState', (mark: ReceiptMark) => archive.setState(mark));
  rpc.serve('archive.page', (conversation: string, options: { before?: string; limit: number }) => archive.page(conversation, options));
  rpc.serve('archive.conversations', (userId: string, limit: number) => archive.conversations(userId, limit));
  rpc.serve('archive.sync', (userId: string, options: { after?: string; limit: number }) => archive.sync(userId, options));
  rpc.serve('archive.putMetrics', (points: MetricPoint[]) => archive.putMetrics(points));
  rpc.serve('archive.metrics', (metric: string, options: { from: number; to: number }) => archive.metrics(metric, options));
  rpc.serve('archive.ping', () => archive.ping());
  rpc.serve('archive.scanOpen', (conversation: string, options: { from: number; to: number }) => {
    const id = nextScan++;
    scans.set(id, archive.scan(conversation, options)[Symbol.asyncIterator]());
    return id;
  });
  rpc.serve('archive.scanNext', async (id: number): Promise<{ items: ArchivedMessage[]; done: boolean }> => {
    const it = scans.get(id);
    if (!it) throw new RangeError(`scan ${id} is not open`);
    const items: ArchivedMessage[] = [];
    try {
      while (items.length < SCAN_CHUNK) {
        const next = await it.next();
        if (next.done) {
          scans.delete(id);
          return { items, done: true };
        }
        items.push(next.value);
      }
    } catch (err) {
      scans.delete(id);
      throw err;
    }
    return { items, done: false };
  });
  rpc.serve('archive.scanClose', async (id: number) => {
    const it = scans.get(id);
    scans.delete(id);
    await it?.return?.();
  });
  return {
    async stop() {
      const open = [...scans.values()];
      scans.clear();
      await Promise.all(open.map((it) => it.return?.()));
    },
  };
}

export class RpcArchive implements Archive {
  constructor(
    /** The current endpoint: a consumer thread that restarts comes back on a new one. */
    private readonly rpc: () => RpcEndpoint,
    /** The adapter behind the other end. */
    readonly adapter: Archive['adapter'],
  ) {}

  private call<T>(method: string, ...args: unknown[]): Promise<T> {
    return this.rpc().call<T>(`archive.${method}`, ...args);
  }

  ensureSchema(): Promise<void> {
    return this.call('ensureSchema');
  }

  putMessages(batch: readonly { message: Envelope; participants: readonly string[] }[]): Promise<void> {
    return this.call('putMessages', batch);
  }

  setState(mark: ReceiptMark): Promise<void> {
    return this.call('setState', mark);
  }

  page(conversation: string, options: { before?: string; limit: number }): Promise<ArchivedMessage[]> {
    return this.call('page', conversation, options);
  }

  async *scan(conversation: string, options: { from: number; to: number }): AsyncIterable<ArchivedMessage> {
    const rpc = this.rpc();
    const id = await rpc.call<number>('archive.scanOpen', conversation, options);
    let done = false;
    try {
      while (!done) {
        const chunk = await rpc.call<{ items: ArchivedMessage[]; done: boolean }>('archive.scanNext', id);
        done = chunk.done;
        yield* chunk.items;
      }
    } finally {
      // A reader that stops early (an export cancelled) closes the other side's iterator.
      if (!done) await rpc.call('archive.scanClose', id).catch(() => undefined);
    }
  }

  conversations(userId: string, limit: number): Promise<ConversationSummary[]> {
    return this.call('conversations', userId, limit);
  }

  sync(userId: string, options: { after?: string; limit: number }): Promise<ArchivedMessage[]> {
    return this.call('sync', userId, options);
  }

  putMetrics(points: readonly MetricPoint[]): Promise<void> {
    return this.call('putMetrics', points);
  }

  metrics(metric: string, options: { from: number; to: number }): Promise<MetricPoint[]> {
    return this.call('metrics', metric, options);
  }

  ping(): Promise<boolean> {
    return this.call<boolean>('ping').catch(() => false);
  }

  /** The archive belongs to the other side, which closes it. */
  async close(): Promise<void> {}
}
