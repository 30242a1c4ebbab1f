// The event log and archive adapters that each consuming thread opens for itself (Kafka gets one client per
// thread; HBase one Thrift connection; the embedded archive one LevelDB, in the thread that writes it).
// Apart from adapters.ts so that the consumer thread loads these and not every other port's adapters.
import type { Archive } from '../consumers/archive.ts';
import { EmbeddedArchive } from '../consumers/archive-embedded.ts';
import { HBaseArchive } from '../consumers/archive-hbase.ts';
import type { Config } from './config.ts';
import { KafkaEventLog } from './event-log-kafka.ts';

/** The Kafka event log (config.kafka must be set). */
export function kafkaEventLog(config: Readonly<Config>, clientId: string): KafkaEventLog {
  const kafka = config.kafka!;
  return new KafkaEventLog(kafka.brokers, clientId, { partitions: kafka.partitions, replicationFactor: kafka.replication });
}

export function createArchive(config: Readonly<Config>): Archive {
  return config.hbase ? new HBaseArchive(config.hbase) : new EmbeddedArchive(config.dataDir, { fsync: config.embeddedFsync });
}
