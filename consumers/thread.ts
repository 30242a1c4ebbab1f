// The consumer thread, from the broker thread's side: a worker_threads Worker running the archiver and the
// analytics jobs (consumers/thread-worker.ts), with the embedded event log served to it and, when the
// archive is embedded, its archive served back (the thread opens the LevelDB it writes; the HTTP routes
// here read it through RpcArchive). On Kafka and HBase the thread opens its own clients and only the
// counters cross. A thread that dies is started again (backoff 1 s doubling to 30 s); what it had not
// committed is handed out again, as after any consumer crash.
import { randomFill } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Config } from '../common/config.ts';
import { serveEventLog } from '../common/event-log-rpc.ts';
import type { EventLog } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import { RpcEndpoint } from '../common/rpc.ts';
import { RpcArchive } from './archive-rpc.ts';
import type { ConsumerRole, Consumers } from './consumers.ts';

const here = fileURLToPath(import.meta.url);
/** The entry in the same form as this file: .ts from the sources, .js from a build. */
const ENTRY = new URL(`./thread-worker${path.extname(here)}`, import.meta.url).href;
const BOOT = new URL('./thread-boot.mjs', import.meta.url);
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** How the thread ends after a fault it closed its stores for (thread-worker.ts); an exception not handled at all ends it with 1. */
export const FAULT_EXIT_CODE = 70;

export interface ThreadData {
  config: Readonly<Config>;
  roles: readonly ConsumerRole[];
  entry: string;
}

export class ConsumerThread implements Consumers {
  /** The thread's embedded archive, for this thread's routes; null when the archive is HBase (opened here too). */
  readonly archive: RpcArchive | null;
  private rpc = new RpcEndpoint({ postMessage: () => undefined, on: () => undefined });
  private worker: Worker | null = null;
  private eventLog: EventLog | null = null;
  private served: { stop(): Promise<void> } | null = null;
  private consuming = false;
  private stopping = false;
  private restartMs = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Times the thread was started again after it died. */
  restarts = 0;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly log: Logger,
    private readonly roles: readonly ConsumerRole[],
  ) {
    this.rpc.close();
    this.archive = config.hbase ? null : new RpcArchive(() => this.rpc, 'embedded');
  }

  /** Starts the thread, serving it `eventLog`; the consumers subscribe on startConsumers(). */
  start(eventLog: EventLog): void {
    this.eventLog = eventLog;
    this.spawn();
  }

  async startConsumers(): Promise<void> {
    this.consuming = true;
    await this.rpc.call('consumers.start');
  }

  /** The running Worker (tests end it to see the thread come back). */
  get current(): Worker | null {
    return this.worker;
  }

  archived(): Promise<number> {
    return this.rpc.call<number>('consumers.archived');
  }

  metrics(): Promise<string> {
    return this.rpc.call<string>('consumers.metrics').catch(() => '');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (!worker) return;
    // Its consumers finish their batches and it closes what it opened; a thread stuck past the limit is
    // ended anyway (what it had not committed comes back on the next start).
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${STOP_TIMEOUT_MS} ms`)), STOP_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.rpc.call('consumers.stop'), limit]);
    } catch (err) {
      this.log.warn({ err }, 'consumer thread did not stop cleanly');
    } finally {
      clearTimeout(timer);
    }
    await this.served?.stop();
    await worker.terminate();
  }

  private spawn(): void {
    // libuv's thread pool (the journal's fsyncs, LevelDB's reads and writes) starts with the first call that
    // needs it, and its threads take the nice value of the thread that made that call. Make sure that is
    // this thread and not the consumer thread, which lowers its own (thread-priority.ts).
    randomFill(new Uint8Array(1), () => undefined);
    const data: ThreadData = { config: this.config, roles: this.roles, entry: ENTRY };
    const worker = new Worker(BOOT, { workerData: data, name: 'parley-consumers' });
    const rpc = new RpcEndpoint(worker);
    const served = serveEventLog(rpc, this.eventLog!);
    this.worker = worker;
    this.rpc = rpc;
    this.served = served;
    worker.on('error', (err) => this.log.error({ err }, 'consumer thread failed'));
    worker.on('exit', (code) => {
      rpc.close();
      void served.stop().catch((err) => this.log.warn({ err }, 'stopping the consumer thread subscriptions failed'));
      if (this.worker === worker) this.worker = null;
      if (this.stopping) return;
      this.log.error({ code, restartInMs: this.restartMs }, 'consumer thread exited; starting it again');
      this.restartTimer = setTimeout(() => this.respawn(), this.restartMs);
      this.restartMs = Math.min(this.restartMs * 2, RESTART_MAX_MS);
    });
  }

  private respawn(): void {
    if (this.stopping) return;
    this.restarts++;
    this.spawn();
    if (!this.consuming) return;
    this.rpc.call('consumers.start').then(
      () => {
        this.restartMs = RESTART_MIN_MS;
        this.log.info({ restarts: this.restarts }, 'consumer thread running again');
      },
      (err) => this.log.error({ err }, 'consumer thread could not start its consumers'),
    );
  }
}
