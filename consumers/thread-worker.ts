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
import { CONSUMER_THREAD_NAME, settleThread } from './thread-priority.ts';
import { FAULT_EXIT_CODE, type ThreadData } from './thread.ts';

const { config, roles } = workerData as ThreadData;
const rpc = new RpcEndpoint(parentPort!);
const log = createLogger(config.logLevel).child({ thread: 'consumers' });
// First, before this thread opens anything: it yields the CPU to the broker's thread (thread-priority.ts).
const settled = settleThread(CONSUMER_THREAD_NAME, config.consumerNice);
for (const problem of settled.problems) log.warn({ tid: settled.tid }, `consumer thread: ${problem}`);
log.debug({ tid: settled.tid, nice: settled.nice }, 'consumer thread started');
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
/**
 * Ends what the thread opened, in order: consumers (their batches), the archive's RPC, the archive, the log.
 * Once: a stop asked for while a fault closes them (or the other way round) waits for the same closing.
 */
let closing: Promise<void> | null = null;
function closeAll(): Promise<void> {
  closing ??= (async () => {
    await consumers.stop();
    await served?.stop();
    await archive.close();
    await eventLog.close();
  })();
  return closing;
}

rpc.serve('consumers.stop', closeAll);

// A fault in this thread (an exception nothing caught) ends it, and the broker thread starts it again
// (consumers/thread.ts); what it had not committed is handed out again. It ends only once its stores are
// closed: a thread that exits with a LevelDB database open, an iterator in use, can take the whole process
// down with it while Node tears the thread down (a failed LevelDB assertion or a SIGSEGV; seen when a test
// ended the thread with Worker.terminate() while it served history reads).
const CLOSE_ON_FAULT_MS = 10_000;
let failing = false;
function fail(err: unknown): void {
  if (failing) return;
  failing = true;
  log.error({ err }, 'consumer thread failed; closing its stores, then it ends and is started again');
  // Past the limit it ends anyway, its stores perhaps still open (the risk above): something of it is stuck.
  setTimeout(() => process.exit(1), CLOSE_ON_FAULT_MS).unref();
  closeAll().then(
    () => process.exit(FAULT_EXIT_CODE),
    (closeErr) => {
      log.error({ err: closeErr }, 'consumer thread could not close its stores');
      process.exit(1);
    },
  );
}
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);

// Tests only (PARLEY_FAULT_INJECTION=1, never set by a deployment): a fault the thread does not catch, thrown
// outside any call, as a bug in a consumer would be.
if (process.env.PARLEY_FAULT_INJECTION === '1') {
  rpc.serve('fault.uncaught', () => {
    setImmediate(() => {
      throw new Error('fault injected by a test');
    });
  });
}
