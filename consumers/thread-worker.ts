// The consumer thread's entry (see consumers/thread.ts): the archiver and the analytics jobs on their own
// event loop, reading the broker thread's embedded event log over RPC (or Kafka with their own client),
// writing the archive they own (embedded, served back to the broker thread) or HBase.
import { Registry } from 'prom-client';
import { parentPort, workerData } from 'node:worker_threads';
import { createArchive, kafkaEventLog } from '../common/pipeline-adapters.ts';
import { RpcEventLog } from '../common/event-log-rpc.ts';
import { createLogger } from '../common/log.ts';
import { RpcEndpoint } from '../common/rpc.ts';
import { serveArchive } from './archive-rpc.ts';
import { createConsumers } from './consumers.ts';
import type { ThreadData } from './thread.ts';

const { config, roles } = workerData as ThreadData;
const rpc = new RpcEndpoint(parentPort!);
const log = createLogger(config.logLevel).child({ thread: 'consumers' });
const eventLog = config.kafka ? kafkaEventLog(config, `parley-${config.nodeId}-consumers`) : new RpcEventLog(rpc, 'embedded');
const archive = createArchive(config);
const served = config.hbase ? null : serveArchive(rpc, archive);
const registry = new Registry();
const consumers = createConsumers({ config, log, eventLog, archive, registry, roles });

rpc.serve('consumers.start', async () => {
  await archive.ensureSchema();
  await consumers.start();
});
rpc.serve('consumers.archived', () => consumers.archived());
rpc.serve('consumers.metrics', () => registry.metrics());
rpc.serve('consumers.stop', async () => {
  await consumers.stop();
  await served?.stop();
  await archive.close();
  await eventLog.close();
});
