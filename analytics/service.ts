// The `analytics` role: one StreamJob per job (each its own consumer group), the state store they
// checkpoint to, the series API and the dashboard, and the jobs' counters on /metrics.
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import { AuthService } from '../auth/service.ts';
import type { Adapters } from '../common/adapters.ts';
import type { Config } from '../common/config.ts';
import type { Logger } from '../common/log.ts';
import { StreamJob, type EngineCounters } from './engine.ts';
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
    event: (job, outcome) => events.inc({ job, outcome }),
    windowClosed: (job) => closed.inc({ job }),
    watermark: (job, partition, ms) => watermark.set({ job, partition: String(partition) }, ms / 1000),
  };
}

export interface AnalyticsDeps {
  config: Readonly<Config>;
  log: Logger;
  adapters: Pick<Adapters, 'eventLog' | 'archive' | 'directory' | 'tokens' | 'throttle'>;
  http: FastifyInstance;
  registry: Registry;
}

export class Analytics {
  readonly store: StateStore;
  readonly jobs: StreamJob[];

  /** Registers the routes (before the server listens); start() starts the jobs. */
  constructor({ config, log, adapters, http, registry }: AnalyticsDeps) {
    const settings = config.analytics;
    this.store = createStateStore(config);
    const jobs = createJobs(settings);
    const counters = engineCounters(registry);
    this.jobs = jobs.map(
      (job) =>
        new StreamJob({
          log: adapters.eventLog,
          topic: config.messagesTopic,
          store: this.store,
          archive: adapters.archive,
          logger: log,
          job,
          latenessMs: settings.latenessMs,
          lingerMs: settings.lingerMs,
          counters,
        }),
    );
    // Bearer tokens only: the AuthService holds no state of its own that this role would need to share.
    const auth = new AuthService({ config, directory: adapters.directory, tokens: adapters.tokens, throttle: adapters.throttle });
    analyticsRoutes(http, { auth, archive: adapters.archive, metrics: metricNames(jobs), readers: settings.readers, refreshMs: settings.refreshMs, log });
  }

  async start(): Promise<void> {
    await this.store.ensureSchema();
    for (const job of this.jobs) await job.start();
  }

  async stop(): Promise<void> {
    for (const job of this.jobs) await job.stop();
    await this.store.close();
  }
}
