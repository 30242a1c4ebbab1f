// One load generator process: holds a share of the clients on raw sockets, publishes at the rate the
// orchestrator asks for and measures latency at the receiving end. Senders and their peers live in the
// same process, so a worker knows by itself when every message it sent has arrived.
import { RawClient, encodeTopic } from './client.ts';
import { newHistogram, record } from './histogram.ts';
import { recordSendLag, recordTimeline } from './tail.ts';
import type { ClientSpec, Command, Ran, Reply } from './protocol.ts';

interface Held {
  spec: ClientSpec;
  client: RawClient;
  topic: Buffer | null;
  /** When each of its publishes not yet PUBACKed was sent, by packet id (hrtime ns). */
  sentAt: Map<number, bigint>;
}

const TILDE = 0x7e;
const ACK = Buffer.from('"kind":"ack"');
const ERROR = Buffer.from('"kind":"error"');
// One nonce per worker process and run: cids stay unique across runs that share a Redis.
const nonce = `${process.pid.toString(36)}${Date.now().toString(36)}`;

let held: Held[] = [];
let parley = false;
let stats = freshStats(-1);
let windowStart = 0n;
/** The step's origin, the same in every generator: the timeline's buckets are the same 100 ms in all of them. */
let origin = 0n;
let windowEnd = 0n;
let lastReceive = 0n;
let disconnects = 0;
let seq = 0;

function freshStats(step: number): Ran {
  return {
    type: 'ran', step, sent: 0, pubacks: 0, appAcks: 0, errors: 0, errorSamples: [], received: 0,
    stray: 0, windowMs: 0, spanMs: 0, drainMs: 0, complete: false, disconnects: 0, hist: newHistogram(), ackHist: newHistogram(), timeline: [],
  };
}

const send = (reply: Reply) => process.send!(reply);

/** Body of every message: `~step.sentAtNs~` then padding; the clock is CLOCK_MONOTONIC, shared by all processes. */
function onPublish(payload: Buffer, qos: number): void {
  const now = process.hrtime.bigint();
  if (qos === 0) {
    if (payload.indexOf(ACK) >= 0) stats.appAcks++;
    else if (payload.indexOf(ERROR) >= 0) {
      stats.errors++;
      if (stats.errorSamples.length < 3) stats.errorSamples.push(payload.toString('utf8', 0, 300));
    }
    return;
  }
  const a = payload.indexOf(TILDE);
  const b = a < 0 ? -1 : payload.indexOf(TILDE, a + 1);
  if (b < 0) return;
  const stamp = payload.toString('latin1', a + 1, b);
  const dot = stamp.indexOf('.');
  if (Number(stamp.slice(0, dot)) !== stats.step) {
    stats.stray++;
    return;
  }
  stats.received++;
  lastReceive = now;
  const sentAt = BigInt(stamp.slice(dot + 1));
  const micros = Number(now - sentAt) / 1000;
  record(stats.hist, micros);
  recordTimeline(stats.timeline, Number(sentAt - origin) / 1e6, micros);
}

async function connect(cmd: Extract<Command, { type: 'connect' }>): Promise<void> {
  parley = cmd.parley;
  const started = performance.now();
  const hist = newHistogram();
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  let next = 0;
  const one = async (i: number) => {
    const spec = cmd.clients[i];
    const t0 = performance.now();
    try {
      const client = await RawClient.connect({
        host: cmd.host,
        port: spec.port,
        localAddress: cmd.localAddresses[i % cmd.localAddresses.length],
        clientId: spec.clientId,
        username: spec.username,
        password: spec.password,
        clean: spec.clean,
        onPublish,
      });
      const granted = await client.subscribe(spec.inbox, 1);
      if (granted !== 1) throw new Error(`SUBSCRIBE ${spec.inbox} granted ${granted}`);
      const h: Held = { spec, client, topic: spec.sendTo ? encodeTopic(spec.sendTo) : null, sentAt: new Map() };
      client.onPuback = (messageId) => {
        stats.pubacks++;
        const at = h.sentAt.get(messageId);
        if (at === undefined) return;
        h.sentAt.delete(messageId);
        record(stats.ackHist, Number(process.hrtime.bigint() - at) / 1000);
      };
      client.onClose = () => disconnects++;
      held.push(h);
      record(hist, (performance.now() - t0) * 1000);
      ok++;
    } catch (err) {
      failed++;
      firstError ??= (err as Error).message;
    }
  };
  const lanes = Array.from({ length: Math.min(cmd.concurrency, cmd.clients.length) }, async () => {
    while (next < cmd.clients.length) await one(next++);
  });
  await Promise.all(lanes);
  send({ type: 'connected', ok, failed, firstError, ms: performance.now() - started, hist });
}

/** One message: JSON any broker relays as is and Parley accepts; ASCII only, so it is written straight into the packet. */
function payloadFor(step: number, bodyBytes: number, now: bigint): string {
  const stamp = `~${step}.${now}~`;
  return `{"cid":"${nonce}-${(seq++).toString(36)}","kind":"text","body":"${stamp}${padding(bodyBytes - stamp.length)}"}`;
}

// The send loop stays bounded whatever rate it is asked for and however far the broker falls behind:
/** At most this many sends in a row; then the loop lets the process read PUBACKs and deliveries. */
const BURST = 5_000;
/**
 * A sender with 10 s of its rate in publishes not PUBACKed (at least 1,000, at most 30,000: packet ids are 16
 * bits), or MAX_UNWRITTEN bytes its socket has not written, is held until the broker catches up (the loop
 * waits for its next tick); so is the whole process with MAX_IN_FLIGHT publishes not PUBACKed. Far beyond any
 * step a broker keeps up with (a few in flight per sender); it keeps this process's memory bounded.
 */
const unackedLimit = (ratePerSender: number) => Math.min(30_000, Math.max(1_000, Math.ceil(ratePerSender * 10)));
const MAX_UNWRITTEN = 256 * 1024;
const MAX_IN_FLIGHT = 200_000;
/** How long after the step's window the loop still sends what fell due (at least the window's length again). */
const GIVE_UP_GRACE_MS = 5_000;

const pads: string[] = [];
const padding = (n: number) => (pads[n] ??= 'x'.repeat(Math.max(0, n)));

async function run(cmd: Extract<Command, { type: 'run' }>): Promise<void> {
  stats = freshStats(cmd.step);
  origin = cmd.originNs;
  const startDisconnects = disconnects;
  const senders = held.filter((h) => h.topic !== null);
  for (const h of senders) h.sentAt.clear();
  const rate = senders.length * cmd.ratePerClient;
  const total = Math.round((rate * cmd.durationMs) / 1000);
  const giveUpMs = cmd.durationMs + Math.max(cmd.durationMs, GIVE_UP_GRACE_MS);
  const maxUnacked = unackedLimit(cmd.ratePerClient);
  const t0 = process.hrtime.bigint();
  windowStart = t0;
  lastReceive = t0;
  windowEnd = t0 + BigInt(cmd.durationMs) * 1_000_000n;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const tickAt = process.hrtime.bigint();
      const elapsedMs = Number(tickAt - t0) / 1e6;
      const due = Math.min(total, Math.floor((elapsedMs * rate) / 1000));
      // How long ago the oldest message this tick sends fell due.
      if (stats.sent < due) recordSendLag(stats.timeline, Number(tickAt - origin) / 1e6, (elapsedMs - ((stats.sent + 1) * 1000) / rate) * 1000);
      let burst = 0;
      while (stats.sent < due && burst < BURST) {
        const h = senders[stats.sent % senders.length];
        if (h.client.outstanding >= maxUnacked || h.client.socket.writableLength >= MAX_UNWRITTEN || stats.sent - stats.pubacks >= MAX_IN_FLIGHT) break;
        const now = process.hrtime.bigint();
        h.sentAt.set(h.client.publish(h.topic!, payloadFor(cmd.step, cmd.bodyBytes, now), 1), now);
        stats.sent++;
        burst++;
      }
      // What is still due after the give-up time is never sent: the step's offered rate shows the shortfall.
      if (stats.sent >= total || elapsedMs >= giveUpMs) resolve();
      else if (burst === BURST) setImmediate(tick);
      else setTimeout(tick, 1);
    };
    tick();
  });
  // A generator with no senders (group members) still waits out the window with the others.
  const left = Number(windowEnd - process.hrtime.bigint()) / 1e6;
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  const sendEnd = process.hrtime.bigint();
  stats.windowMs = Math.max(cmd.durationMs, Number(sendEnd - t0) / 1e6);
  if (sendEnd > windowEnd) windowEnd = sendEnd;
  const deadline = performance.now() + cmd.drainTimeoutMs;
  const expect = cmd.expectReceived ?? stats.sent;
  const done = () => stats.received >= expect && stats.pubacks >= stats.sent && (!parley || stats.appAcks >= stats.sent);
  while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  stats.complete = done();
  stats.drainMs = Number(process.hrtime.bigint() - windowEnd) / 1e6;
  stats.spanMs = Math.max(stats.windowMs, Number(lastReceive - windowStart) / 1e6);
  stats.disconnects = disconnects - startDisconnects;
  send(stats);
}

async function closeAll(): Promise<void> {
  const all = held;
  held = [];
  await Promise.all(all.map((h) => h.client.close()));
  send({ type: 'closed' });
}

// Keep-alive: clients CONNECT with 60 s; a ping every 30 s keeps idle ones alive in long runs.
setInterval(() => held.forEach((h) => h.client.ping()), 30_000).unref();

process.on('message', (cmd: Command) => {
  const work = cmd.type === 'connect' ? connect(cmd) : cmd.type === 'run' ? run(cmd) : closeAll();
  work.catch((err) => send({ type: 'error', message: (err as Error).stack ?? String(err) }));
});
process.on('disconnect', () => process.exit(0));
