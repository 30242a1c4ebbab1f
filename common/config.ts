// Every environment variable Parley reads: its default and its check, in one place. Parsed once at
// start, frozen; a bad value stops start-up with a message naming the variable.
import path from 'node:path';
import { z } from 'zod';
import { maxPayloadBytes } from './envelope.ts';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');
const optional = z.string().min(1).optional();

const schema = z.object({
  PARLEY_HOST: z.string().min(1).default('127.0.0.1'),
  PARLEY_MQTT_PORT: int(0, 65535).default(1883),
  PARLEY_HTTP_PORT: int(0, 65535).default(8080),
  PARLEY_TLS_PORT: int(0, 65535).default(8883),
  PARLEY_TLS_CERT: optional,
  PARLEY_TLS_KEY: optional,
  PARLEY_DATA_DIR: z.string().min(1).default('./data'),
  PARLEY_NODE_ID: int(0, 1023).default(0),
  PARLEY_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  PARLEY_MAX_BODY_BYTES: int(1, 16 * 1024 * 1024).default(65536),
  PARLEY_OFFLINE_MAX: int(1, 10_000_000).default(10000),
  PARLEY_LOGIN_MAX_FAILURES: int(1, 1_000_000).default(10),
  PARLEY_LOGIN_MAX_FAILURES_PER_ADDRESS: int(1, 1_000_000).default(100),
  PARLEY_LOGIN_WINDOW_SECONDS: int(1, 86400).default(900),
  PARLEY_TOKEN_TTL_SECONDS: int(1, 365 * 86400).default(7 * 86400),
  PARLEY_DEDUPE_TTL_SECONDS: int(1, 30 * 86400).default(86400),
  PARLEY_SELF_REGISTRATION: bool.default(true),
  PARLEY_GROUP_MAX_MEMBERS: int(2, 100_000).default(1024),
  PARLEY_PUSH_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  PARLEY_PUSH_SECRET: z.string().min(16).optional(),
  PARLEY_PUSH_MAX_ATTEMPTS: int(1, 100).default(8),
  PARLEY_PUSH_BACKOFF_MS: int(1, 60_000).default(500),
  PARLEY_PRESENCE_HEARTBEAT_MS: int(100, 600_000).default(5000),
  // Embedded adapters only: false trades the no-loss guarantee for speed (benchmarks say which was used).
  PARLEY_EMBEDDED_FSYNC: bool.default(true),
  // The embedded journal compacts once it holds this many MB and most of its records are dead (0: once it
  // holds 10,000 records, most dead). Higher: fewer, larger compactions and longer replays at start.
  PARLEY_JOURNAL_COMPACT_MB: int(0, 4096).default(0),
  PARLEY_REDIS_URL: optional,
  PARLEY_REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]*$/).default(''),
  PARLEY_LDAP_URL: optional,
  PARLEY_LDAP_BASE_DN: optional,
  PARLEY_LDAP_USERS_DN: optional,
  PARLEY_LDAP_ADMIN_DN: optional,
  PARLEY_LDAP_ADMIN_PASSWORD: optional,
  PARLEY_KAFKA_BROKERS: optional,
  PARLEY_KAFKA_TOPIC: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/).default('parley.messages'),
  PARLEY_KAFKA_PARTITIONS: int(1, 10_000).default(6),
  PARLEY_KAFKA_REPLICATION: int(1, 16).default(1),
  PARLEY_OUTBOX_WARN: int(1, 100_000_000).default(100_000),
  PARLEY_ARCHIVE_LINGER_MS: int(0, 60_000).default(50),
  // The archiver and analytics jobs on a thread of their own (true) or on the broker's event loop.
  PARLEY_CONSUMER_THREAD: bool.default(true),
  // How many nice steps the consumer thread runs below the broker's thread (Linux; 0: the same priority).
  PARLEY_CONSUMER_NICE: int(0, 19).default(10),
  PARLEY_OUTBOX_LINGER_MS: int(0, 10_000).default(50),
  PARLEY_HBASE_HOST: optional,
  PARLEY_HBASE_PORT: int(1, 65535).default(9090),
  PARLEY_HBASE_TRANSPORT: z.enum(['framed', 'buffered']).default('framed'),
  PARLEY_HBASE_NAMESPACE: z.string().regex(/^[A-Za-z0-9_]{1,64}$/).default('parley'),
  PARLEY_ANALYTICS_LATENESS_MS: int(0, 86_400_000).default(60_000),
  PARLEY_ANALYTICS_EXACT_DISTINCT: int(1, 1_000_000).default(1000),
  PARLEY_ANALYTICS_OFFLINE_AFTER_MS: int(1, 86_400_000).default(10_000),
  PARLEY_ANALYTICS_REFRESH_MS: int(500, 3_600_000).default(5000),
  PARLEY_ANALYTICS_LINGER_MS: int(0, 60_000).default(1000),
  PARLEY_ANALYTICS_READERS: z
    .string()
    .default('')
    .transform((text, ctx) => {
      const list = text.split(',').map((s) => s.trim()).filter(Boolean);
      const bad = list.find((u) => !/^[a-z0-9][a-z0-9._-]{1,31}$/.test(u));
      if (bad !== undefined) {
        ctx.addIssue({ code: 'custom', message: `'${bad}' is not a user id` });
        return z.NEVER;
      }
      return list;
    }),
  PARLEY_MAX_ATTACHMENT_BYTES: int(1, 5 * 1024 ** 3).default(25 * 1024 * 1024),
  PARLEY_ATTACHMENT_TYPES: z
    .string()
    .default('image/*,video/mp4,audio/*,application/pdf,text/plain,application/zip')
    .transform((text, ctx) => {
      const list = text.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
      const bad = list.find((t) => !/^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,62})$/.test(t));
      if (list.length === 0 || bad !== undefined) {
        ctx.addIssue({ code: 'custom', message: `'${bad ?? ''}' is not type/subtype or type/*` });
        return z.NEVER;
      }
      return list;
    }),
  PARLEY_ATTACHMENT_UPLOAD_SECONDS: int(1, 7 * 86400).default(900),
  PARLEY_ATTACHMENT_DOWNLOAD_SECONDS: int(1, 7 * 86400).default(300),
  PARLEY_ATTACHMENT_EXPIRE_DAYS: int(0, 36500).default(365),
  PARLEY_ATTACHMENT_THUMBNAILS: bool.default(true),
  PARLEY_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  PARLEY_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  PARLEY_S3_PUBLIC_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  PARLEY_S3_ACCESS_KEY: optional,
  PARLEY_S3_SECRET_KEY: optional,
  PARLEY_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/).optional(),
  PARLEY_S3_REGION: z.string().min(1).default('us-east-1'),
});

type Env = z.infer<typeof schema>;

export interface Config {
  host: string;
  mqttPort: number;
  httpPort: number;
  tls: { port: number; cert: string; key: string } | null;
  dataDir: string;
  nodeId: number;
  logLevel: Env['PARLEY_LOG_LEVEL'];
  maxBodyBytes: number;
  offlineMax: number;
  login: { maxFailures: number; maxFailuresPerAddress: number; windowSeconds: number };
  tokenTtlSeconds: number;
  dedupeTtlSeconds: number;
  selfRegistration: boolean;
  groupMaxMembers: number;
  presenceHeartbeatMs: number;
  embeddedFsync: boolean;
  journalCompactBytes: number;
  redis: { url: string; keyPrefix: string } | null;
  ldap: { url: string; baseDn: string; usersDn: string; adminDn: string; adminPassword: string } | null;
  kafka: { brokers: string[]; partitions: number; replication: number } | null;
  /** The event-log topic every accepted message is mirrored to. */
  messagesTopic: string;
  /** How long the archiver lets records gather between batches of a partition. */
  archiveLingerMs: number;
  /** The archiver and the analytics jobs run in a worker thread rather than on the broker's event loop. */
  consumerThread: boolean;
  /** Nice steps the consumer thread runs below the broker's thread, so that it yields the CPU to deliveries and acks. */
  consumerNice: number;
  /** How long the outbox shipper lets records gather before it ships them after a quiet spell. */
  outboxLingerMs: number;
  /** Outbox length past which a Kafka outage is logged as an error rather than a warning. */
  outboxWarn: number;
  hbase: { host: string; port: number; transport: 'framed' | 'buffered'; namespace: string } | null;
  analytics: {
    /** Allowed lateness: the watermark is the max event time seen minus this. */
    latenessMs: number;
    /** Distinct senders counted exactly up to this many per window, by HyperLogLog beyond. */
    exactDistinct: number;
    /** A delivery slower than this is counted as one from the offline backlog. */
    offlineAfterMs: number;
    /** How often the dashboard reads the series again. */
    refreshMs: number;
    /** How long a job lets records gather before its next batch (its checkpoint and merge are per batch). */
    lingerMs: number;
    /** Users who may read analytics and see every conversation id; empty: every signed-in user, ids masked. */
    readers: string[];
  };
  attachments: {
    maxBytes: number;
    types: string[];
    uploadSeconds: number;
    downloadSeconds: number;
    expireDays: number;
    thumbnails: boolean;
    /** The origin clients reach this server at (embedded store links); the request's own when null. */
    publicUrl: string | null;
  };
  push: { url: string; secret: string; maxAttempts: number; backoffMs: number } | null;
  s3: { endpoint: string; publicEndpoint?: string; accessKey: string; secretKey: string; bucket: string; region: string } | null;
}

export class ConfigError extends Error {}

/** Kafka's default `message.max.bytes` (the test stack's and docker/compose.yaml's brokers keep it). */
export const KAFKA_MAX_RECORD_BYTES = 1_048_588;

export function loadConfig(env: Record<string, string | undefined> = process.env): Readonly<Config> {
  const parsed = schema.safeParse(Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('PARLEY_') && v !== '')));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const e = parsed.data;
  const need = (names: (keyof Env)[], group: string) => {
    const set = names.filter((n) => e[n] !== undefined);
    if (set.length > 0 && set.length < names.length) {
      const missing = names.filter((n) => e[n] === undefined);
      throw new ConfigError(`invalid configuration: ${group} needs ${missing.join(', ')} as well`);
    }
    return set.length === names.length;
  };
  const tls = need(['PARLEY_TLS_CERT', 'PARLEY_TLS_KEY'], 'TLS');
  const push = need(['PARLEY_PUSH_WEBHOOK_URL', 'PARLEY_PUSH_SECRET'], 'the push webhook');
  const s3 = need(['PARLEY_S3_ENDPOINT', 'PARLEY_S3_ACCESS_KEY', 'PARLEY_S3_SECRET_KEY', 'PARLEY_S3_BUCKET'], 'S3');
  const ldap = need(['PARLEY_LDAP_URL', 'PARLEY_LDAP_BASE_DN', 'PARLEY_LDAP_ADMIN_DN', 'PARLEY_LDAP_ADMIN_PASSWORD'], 'LDAP');
  const brokers = e.PARLEY_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean) ?? [];
  for (const b of brokers) if (!/^[A-Za-z0-9.-]+:[0-9]{1,5}$/.test(b)) throw new ConfigError(`invalid configuration: PARLEY_KAFKA_BROKERS entry ${JSON.stringify(b)} is not host:port`);
  // A message's event-log record (its envelope, the body JSON-escaped at up to six bytes a byte, and the
  // ids of a group's members) must fit one Kafka record batch, or the outbox could never ship it.
  const largestRecord = maxPayloadBytes(e.PARLEY_MAX_BODY_BYTES) + e.PARLEY_GROUP_MAX_MEMBERS * 35 + 1024;
  if (brokers.length && largestRecord > KAFKA_MAX_RECORD_BYTES)
    throw new ConfigError(
      `invalid configuration: with Kafka, PARLEY_MAX_BODY_BYTES (${e.PARLEY_MAX_BODY_BYTES}) and PARLEY_GROUP_MAX_MEMBERS (${e.PARLEY_GROUP_MAX_MEMBERS}) allow event-log records of ${largestRecord} bytes, over Kafka's ${KAFKA_MAX_RECORD_BYTES}-byte message.max.bytes; lower them`,
    );
  const config: Config = {
    host: e.PARLEY_HOST,
    mqttPort: e.PARLEY_MQTT_PORT,
    httpPort: e.PARLEY_HTTP_PORT,
    tls: tls ? { port: e.PARLEY_TLS_PORT, cert: e.PARLEY_TLS_CERT!, key: e.PARLEY_TLS_KEY! } : null,
    dataDir: path.resolve(e.PARLEY_DATA_DIR),
    nodeId: e.PARLEY_NODE_ID,
    logLevel: e.PARLEY_LOG_LEVEL,
    maxBodyBytes: e.PARLEY_MAX_BODY_BYTES,
    offlineMax: e.PARLEY_OFFLINE_MAX,
    login: {
      maxFailures: e.PARLEY_LOGIN_MAX_FAILURES,
      maxFailuresPerAddress: e.PARLEY_LOGIN_MAX_FAILURES_PER_ADDRESS,
      windowSeconds: e.PARLEY_LOGIN_WINDOW_SECONDS,
    },
    tokenTtlSeconds: e.PARLEY_TOKEN_TTL_SECONDS,
    dedupeTtlSeconds: e.PARLEY_DEDUPE_TTL_SECONDS,
    selfRegistration: e.PARLEY_SELF_REGISTRATION,
    groupMaxMembers: e.PARLEY_GROUP_MAX_MEMBERS,
    presenceHeartbeatMs: e.PARLEY_PRESENCE_HEARTBEAT_MS,
    embeddedFsync: e.PARLEY_EMBEDDED_FSYNC,
    journalCompactBytes: e.PARLEY_JOURNAL_COMPACT_MB * 1024 * 1024,
    redis: e.PARLEY_REDIS_URL ? { url: e.PARLEY_REDIS_URL, keyPrefix: e.PARLEY_REDIS_KEY_PREFIX } : null,
    ldap: ldap
      ? {
          url: e.PARLEY_LDAP_URL!,
          baseDn: e.PARLEY_LDAP_BASE_DN!,
          usersDn: e.PARLEY_LDAP_USERS_DN ?? `ou=users,${e.PARLEY_LDAP_BASE_DN}`,
          adminDn: e.PARLEY_LDAP_ADMIN_DN!,
          adminPassword: e.PARLEY_LDAP_ADMIN_PASSWORD!,
        }
      : null,
    kafka: brokers.length ? { brokers, partitions: e.PARLEY_KAFKA_PARTITIONS, replication: e.PARLEY_KAFKA_REPLICATION } : null,
    outboxWarn: e.PARLEY_OUTBOX_WARN,
    archiveLingerMs: e.PARLEY_ARCHIVE_LINGER_MS,
    consumerThread: e.PARLEY_CONSUMER_THREAD,
    consumerNice: e.PARLEY_CONSUMER_NICE,
    outboxLingerMs: e.PARLEY_OUTBOX_LINGER_MS,
    messagesTopic: e.PARLEY_KAFKA_TOPIC,
    hbase: e.PARLEY_HBASE_HOST
      ? { host: e.PARLEY_HBASE_HOST, port: e.PARLEY_HBASE_PORT, transport: e.PARLEY_HBASE_TRANSPORT, namespace: e.PARLEY_HBASE_NAMESPACE }
      : null,
    analytics: {
      latenessMs: e.PARLEY_ANALYTICS_LATENESS_MS,
      exactDistinct: e.PARLEY_ANALYTICS_EXACT_DISTINCT,
      offlineAfterMs: e.PARLEY_ANALYTICS_OFFLINE_AFTER_MS,
      refreshMs: e.PARLEY_ANALYTICS_REFRESH_MS,
      lingerMs: e.PARLEY_ANALYTICS_LINGER_MS,
      readers: e.PARLEY_ANALYTICS_READERS,
    },
    attachments: {
      maxBytes: e.PARLEY_MAX_ATTACHMENT_BYTES,
      types: e.PARLEY_ATTACHMENT_TYPES,
      uploadSeconds: e.PARLEY_ATTACHMENT_UPLOAD_SECONDS,
      downloadSeconds: e.PARLEY_ATTACHMENT_DOWNLOAD_SECONDS,
      expireDays: e.PARLEY_ATTACHMENT_EXPIRE_DAYS,
      thumbnails: e.PARLEY_ATTACHMENT_THUMBNAILS,
      publicUrl: e.PARLEY_PUBLIC_URL ?? null,
    },
    push: push ? { url: e.PARLEY_PUSH_WEBHOOK_URL!, secret: e.PARLEY_PUSH_SECRET!, maxAttempts: e.PARLEY_PUSH_MAX_ATTEMPTS, backoffMs: e.PARLEY_PUSH_BACKOFF_MS } : null,
    s3: s3
      ? {
          endpoint: e.PARLEY_S3_ENDPOINT!,
          publicEndpoint: e.PARLEY_S3_PUBLIC_ENDPOINT,
          accessKey: e.PARLEY_S3_ACCESS_KEY!,
          secretKey: e.PARLEY_S3_SECRET_KEY!,
          bucket: e.PARLEY_S3_BUCKET!,
          region: e.PARLEY_S3_REGION,
        }
      : null,
  };
  return Object.freeze(config);
}
