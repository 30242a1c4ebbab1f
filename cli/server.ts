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
import { Archiver } from '../consumers/archiver.ts';
import { Notifier } from '../consumers/notifier.ts';
import { webRoutes } from '../web/routes.ts';
import { Analytics } from '../analytics/service.ts';
import { historyRoutes } from '../consumers/history-routes.ts';
import { tcpServer } from '../broker/transport-tcp.ts';
import { tlsServer } from '../broker/transport-tls.ts';
import { attachWebSocket } from '../broker/transport-ws.ts';
import { createAdapters, type Adapters } from '../common/adapters.ts';
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
  archiver: Archiver | null;
  notifier: Notifier | null;
  analytics: Analytics | null;
  ports: Adapters;
  adapters: Record<string, string>;
  close(): Promise<void>;
}

/**
 * Starts the given roles in this process: `broker` (MQTT, the HTTP API, the outbox shipper) and
 * `archiver` (the event-log consumer that fills the archive). Every role serves /healthz, /readyz and
 * /metrics on the HTTP port.
 */
export async function startParley(config: Readonly<Config>, log: Logger = createLogger(config.logLevel), roles: readonly Role[] = ROLES): Promise<Running> {
  const adapters = await createAdapters(config);
  const metrics = createMetrics();
  await adapters.eventLog.ensureTopic(config.messagesTopic, config.kafka?.partitions ?? 6);
  await adapters.archive.ensureSchema();
  await adapters.blobs.ensureBucket();
  const http = createHttp(log);
  http.get('/healthz', async () => ({ status: 'ok', roles }));
  http.get('/readyz', async (_req, reply) => {
    const checks = await adapters.ready();
    const ok = Object.values(checks).every(Boolean);
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks, adapters: adapters.describe() });
  });
  http.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));

  const broker = roles.includes('broker') ? await startBroker(config, log, metrics, adapters, http) : null;
  const analytics = roles.includes('analytics') ? new Analytics({ config, log: log.child({ part: 'analytics' }), adapters, http, registry: metrics.registry }) : null;
  await http.listen({ host: config.host, port: config.httpPort });
  const archiver = roles.includes('archiver') ? new Archiver(adapters.eventLog, config.messagesTopic, adapters.archive, log.child({ part: 'archiver' }), config.archiveLingerMs) : null;
  await archiver?.start();
  const notifier =
    roles.includes('notifier') && config.push
      ? new Notifier(adapters.eventLog, config.messagesTopic, adapters.presence, config.push, log.child({ part: 'notifier' }))
      : null;
  await notifier?.start();
  await analytics?.start();

  const running: Running = {
    mqttPort: broker ? (broker.tcp.address() as AddressInfo).port : 0,
    httpPort: (http.server.address() as AddressInfo).port,
    tlsPort: broker?.tls ? (broker.tls.address() as AddressInfo).port : null,
    broker: broker?.broker ?? null,
    shipper: broker?.shipper ?? null,
    archiver,
    notifier,
    analytics,
    ports: adapters,
    adapters: adapters.describe(),
    async close() {
      await broker?.close();
      await archiver?.stop();
      await notifier?.stop();
      await analytics?.stop();
      await http.close();
      await adapters.close();
    },
  };
  log.info({ roles, mqtt: running.mqttPort, http: running.httpPort, tls: running.tlsPort, adapters: running.adapters, dataDir: config.dataDir, node: config.nodeId }, 'parley started');
  return running;
}

async function startBroker(config: Readonly<Config>, log: Logger, metrics: Metrics, adapters: Adapters, http: FastifyInstance) {
  const auth = new AuthService({ config, directory: adapters.directory, tokens: adapters.tokens, throttle: adapters.throttle });
  const recipients = new Recipients(adapters.directory);
  const attachments = new AttachmentService({ store: adapters.blobs, settings: config.attachments, log: log.child({ part: 'blob' }) });
  const shipper = new OutboxShipper(adapters.outbox, adapters.eventLog, config.messagesTopic, log.child({ part: 'outbox' }), (n) => metrics.outboxLength.set(n), config.outboxWarn, config.outboxLingerMs);
  const broker = await ParleyBroker.create({
    config,
    log,
    metrics,
    ids: new IdGenerator(config.nodeId),
    auth,
    recipients,
    attachments,
    groups: adapters.groups,
    outbox: adapters.outbox,
    outboxFilled: () => shipper.poke(),
    dedupe: adapters.dedupe,
    queue: adapters.queue,
    presence: adapters.presence,
  });
  authRoutes(http, auth);
  blobRoutes(http, { auth, attachments, store: adapters.blobs, publicUrl: config.attachments.publicUrl });
  groupRoutes(http, auth, new GroupService(adapters.groups, recipients, config.groupMaxMembers));
  historyRoutes(http, auth, adapters.archive, {
    joinedAt: async (group, user) => (await adapters.groups.get(group))?.members.find((m) => m.userId === user)?.joinedAt ?? null,
  });
  webRoutes(http);
  attachWebSocket(http.server, broker, config.maxBodyBytes * 2 + 64 * 1024);

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
