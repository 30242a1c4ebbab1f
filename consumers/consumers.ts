// The event-log consumers that need no broker: the archiver and the analytics jobs. They run in a thread
// of their own by default (consumers/thread.ts), so that their parsing, archive writes and window
// arithmetic take the second core rather than the broker's event loop; or inline (PARLEY_CONSUMER_THREAD
// =false). The same composition serves both: the thread runs exactly what inline would.
import { Gauge, type Registry } from 'prom-client';
import { AnalyticsJobs } from '../analytics/service.ts';
import type { Config } from '../common/config.ts';
import type { EventLog } from '../common/event-log.ts';
import type { Logger } from '../common/log.ts';
import type { Archive } from './archive.ts';
import { Archiver } from './archiver.ts';

export type ConsumerRole = 'archiver' | 'analytics';

export interface Consumers {
  /** Messages and receipts the archiver has archived since it started (0 without an archiver). */
  archived(): Promise<number>;
  /** Their counters in Prometheus text, when they are not in this thread's registry ('' inline). */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export interface ConsumerDeps {
  config: Readonly<Config>;
  log: Logger;
  eventLog: EventLog;
  archive: Archive;
  registry: Registry;
  roles: readonly ConsumerRole[];
}

/** Builds the consumers of `roles`; `start()` subscribes them. */
export function createConsumers({ config, log, eventLog, archive, registry, roles }: ConsumerDeps): Consumers & { start(): Promise<void> } {
  const archiver = roles.includes('archiver') ? new Archiver(eventLog, config.messagesTopic, archive, log.child({ part: 'archiver' }), config.archiveLingerMs) : null;
  if (archiver) {
    new Gauge({
      name: 'parley_archiver_archived',
      help: 'Messages and receipts the archiver has archived since it started',
      registers: [registry],
      collect() {
        this.set(archiver.archived);
      },
    });
  }
  const analytics = roles.includes('analytics') ? new AnalyticsJobs({ config, log: log.child({ part: 'analytics' }), eventLog, archive, registry }) : null;
  return {
    async start(): Promise<void> {
      await archiver?.start();
      await analytics?.start();
    },
    async archived(): Promise<number> {
      return archiver?.archived ?? 0;
    },
    async metrics(): Promise<string> {
      return '';
    },
    async stop(): Promise<void> {
      await archiver?.stop();
      await analytics?.stop();
    },
  };
}
