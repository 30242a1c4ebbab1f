// One Parley process: adapters, auth, broker, HTTP API and transports, started and stopped together.
import type { AddressInfo } from 'node:net';
import { authRoutes } from '../auth/routes.ts';
import { AuthService } from '../auth/service.ts';
import { ParleyBroker } from '../broker/broker.ts';
import { Recipients } from '../broker/recipients.ts';
import { tcpServer } from '../broker/transport-tcp.ts';
import { tlsServer } from '../broker/transport-tls.ts';
import { attachWebSocket } from '../broker/transport-ws.ts';
import { createAdapters, type Adapters } from '../common/adapters.ts';
import type { Config } from '../common/config.ts';
import { createHttp } from '../common/http.ts';
import { IdGenerator } from '../common/ids.ts';
import { createLogger, type Logger } from '../common/log.ts';
import { createMetrics } from '../common/metrics.ts';

export interface Running {
  mqttPort: number;
  httpPort: number;
  tlsPort: number | null;
  broker: ParleyBroker;
  ports: Adapters;
  adapters: Record<string, string>;
  close(): Promise<void>;
}

export async function startParley(config: Readonly<Config>, log: Logger = createLogger(config.logLevel)): Promise<Running> {
  const adapters = await createAdapters(config);
  const metrics = createMetrics();
  const auth = new AuthService({ config, directory: adapters.directory, tokens: adapters.tokens, throttle: adapters.throttle });
  const recipients = new Recipients(adapters.directory);
  const broker = await ParleyBroker.create({
    config,
    log,
    metrics,
    ids: new IdGenerator(config.nodeId),
    auth,
    recipients,
    dedupe: adapters.dedupe,
    queue: adapters.queue,
    presence: adapters.presence,
  });

  const http = createHttp(log);
  authRoutes(http, auth);
  http.get('/healthz', async () => ({ status: 'ok' }));
  http.get('/readyz', async (_req, reply) => {
    const checks = await adapters.ready();
    const ok = Object.values(checks).every(Boolean);
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', checks, adapters: adapters.describe() });
  });
  http.get('/metrics', async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  attachWebSocket(http.server, broker, config.maxBodyBytes * 2 + 64 * 1024);
  await http.listen({ host: config.host, port: config.httpPort });

  const tcp = tcpServer(broker);
  await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(config.mqttPort, config.host, resolve));
  const tls = config.tls ? tlsServer(broker, config.tls.cert, config.tls.key) : null;
  if (tls && config.tls) await new Promise<void>((resolve, reject) => tls.once('error', reject).listen(config.tls!.port, config.host, resolve));

  const running: Running = {
    mqttPort: (tcp.address() as AddressInfo).port,
    httpPort: (http.server.address() as AddressInfo).port,
    tlsPort: tls ? (tls.address() as AddressInfo).port : null,
    broker,
    ports: adapters,
    adapters: adapters.describe(),
    async close() {
      tcp.close();
      tls?.close();
      await broker.close();
      await http.close();
      await adapters.close();
    },
  };
  log.info({ mqtt: running.mqttPort, http: running.httpPort, tls: running.tlsPort, adapters: running.adapters, dataDir: config.dataDir, node: config.nodeId }, 'parley started');
  return running;
}
