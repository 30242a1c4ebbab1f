// The outbox shipper between the embedded outbox (its journal) and the embedded event log, both real; a gate
// in front of the log refuses or slows its appends on demand. Every record reaches the log once, in order,
// and leaves the outbox only after; while the log refuses nothing is lost, the backlog is reported, and new
// messages do not cut the backoff short; a poke that comes while a batch is on its way is not lost; the
// outbox's length is read about once a second while records flow, not after every batch.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { EmbeddedOutbox } from '../broker/outbox-embedded.ts';
import { OutboxShipper, type ShipperOptions } from '../broker/outbox-shipper.ts';
import { EmbeddedEventLog } from '../common/event-log-embedded.ts';
import type { ConsumedRecord, EventLog, LogRecord, Subscription } from '../common/event-log.ts';
import { Journal } from '../common/journal.ts';
import { createLogger } from '../common/log.ts';
import { sleep, tempDir } from './contracts/support.ts';

const TOPIC = 'shipper.test';
const logger = createLogger('silent');

/** The real embedded log behind a gate: `refuse` fails appends, `delayMs` holds each one first; `appends` counts attempts. */
class Gate implements EventLog {
  readonly adapter = 'embedded';
  refuse = false;
  delayMs = 0;
  appends = 0;
  constructor(private readonly inner: EmbeddedEventLog) {}
  ensureTopic(topic: string, partitions: number) {
    return this.inner.ensureTopic(topic, partitions);
  }
  async append(topic: string, records: readonly LogRecord[]) {
    this.appends++;
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.refuse) throw new Error('event log refuses (test)');
    return this.inner.append(topic, records);
  }
  consume(options: Parameters<EventLog['consume']>[0]) {
    return this.inner.consume(options);
  }
  ping() {
    return this.inner.ping();
  }
  close() {
    return this.inner.close();
  }
}

interface Rig {
  outbox: EmbeddedOutbox;
  gate: Gate;
  shipper: OutboxShipper;
  /** Every record the log handed to a consumer, in order. */
  got: ConsumedRecord[];
  /** Every length the shipper reported. */
  backlog: number[];
  /** Calls of the outbox's length() that followed a peek which found records (an empty outbox is read at once, by design). */
  lengthReadsAfterRecords: () => number;
  append(records: LogRecord[]): Promise<void>;
  close(): Promise<void>;
}

async function rig(options: ShipperOptions = {}): Promise<Rig> {
  const [journalDir, logDir] = [await tempDir('shipper-journal'), await tempDir('shipper-log')];
  const outbox = new EmbeddedOutbox(Journal.open(journalDir.dir, 1, true), 1);
  const log = new EmbeddedEventLog(logDir.dir, { fsync: true, logger });
  const gate = new Gate(log);
  await gate.ensureTopic(TOPIC, 1);
  const got: ConsumedRecord[] = [];
  const sub: Subscription = await log.consume({ topic: TOPIC, group: 'test', fromBeginning: true, handle: async (b) => void got.push(...b) });
  let reads = 0;
  let lastPeek = 0;
  const peek = outbox.peek.bind(outbox);
  outbox.peek = async (limit) => {
    const batch = await peek(limit);
    lastPeek = batch.length;
    return batch;
  };
  const length = outbox.length.bind(outbox);
  outbox.length = () => {
    if (lastPeek > 0) reads++;
    return length();
  };
  const backlog: number[] = [];
  const shipper = new OutboxShipper(outbox, gate, TOPIC, logger, { onBacklog: (n) => backlog.push(n), ...options });
  shipper.start();
  return {
    outbox,
    gate,
    shipper,
    got,
    backlog,
    lengthReadsAfterRecords: () => reads,
    async append(records) {
      await outbox.append(records);
      shipper.poke();
    },
    async close() {
      await shipper.stop();
      await sub.stop();
      await log.close();
      await outbox.close();
      await journalDir.remove();
      await logDir.remove();
    },
  };
}

const records = (from: number, n: number): LogRecord[] => Array.from({ length: n }, (_, i) => ({ key: `c${(from + i) % 7}`, value: `{"n":${from + i}}` }));
const numbers = (rs: readonly LogRecord[]) => rs.map((r) => JSON.parse(r.value).n as number);
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Records 0…n-1 reached the log once each, in order (nothing more came in 100 ms), the outbox is empty and the gauge says so. */
async function allShipped(r: Rig, n: number): Promise<void> {
  await until(`${n} records in the log`, () => r.got.length >= n);
  await sleep(100);
  assert.deepEqual(numbers(r.got), range(0, n), 'each once, in order');
  assert.equal(await r.outbox.length(), 0);
  await until('the gauge at 0', () => r.backlog.at(-1) === 0);
}

describe('OutboxShipper', () => {
  let r: Rig;

  describe('shipping', () => {
    before(async () => {
      r = await rig({ lingerMs: 2 });
    });
    after(async () => r.close());

    it('ships every record once, in order, in batches of at most 1,000, and empties the outbox', async () => {
      await r.append(records(0, 1200));
      await r.append(records(1200, 900));
      await r.append(records(2100, 400));
      await allShipped(r, 2500);
      assert.ok(r.gate.appends >= 3, `appends: ${r.gate.appends}`);
    });
  });

  describe('while the event log refuses', () => {
    before(async () => {
      r = await rig({ lingerMs: 2 });
    });
    after(async () => r.close());

    it('keeps every record, reports the backlog, backs off whatever new messages arrive, and ships all once it accepts', async () => {
      r.gate.refuse = true;
      await r.append(records(0, 30));
      await until('the backlog of 30 reported', () => r.backlog.includes(30));
      const attempts = r.gate.appends;
      // A message every 10 ms for 1.2 s, each one a poke: the backoff (200, 400, 800 ms, …) is not cut short.
      for (let i = 0; i < 120; i++) {
        await r.append(records(30 + i, 1));
        await sleep(10);
      }
      const during = r.gate.appends - attempts;
      assert.ok(during <= 5, `${during} append attempts in 1.2 s of pokes`);
      assert.equal(r.got.length, 0, 'nothing reached the log');
      assert.equal(await r.outbox.length(), 150, 'nothing left the outbox');
      assert.ok(Math.max(...r.backlog) > 30, `a later failure reported the grown backlog: ${r.backlog.join(', ')}`);
      r.gate.refuse = false;
      await allShipped(r, 150);
    });
  });

  describe('pokes', () => {
    before(async () => {
      // An idle poll far longer than the test: only pokes move records here.
      r = await rig({ idlePollMs: 600_000 });
    });
    after(async () => r.close());

    it('does not lose a poke that came while a batch was on its way to the log', async () => {
      r.gate.delayMs = 300;
      await r.append(records(0, 1));
      await until('the first append under way', () => r.gate.appends === 1);
      await r.append(records(1, 1)); // poked while the shipper waits for the slow log
      r.gate.delayMs = 0;
      await until('both records in the log', () => r.got.length >= 2);
      assert.deepEqual(numbers(r.got), [0, 1]);
    });

    it('reads the outbox’s length about once a second while records flow, not after each batch', async () => {
      await until('idle', async () => (await r.outbox.length()) === 0 && r.got.length === 2);
      const reads = r.lengthReadsAfterRecords();
      const appendsBefore = r.gate.appends;
      for (let i = 0; i < 100; i++) {
        await r.append(records(2 + i, 1));
        await sleep(12);
      }
      await until('102 records in the log', () => r.got.length >= 102);
      const batches = r.gate.appends - appendsBefore;
      const lengths = r.lengthReadsAfterRecords() - reads;
      assert.ok(batches >= 10, `the records went in ${batches} batches`);
      assert.ok(lengths <= 5, `${lengths} reads of the length for ${batches} batches in ~1.2 s`);
      assert.deepEqual(numbers(r.got), range(0, 102));
    });
  });
});
