// The process's own counters for Prometheus (`GET /metrics`).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'parley_process_' });
  return {
    registry,
    accepted: new Counter({ name: 'parley_messages_accepted_total', help: 'Messages accepted and acked', labelNames: ['kind', 'transport'], registers: [registry] }),
    refused: new Counter({ name: 'parley_messages_refused_total', help: 'Publishes answered with an error envelope', labelNames: ['code'], registers: [registry] }),
    duplicates: new Counter({ name: 'parley_messages_duplicate_total', help: 'Resends acked again without delivery', registers: [registry] }),
    delivered: new Counter({ name: 'parley_deliveries_total', help: 'Envelopes written to devices', labelNames: ['source'], registers: [registry] }),
    outboxLength: new Gauge({ name: 'parley_outbox_length', help: 'Accepted messages not yet in the event log', registers: [registry] }),
    connections: new Gauge({ name: 'parley_mqtt_connections', help: 'Signed-in MQTT connections', labelNames: ['transport'], registers: [registry] }),
    signIns: new Counter({ name: 'parley_sign_ins_total', help: 'Sign-in attempts', labelNames: ['door', 'result'], registers: [registry] }),
    journalFsyncSeconds: new Histogram({
      name: 'parley_journal_fsync_seconds',
      help: 'fdatasync of one group commit of the embedded journal (offline queue and outbox), from its hand-off to the thread pool until the event loop runs its callback (a busy event loop lengthens it): every ack waits for one',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    journalCompactionSeconds: new Histogram({
      name: 'parley_journal_compaction_seconds',
      help: 'The longest one compaction of the embedded journal (rewritten to its live records when most are dead) held the event loop at once: its snapshot, a slice of it, or the swap',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers: [registry],
    }),
    acceptSeconds: new Histogram({
      name: 'parley_accept_seconds',
      help: 'Publish received to ack sent',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
