// The event pipeline's numbers (issue 4): archiver throughput against the broker's accept rate,
// ack-to-archived lag at a steady load, and the latency of a 50-message history page with a large archive.
//   npm run bench:pipeline [-- --stack] [--quick] [--rows N] [--json-out FILE]
// --stack uses the real Redis, Kafka and HBase from test/stack (started with `npm run stack:up`);
// without it everything is embedded. PARLEY_* variables in the environment override the bench's settings.
// Progress goes to stderr, a table and JSON to stdout / --json-out.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startParley, type Running } from '../cli/server.ts';
import { loadConfig } from '../common/config.ts';
import { conversationOf, type Envelope } from '../common/envelope.ts';
import { IdGenerator } from '../common/ids.ts';
import { createLogger } from '../common/log.ts';
import { Archiver } from '../consumers/archiver.ts';
import { loadStackEnv } from '../test/stack/env.ts';
import { http as httpAt, runBench, send as sendAt, users as usersAt } from './chat-client.ts';
import { newHistogram, quantileMs, record } from './histogram.ts';

const { values } = parseArgs({
  options: {
    stack: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    rows: { type: 'string' },
    'json-out': { type: 'string' },
  },
});
const quick = values.quick!;
const progress = (msg: string) => process.stderr.write(`[pipeline] ${msg}\n`);

function env(): Record<string, string> {
  const tag = Math.random().toString(36).slice(2, 8);
  const e: Record<string, string> = {
    PARLEY_HOST: '127.0.0.1',
    PARLEY_MQTT_PORT: '0',
    PARLEY_HTTP_PORT: '0',
    PARLEY_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-pipeline-')),
    PARLEY_LOG_LEVEL: 'warn',
    PARLEY_OFFLINE_MAX: '10000000',
  };
  if (values.stack) {
    const s = loadStackEnv();
    for (const k of ['PARLEY_REDIS_URL', 'PARLEY_KAFKA_BROKERS', 'PARLEY_HBASE_HOST', 'PARLEY_HBASE_PORT', 'PARLEY_HBASE_TRANSPORT']) {
      if (!s[k]) throw new Error(`${k} missing from .stack.env: run npm run stack:up`);
      e[k] = s[k];
    }
    e.PARLEY_REDIS_KEY_PREFIX = `bench${tag}:`;
    e.PARLEY_KAFKA_TOPIC = `bench.messages.${tag}`;
    e.PARLEY_HBASE_NAMESPACE = `bench${tag}`;
  }
  // PARLEY_* settings of the bench's own environment go on top (e.g. PARLEY_OUTBOX_LINGER_MS=10 to see the lag it buys).
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('PARLEY_') && v !== undefined) e[k] = v;
  return e;
}

const base = (p: Running) => `http://127.0.0.1:${p.httpPort}`;
const http = (p: Running, pathname: string, body?: unknown, token?: string) => httpAt(base(p), pathname, body, token);
const users = (p: Running, prefix: string, n: number) => usersAt(base(p), prefix, n);
const send = (p: Running, senders: { id: string; token: string }[], to: string, perSender: number, rate: number) =>
  sendAt({ base: base(p), mqttPort: p.mqttPort }, senders, to, perSender, rate);

const pct = (h: number[]) => ({ p50: quantileMs(h, 0.5), p99: quantileMs(h, 0.99) });

async function main() {
  const e = env();
  const config = loadConfig(e);
  const log = createLogger('warn');
  const adapters = values.stack ? 'redis + kafka + hbase' : 'embedded';
  progress(`adapters: ${adapters}`);
  // The broker alone first: messages pile up in the event log, then an archiver drains them.
  const p = await startParley(config, log, ['broker']);
  const results: Record<string, unknown> = { adapters, machine: { cpus: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30) }, date: new Date().toISOString() };
  try {
    const [receiver] = await users(p, 'brecv', 1);
    const senders = await users(p, 'bsend', quick ? 4 : 20);

    // 1. Broker accept rate, then archiver throughput over the backlog.
    const backlog = quick ? 2000 : 40_000;
    progress(`sending ${backlog} messages as fast as acks come back`);
    let t0 = performance.now();
    await send(p, senders, receiver.id, backlog / senders.length, 0);
    const acceptRate = backlog / ((performance.now() - t0) / 1000);
    progress(`broker accepted ${Math.round(acceptRate)} msg/s; waiting for the outbox to reach the event log`);
    while ((await p.ports.outbox.length()) > 0) await new Promise((r) => setTimeout(r, 100));
    const archiver = new Archiver(p.ports.eventLog, config.messagesTopic, p.ports.archive, log);
    t0 = performance.now();
    await archiver.start();
    while (archiver.archived < backlog) await new Promise((r) => setTimeout(r, 50));
    const archiveRate = backlog / ((performance.now() - t0) / 1000);
    progress(`archiver drained ${backlog} at ${Math.round(archiveRate)} msg/s`);
    results.throughput = { backlog, brokerAcceptPerSec: Math.round(acceptRate), archiverPerSec: Math.round(archiveRate), ratio: +(archiveRate / acceptRate).toFixed(2) };

    // 2. Ack → archived lag at a steady load, with the archiver running.
    const archivedAt = new Map<string, number>();
    const put = p.ports.archive.putMessages.bind(p.ports.archive);
    p.ports.archive.putMessages = async (batch) => {
      await put(batch);
      const now = performance.now();
      for (const b of batch) archivedAt.set(b.message.id, now);
    };
    const rate = quick ? 500 : 2000;
    const seconds = quick ? 4 : 20;
    progress(`steady load: ${rate} msg/s for ${seconds} s`);
    const acked = await send(p, senders, receiver.id, Math.round((rate * seconds) / senders.length), rate);
    const deadline = Date.now() + 120_000;
    while ([...acked.keys()].some((id) => !archivedAt.has(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const lag = newHistogram();
    for (const [id, at] of acked) if (archivedAt.has(id)) record(lag, (archivedAt.get(id)! - at) * 1000);
    results.lag = { rate, seconds, messages: acked.size, archived: [...acked.keys()].filter((id) => archivedAt.has(id)).length, ...pct(lag) };
    progress(`ack → archived lag p50 ${quantileMs(lag, 0.5)?.toFixed(1)} ms, p99 ${quantileMs(lag, 0.99)?.toFixed(1)} ms`);
    p.ports.archive.putMessages = put;
    await archiver.stop();

    // 3. History pages with a large archive: rows written straight to the archive, then pages read by HTTP.
    const rows = Number(values.rows ?? (quick ? 20_000 : values.stack ? 1_000_000 : 2_000_000));
    const readers = await users(p, 'bread', quick ? 2 : 10);
    const peers = quick ? 10 : 100;
    const ids = new IdGenerator(7);
    const perConversation = Math.ceil(rows / (readers.length * peers));
    progress(`loading ${rows} archived rows (${readers.length * peers} conversations × ${perConversation})`);
    let written = 0;
    const started = performance.now();
    for (let k = 0; k < perConversation && written < rows; k++) {
      const batch: { message: Envelope; participants: string[] }[] = [];
      for (const r of readers)
        for (let q = 0; q < peers; q++) {
          const { id, ts } = ids.next();
          const m: Envelope = { id, from: r.id, to: `peer${q}`, ts, cid: `h${k}`, kind: 'text', body: `history row ${k} of ${conversationOf({ from: r.id, to: `peer${q}` })}` };
          batch.push({ message: m, participants: [r.id, m.to] });
        }
      await p.ports.archive.putMessages(batch);
      written += batch.length;
      if (k % 50 === 0) progress(`  ${written} / ${rows} rows (${Math.round(written / ((performance.now() - started) / 1000))}/s)`);
    }
    const page = newHistogram();
    const reads = quick ? 200 : 2000;
    for (let i = 0; i < reads; i++) {
      const r = readers[i % readers.length];
      const peer = `peer${Math.floor(Math.random() * peers)}`;
      const t = performance.now();
      const res = await http(p, `/v1/conversations/user/${peer}/messages?limit=50`, undefined, r.token);
      record(page, (performance.now() - t) * 1000);
      if (res.messages.length !== Math.min(50, perConversation)) throw new Error(`page of ${res.messages.length} messages`);
    }
    results.historyPage = { rows: written, reads, limit: 50, ...pct(page) };
    progress(`history page (50) p50 ${quantileMs(page, 0.5)?.toFixed(2)} ms, p99 ${quantileMs(page, 0.99)?.toFixed(2)} ms over ${written} rows`);
  } finally {
    await p.close();
    if (!values.stack) fs.rmSync(e.PARLEY_DATA_DIR, { recursive: true, force: true });
  }
  return results;
}

runBench(main, values['json-out']);
