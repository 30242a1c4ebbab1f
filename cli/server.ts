// One Parley process: adapters, auth, broker, HTTP API and transports, started and stopped together.
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { authRoutes } from '../auth/routes.ts';
import { blobRoutes } from '../blob/routes.ts';
import { AttachmentService } from '../blob/service.ts';
import { AuthService } from '../auth/service.ts';
import { ParleyBroker } from '../broker/broker.ts';
import { groupRoutes } from '../broker/group-routes.ts';
import { GroupService } from '../broker/group-service.ts';
import { OutboxShipper } from '../broker/outbox-shipper.ts';
import { Recipients } from '../broker/recipients.ts';
import { Notifier } from '../consumers/notifier.ts';
import { webRoutes } from '../web/routes.ts';
import { registerAnalyticsRoutes } from '../analytics/service.ts';
import { createConsumers, type ConsumerRole, type Consumers } from '../consumers/consumers.ts';
import { ConsumerThread } from '../consumers/thread.ts';
import { historyRoutes } from '../consumers/history-routes.ts';
import { tcpServer } from '../broker/transport-tcp.ts';
import { tlsServer } from '../broker/transport-tls.ts';
import { attachWebSocket } from '../broker/transport-ws.ts';
import { createAdapters, type Adapters } from '../common/adapters.ts';
import { badRequest } from '../common/errors.ts';
import { maxPayloadBytes } from '../common/envelope.ts';
import { redisDurabilityProblem } from '../common/redis.ts';
import type { Config } from '../common/config.ts';
import { createHttp } from '../common/http.ts';
import { IdGenerator } from '../common/ids.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { createMetrics, type Metrics } from '../common/metrics.ts';

export type Role = 'broker' | 'archiver' | 'notifier' | 'analytics';
/** `notifier` runs only when a push webhook is configured. */
export const ROLES: readonly Role[] = ['broker', 'archiver', 'notifier', 'analytics'];

export interface Running {
  /** 0 when this process runs no broker. */
  mqttPort: number;
  httpPort: number;
  tlsPort: number | null;
  broker: ParleyBroker | null;
  shipper: OutboxShipper | null;
  /** The archiver and the analytics jobs, in their thread or inline; null when this process runs neither. */
  consumers: Consumers | null;
  /** The consumer thread, when they run in one. */
  consumerThread: ConsumerThread | null;
  notifier: Notifier | null;
  ports: Adapters;
  adapters: Record<string, string>;
  close(): Promise<void>;
}

/**
 * Partitions of the messages topic on the embedded event log. One process reads it, so partitions buy no
 * parallelism there; each one only costs its own fsync per append and its own batch, offset commit and RPC
 * per consumer group (7 groups). One partition cut the broker's CPU at 1,000 msg/s by about a fifth
 * (bench/HISTORY.md, round 4). A data directory made with more keeps its count.
 */
export const EMBEDDED_PARTITIONS = 1;

/**
 * Starts the given roles in this process: `broker` (MQTT, the HTTP API, the outbox shipper) and
 * `archiver` (the event-log consumer that fills the archive). Every role serves /healthz, /readyz and
 * /metrics on the HTTP port.
 */
export async function startParley(config: Readonly<Config>, log: Logger = createLogger(config.logLevel), roles: readonly Role[] = ROLES): Promise<Running> {
  const consumerRoles = roles.filter((r): r is ConsumerRole => r === 'archiver' || r === 'analytics');
  const thread = config.consumerThread && consumerRoles.length > 0 ? new ConsumerThread(config, log, consumerRoles) : null;
  // With the thread, the embedded archive is the thread's (one LevelDB, one opener) and read from here over RPC.
  const adapters = await createAdapters(config, { archive: thread?.archive ?? undefined });
  // An ack promises the message survives a crash of Redis too: say so at once when this Redis cannot keep that.
  const durability = adapters.redis ? await redisDurabilityProblem(adapters.redis) : null;
  if (durability) log.warn({ part: 'redis' }, durability);
  const metrics = createMetrics();
  if (adapters.journal) {
    adapters.journal.onSync = (seconds) => metrics.journalFsyncSeconds.observe(seconds);
    adapters.journal.onCompacted = (seconds) => metrics.journalCompactionSeconds.observe(seconds);
    adapters.journal.onCompactionFailed = (err) => log.error({ err }, 'journal compaction failed: the journal keeps its records and tries again later');
  }
  const setup = backendSetup(config, adapters, log);
  // The consumer roles read the event log and write the archive from the start: they wait for both.
  if (consumerRoles.length > 0) await setup.topic();
  thread?.start(adapters.eventLog);
  try {
    if (consumerRoles.length > 0) {
      await setup.schema();
      await setup.bucket();
    } else setup.inBackground();
    const http = createHttp(log);
    http.get('/healthz', async () => ({ status: 'ok', roles }));
    // `?scope=chat`: only what chat needs (CHAT_BACKENDS), for load balancers, which must not take every
    // broker out of service while Kafka, HBase or object storage is down.
    http.get('/readyz', async (req, reply) => {
      const { scope } = req.query as { scope?: string };
      if (scope !== undefined && scope !== 'chat') throw badRequest('scope is chat or absent');
      const checks = await adapters.ready(scope);
      const ok = Object.values(checks).every(Boolean);
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks, adapters: adapters.describe() });
    });
    let consumers: Consumers | null = null;
    http.get('/metrics', async (_req, reply) => {
      const own = await metrics.registry.metrics();
      // The consumer thread's counters (its own registry, disjoint names) follow this thread's.
      const theirs = (await consumers?.metrics()) ?? '';
      return reply.type(metrics.registry.contentType).send(theirs ? `${own}${theirs}` : own);
    });

    const broker = roles.includes('broker') ? await startBroker(config, log, metrics, adapters, http) : null;
    if (roles.includes('analytics')) registerAnalyticsRoutes(http, { config, log: log.child({ part: 'analytics' }), adapters });
    await http.listen({ host: config.host, port: config.httpPort });
    if (thread) {
      await thread.startConsumers();
      consumers = thread;
    } else if (consumerRoles.length > 0) {
      const inline = createConsumers({ config, log, eventLog: adapters.eventLog, archive: adapters.archive, registry: metrics.registry, roles: consumerRoles });
      await inline.start();
      consumers = inline;
    }
    const notifier =
      roles.includes('notifier') && config.push
        ? new Notifier(adapters.eventLog, config.messagesTopic, adapters.presence, config.push, log.child({ part: 'notifier' }))
        : null;
    await notifier?.start();

    const running: Running = {
      mqttPort: broker ? (broker.tcp.address() as AddressInfo).port : 0,
      httpPort: (http.server.address() as AddressInfo).port,
      tlsPort: broker?.tls ? (broker.tls.address() as AddressInfo).port : null,
      broker: broker?.broker ?? null,
      shipper: broker?.shipper ?? null,
      consumers,
      consumerThread: thread,
      notifier,
      ports: adapters,
      adapters: adapters.describe(),
      async close() {
        setup.stop();
        await broker?.close();
        await consumers?.stop();
        await notifier?.stop();
        await http.close();
        await adapters.close();
      },
    };
    log.info({ roles, consumers: thread ? 'thread' : 'inline', mqtt: running.mqttPort, http: running.httpPort, tls: running.tlsPort, adapters: running.adapters, dataDir: config.dataDir, node: config.nodeId }, 'parley started');
    return running;
  } catch (err) {
    // A start that fails half-way (a port in use, a backend down) leaves no thread behind it.
    setup.stop();
    await thread?.stop();
    throw err;
  }
}

/** How long a broker waits between tries at a backend's setup that failed. */
const SETUP_RETRY_MS = 5000;

/**
 * The event log's topic, the archive's tables and the attachments' bucket, made if missing. A process with
 * a consumer role waits for them. A broker alone does not: Kafka, HBase or object storage down must not keep
 * chat from starting (DESIGN.md: a Kafka outage delays the mirror, never blocks chat; the outbox keeps what
 * it cannot ship). It makes them in the background, trying again every few seconds until each is done.
 */
function backendSetup(config: Readonly<Config>, adapters: Adapters, log: Logger) {
  const topic = () => adapters.eventLog.ensureTopic(config.messagesTopic, config.kafka?.partitions ?? EMBEDDED_PARTITIONS);
  const schema = () => adapters.archive.ensureSchema();
  const bucket = () => adapters.blobs.ensureBucket();
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const untilDone = async (what: string, step: () => Promise<unknown>, tries = 0): Promise<void> => {
    try {
      await step();
      if (tries > 0) log.info({ part: 'setup' }, `${what} ready after ${tries + 1} tries`);
    } catch (err) {
      if (stopped) return;
      if (tries === 0) log.warn({ part: 'setup', err }, `${what} not ready; chat goes on, trying again every ${SETUP_RETRY_MS / 1000} s`);
      const timer = setTimeout(() => {
        timers.delete(timer);
        void untilDone(what, step, tries + 1);
      }, SETUP_RETRY_MS);
      timer.unref();
      timers.add(timer);
    }
  };
  return {
    topic,
    schema,
    bucket,
    inBackground() {
      void untilDone('the event-log topic', topic);
      void untilDone('the archive schema', schema);
      void untilDone('the attachment bucket', bucket);
    },
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}

async function startBroker(config: Readonly<Config>, log: Logger, metrics: Metrics, adapters: Adapters, http: FastifyInstance) {
  const auth = new AuthService({ config, directory: adapters.directory, tokens: adapters.tokens, throttle: adapters.throttle });
  const recipients = new Recipients(adapters.directory);
  const attachments = new AttachmentService({ store: adapters.blobs, settings: config.attachments, log: log.child({ part: 'blob' }) });
  const shipper = new OutboxShipper(adapters.outbox, adapters.eventLog, config.messagesTopic, log.child({ part: 'outbox' }), {
    onBacklog: (n) => metrics.outboxLength.set(n),
    warnAt: config.outboxWarn,
    lingerMs: config.outboxLingerMs,
  });
  const broker = await ParleyBroker.create({
    config,
    log,
    metrics,
    ids: new IdGenerator(config.nodeId),
    auth,
    recipients,
    attachments,
    groups: adapters.groups,
    outboxFilled: () => shipper.poke(),
    store: adapters.acceptStore,
    queue: adapters.queue,
    presence: adapters.presence,
    bus: adapters.bus,
  });
  authRoutes(http, auth);
  blobRoutes(http, { auth, attachments, store: adapters.blobs, publicUrl: config.attachments.publicUrl });
  groupRoutes(http, auth, new GroupService(adapters.groups, recipients, config.groupMaxMembers));
  historyRoutes(http, auth, adapters.archive, {
    joinedAt: async (group, user) => (await adapters.groups.get(group))?.members.find((m) => m.userId === user)?.joinedAt ?? null,
  });
  webRoutes(http);
  // A WebSocket frame holds one MQTT packet or part of one: the largest valid payload, its topic and header fit.
  attachWebSocket(http.server, broker, maxPayloadBytes(config.maxBodyBytes) + 64 * 1024);

  const tcp = tcpServer(broker);
  await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(config.mqttPort, config.host, resolve));
  const tls = config.tls ? tlsServer(broker, config.tls.cert, config.tls.key) : null;
  if (tls && config.tls) await new Promise<void>((resolve, reject) => tls.once('error', reject).listen(config.tls!.port, config.host, resolve));
  shipper.start();
  return {
    broker,
    shipper,
    tcp,
    tls,
    async close() {
      tcp.close();
      tls?.close();
      await broker.close();
      await shipper.stop();
    },
  };
}
