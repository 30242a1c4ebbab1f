// Picks each port's adapter from configuration: a backend that is configured is used, otherwise the
// embedded adapter (DESIGN.md, "Ports and adapters"). The only place that knows every adapter.
import type { Redis } from 'ioredis';
import path from 'node:path';
import type { Directory } from '../auth/directory.ts';
import type { BlobStore } from '../blob/blob-store.ts';
import { EmbeddedBlobStore } from '../blob/blob-store-embedded.ts';
import { MinioBlobStore } from '../blob/blob-store-minio.ts';
import { EmbeddedDirectory } from '../auth/directory-embedded.ts';
import { LdapDirectory } from '../auth/directory-ldap.ts';
import type { Throttle } from '../auth/throttle.ts';
import { EmbeddedThrottle } from '../auth/throttle-embedded.ts';
import { RedisThrottle } from '../auth/throttle-redis.ts';
import type { TokenStore } from '../auth/token-store.ts';
import { EmbeddedTokenStore } from '../auth/token-store-embedded.ts';
import { RedisTokenStore } from '../auth/token-store-redis.ts';
import type { AcceptStore } from '../broker/accept-store.ts';
import { EmbeddedAcceptStore } from '../broker/accept-store-embedded.ts';
import { RedisAcceptStore } from '../broker/accept-store-redis.ts';
import type { OfflineQueue } from '../broker/offline-queue.ts';
import { EmbeddedOfflineQueue } from '../broker/offline-queue-embedded.ts';
import { RedisOfflineQueue } from '../broker/offline-queue-redis.ts';
import type { Groups } from '../broker/groups.ts';
import { EmbeddedGroups } from '../broker/groups-embedded.ts';
import { RedisGroups } from '../broker/groups-redis.ts';
import type { Outbox } from '../broker/outbox.ts';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { Journal } from './journal.ts';
import { RedisOutbox } from '../broker/outbox-redis.ts';
import type { Presence } from '../broker/presence.ts';
import type { ClusterBus } from '../broker/cluster-bus.ts';
import { EmbeddedClusterBus, EmbeddedClusterHub } from '../broker/cluster-bus-embedded.ts';
import { RedisClusterBus } from '../broker/cluster-bus-redis.ts';
import { EmbeddedPresence } from '../broker/presence-embedded.ts';
import { RedisPresence } from '../broker/presence-redis.ts';
import type { Archive } from '../consumers/archive.ts';
import type { Config } from './config.ts';
import type { EventLog } from './event-log.ts';
import { EmbeddedEventLog } from './event-log-embedded.ts';
import { createArchive, kafkaEventLog } from './pipeline-adapters.ts';
import { createRedis } from './redis.ts';

export interface Adapters {
  directory: Directory;
  tokens: TokenStore;
  throttle: Throttle;
  /** Dedupe, queues and outbox in one write per message: over `queue` and `outbox`, which read what it writes. */
  acceptStore: AcceptStore;
  presence: Presence;
  /** Between broker nodes: Redis pub/sub, or (one process) nobody else. */
  bus: ClusterBus;
  queue: OfflineQueue;
  groups: Groups;
  outbox: Outbox;
  eventLog: EventLog;
  archive: Archive;
  blobs: BlobStore;
  redis: Redis | null;
  /** The embedded queue's and outbox's journal (null on Redis). */
  journal: Journal | null;
  /** Port → adapter, for the start-up log and /readyz. */
  describe(): Record<string, string>;
  /** Whether each configured backend answers: all of them, or only those of `scope` (CHAT_BACKENDS). */
  ready(scope?: 'chat'): Promise<Record<string, boolean>>;
  close(): Promise<void>;
}

export interface AdapterOptions {
  /** The archive to use instead of opening one (the consumer thread's, when it owns the embedded one). */
  archive?: Archive;
}

export async function createAdapters(config: Readonly<Config>, options: AdapterOptions = {}): Promise<Adapters> {
  const redis = config.redis ? createRedis(config.redis) : null;
  if (redis) await redis.ping();
  const directory: Directory = config.ldap ? new LdapDirectory(config.ldap) : new EmbeddedDirectory(config.dataDir);
  // The embedded queue and outbox share one journal: a message's records in both cost one fsync.
  const journal = redis ? null : Journal.open(config.dataDir, config.nodeId, config.embeddedFsync, config.journalCompactBytes);
  const embedded = journal ? { queue: new EmbeddedOfflineQueue(journal, config.nodeId, config.offlineMax), outbox: new EmbeddedOutbox(journal, config.nodeId) } : null;
  const a = {
    directory,
    tokens: redis ? new RedisTokenStore(redis) : new EmbeddedTokenStore(),
    throttle: redis ? new RedisThrottle(redis) : new EmbeddedThrottle(),
    presence: redis ? new RedisPresence(redis, config.nodeId, config.presenceHeartbeatMs) : new EmbeddedPresence(config.nodeId),
    bus: redis ? new RedisClusterBus(redis, config.nodeId) : new EmbeddedClusterBus(config.nodeId, EmbeddedClusterHub.of(config.dataDir)),
    queue: redis ? new RedisOfflineQueue(redis, config.offlineMax) : embedded!.queue,
    groups: redis ? new RedisGroups(redis) : new EmbeddedGroups(config.dataDir),
    outbox: redis ? new RedisOutbox(redis, config.nodeId) : embedded!.outbox,
    eventLog: config.kafka ? kafkaEventLog(config, `parley-${config.nodeId}`) : new EmbeddedEventLog(config.dataDir, { fsync: config.embeddedFsync, maxBatch: embeddedLogBatch(config) }),
    archive: options.archive ?? createArchive(config),
    blobs: config.s3
      ? new MinioBlobStore({ ...config.s3, expireDays: config.attachments.expireDays })
      : new EmbeddedBlobStore({
          dir: path.join(config.dataDir, 'blobs'),
          expireDays: config.attachments.expireDays,
          maxUploadBytes: config.attachments.maxBytes + 1024 * 1024,
          fsync: config.embeddedFsync,
        }),
  };
  const acceptStore = redis ? new RedisAcceptStore(redis, config.nodeId, config.offlineMax) : new EmbeddedAcceptStore(journal!, embedded!.queue, embedded!.outbox);
  return {
    ...a,
    acceptStore,
    redis,
    journal,
    describe: () => ({
      directory: a.directory.adapter,
      tokens: a.tokens.adapter,
      throttle: a.throttle.adapter,
      acceptStore: acceptStore.adapter,
      presence: a.presence.adapter,
      clusterBus: a.bus.adapter,
      offlineQueue: a.queue.adapter,
      groups: a.groups.adapter,
      outbox: a.outbox.adapter,
      eventLog: a.eventLog.adapter,
      archive: a.archive.adapter,
      blobStore: a.blobs.adapter,
    }),
    ready: async (scope) => {
      const pings: Record<string, () => Promise<boolean>> = {
        directory: () => a.directory.ping(),
        eventLog: () => a.eventLog.ping(),
        archive: () => a.archive.ping(),
        blobStore: () => a.blobs.ping(),
      };
      if (redis) pings.redis = () => redis.ping().then(() => true, () => false);
      const parts = Object.keys(pings).filter((part) => scope !== 'chat' || CHAT_BACKENDS.includes(part));
      const answers = await Promise.all(parts.map((part) => pings[part]()));
      return Object.fromEntries(parts.map((part, i) => [part, answers[i]]));
    },
    close: async () => {
      await Promise.all([a.bus.close(), a.queue.close(), a.presence.close(), acceptStore.close(), a.throttle.close(), a.tokens.close(), a.directory.close()]);
      await Promise.all([a.groups.close(), a.outbox.close(), a.eventLog.close(), a.archive.close(), a.blobs.close()]);
      if (redis) await redis.quit().catch(() => redis.disconnect());
    },
  };
}

/**
 * The backends chat cannot go on without: sign-in (the directory) and, when configured, Redis (tokens,
 * queues, presence). Kafka, the archive and object storage are not among them: while they are down a broker
 * still accepts, stores and delivers (the outbox keeps the mirror), so a load balancer should keep sending
 * it clients (`/readyz?scope=chat`).
 */
export const CHAT_BACKENDS: readonly string[] = ['directory', 'redis'];

/**
 * Most records in one batch of the embedded event log (its bytes are capped at 1 MB, about a Kafka fetch).
 * On the consumer thread (the default) up to 2,000: the analytics jobs linger a second between batches, and
 * at 500 a batch filled first at 500 msg/s and more, so their per-batch work (checkpoints, partials, merged
 * rows, one synced LevelDB write each) ran four to ten times a second instead of once: 10–15 points of a core
 * at 2,000–5,000 msg/s (bench/HISTORY.md, round 17). Consumers on the broker's own event loop keep batches of
 * 500, as each batch holds that loop while it is handled.
 */
function embeddedLogBatch(config: Readonly<Config>): number {
  return config.consumerThread ? 2000 : 500;
}

