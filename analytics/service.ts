// The `analytics` role: one StreamJob per job (together on one consumer group, StreamJobSet) and the state store they
// checkpoint to (AnalyticsJobs, in the consumer thread or inline), the jobs' counters on /metrics, and the
// series API and the dashboard (registerAnalyticsRoutes, beside the rest of the HTTP API).
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AuthService } from '../auth/service.ts';
import type { Adapters } from '../common/adapters.ts';
import type { EventLog } from '../common/event-log.ts';
import type { Archive } from '../consumers/archive.ts';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import { StreamJob, StreamJobSet, type EngineCounters } from './engine.ts';
import { createJobs, metricNames } from './jobs/index.ts';
import { analyticsRoutes } from './routes.ts';
import type { StateStore } from './state-store.ts';
import { EmbeddedStateStore } from './state-store-embedded.ts';
import { HBaseStateStore } from './state-store-hbase.ts';

/** HBase when the archive is on HBase (same namespace), else LevelDB in the data folder. */
export function createStateStore(config: Readonly<Config>): StateStore {
  return config.hbase ? new HBaseStateStore(config.hbase) : new EmbeddedStateStore(config.dataDir, { fsync: config.embeddedFsync });
}

export function engineCounters(registry: Registry): EngineCounters {
  const events = new Counter({ name: 'parley_analytics_events_total', help: 'Event-log records seen by the analytics jobs, by outcome', labelNames: ['job', 'outcome'], registers: [registry] });
  const closed = new Counter({ name: 'parley_analytics_windows_closed_total', help: 'Windows the watermark closed', labelNames: ['job'], registers: [registry] });
  const watermark = new Gauge({ name: 'parley_analytics_watermark_seconds', help: 'Watermark (max event time - lateness) per partition', labelNames: ['job', 'partition'], registers: [registry] });
  return {
    event: (job, outcome, n) => events.inc({ job, outcome }, n),
    windowClosed: (job) => closed.inc({ job }),
    watermark: (job, partition, ms) => watermark.set({ job, partition: String(partition) }, ms / 1000),
  };
}

export interface AnalyticsJobsDeps {
  config: Readonly<Config>;
  log: Logger;
  eventLog: EventLog;
  archive: Archive;
  registry: Registry;
}

/** The jobs and their state store: what runs in the consumer thread (or inline). */
export class AnalyticsJobs {
  readonly store: StateStore;
  readonly jobs: StreamJob[];
  /** The five jobs read the log through one consumer group (sharedGroupOf), not one each. */
  private readonly set: StreamJobSet;

  constructor({ config, log, eventLog, archive, registry }: AnalyticsJobsDeps) {
    const settings = config.analytics;
    this.store = createStateStore(config);
    const counters = engineCounters(registry);
    this.jobs = createJobs(settings).map(
      (job) =>
        new StreamJob({
          log: eventLog,
          topic: config.messagesTopic,
          store: this.store,
          archive,
          logger: log,
          job,
          latenessMs: settings.latenessMs,
          lingerMs: settings.lingerMs,
          counters,
        }),
    );
    this.set = new StreamJobSet(this.jobs, { log: eventLog, topic: config.messagesTopic, lingerMs: settings.lingerMs });
  }

  async start(): Promise<void> {
    await this.store.ensureSchema();
    await this.set.start();
  }

  async stop(): Promise<void> {
    await this.set.stop();
    await this.store.close();
  }
}

/** The series API and the dashboard: served wherever the HTTP API is, reading the metric rows of `adapters.archive`. */
export function registerAnalyticsRoutes(
  http: FastifyInstance,
  { config, log, adapters }: { config: Readonly<Config>; log: Logger; adapters: Pick<Adapters, 'archive' | 'directory' | 'tokens' | 'throttle'> },
): void {
  const settings = config.analytics;
  // Bearer tokens only: the AuthService holds no state of its own that this role would need to share.
  const auth = new AuthService({ config, directory: adapters.directory, tokens: adapters.tokens, throttle: adapters.throttle });
  analyticsRoutes(http, { auth, archive: adapters.archive, metrics: metricNames(createJobs(settings)), readers: settings.readers, refreshMs: settings.refreshMs, log });
}
