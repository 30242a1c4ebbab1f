// The scenarios of issue 8, each run against one system under test:
//   chat         1:1 QoS 1, every user online, rising per-user rate until latency or delivery breaks
//   drain        N messages queued for one offline user, time until all arrive after it reconnects
//   connections  idle connections (CONNECT + SUBSCRIBE to the inbox), broker memory and connect rate
//   fanout       one sender to a group, rising rate
// A system of several broker processes (a Parley cluster) gets its clients spread over them (nodeFor), and
// is measured as the sum of its processes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RawClient, encodeTopic } from './client.ts';
import { Generators, shares } from './generators.ts';
import type { HeapReading } from './inspector.ts';
import { formatGrowth, heapGroups, heapGrowth } from './heap-diff.ts';
import { count, maxMs, merge, newHistogram, quantileMs } from './histogram.ts';
import { mergeMetrics, pausesBetween, pausesText, readMetrics, type MetricsSample } from './pauses.ts';
import { CpuMeter, MainThreadMeter, sampleProcess } from './procstat.ts';
import type { ClientSpec, Connected, Ran } from './protocol.ts';
import { summarizeChat, type ChatResult, type ChatStep, type ConnectionsResult, type DrainResult, type NodeRss, type Usage } from './results.ts';
import { nodeFor, type SystemUnderTest } from './systems.ts';
import { mergeTimelines, sendLagText, summarizeTail, tailText } from './tail.ts';

export interface ScenarioOptions {
  users: readonly string[];
  rates: number[];
  stepMs: number;
  warmupMs: number;
  drainTimeoutMs: number;
  bodyBytes: number;
  p99LimitMs: number;
  drainMessages: number;
  connections: number;
  sourceAddresses: number;
  retries: number;
  /** After the 1:1 ladder, its step at half of the peak run again for this long (0: not); see ChatResult.halfPeakHeld. */
  holdMs: number;
  /** A step past the limit while other processes used more than noisyCpu % of a core is run again, at most maxDisturbed times. */
  noisyCpu: number;
  maxDisturbed: number;
  /** Pause for the broker to settle around memory readings. */
  settleMs: number;
  groupSize: number;
  /** Messages/s of the group's one sender, for each step. */
  groupRates: number[];
  /** Before each measurement, wait (at most quietWaitMs) until other processes use under quietCpu % of a core. */
  quietCpu: number;
  quietWaitMs: number;
  /** Where the connections scenario writes heap snapshots of each Node broker before and after (--heap-snapshots). */
  heapSnapshotDir?: string;
  progress(line: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
/** A system of several broker processes: a Parley cluster. Its readings are also kept per node. */
const clustered = (sut: SystemUnderTest) => sut.nodes.length > 1;

/** RSS of each broker process, in the order of sut.nodes. */
const rssOf = (sut: SystemUnderTest) => sut.nodes.map((n) => sampleProcess(n.pid)?.rssBytes ?? 0);

/** Meters CPU of the broker (all its processes), its backends and the generators over one phase. */
function meter(sut: SystemUnderTest, gens: Generators | null) {
  // One meter per broker process, read once: the system's CPU is exactly the sum of its nodes'.
  const brokers = sut.nodes.map((n) => new CpuMeter([n.pid]));
  const mains = sut.nodes.map((n) => new MainThreadMeter(n.pid));
  const backend = new CpuMeter(sut.backendPids);
  const generator = new CpuMeter(gens ? gens.pids : [process.pid]);
  return (): Usage => {
    const nodeCpu = brokers.map((m) => m.percent());
    const nodeMain = mains.map((m) => m.read());
    const u = { brokerCpu: sum(nodeCpu), backendCpu: backend.percent(), generatorCpu: generator.percent(), machineBusy: generator.machineBusyPercent() };
    const other = (u.machineBusy * os.cpus().length) - u.brokerCpu - u.backendCpu - u.generatorCpu;
    const rss = rssOf(sut);
    const main = (m: (typeof nodeMain)[number] | (typeof nodeMain)[number][]) => {
      const all = Array.isArray(m) ? m : [m];
      if (all.some((x) => x === null)) return {};
      return {
        mainCpu: round(sum(all.map((x) => x!.cpu))),
        mainWaitMsPerSec: round(sum(all.map((x) => x!.waitMsPerSec))),
        mainPreemptedPerSec: Math.round(sum(all.map((x) => x!.preemptedPerSec))),
      };
    };
    return {
      brokerCpu: round(u.brokerCpu),
      brokerRssMB: mb(sum(rss)),
      backendCpu: round(u.backendCpu),
      generatorCpu: round(u.generatorCpu),
      machineBusy: round(u.machineBusy),
      otherCpu: round(Math.max(0, other)),
      ...main(nodeMain),
      ...(clustered(sut) ? { nodes: sut.nodes.map((n, i) => ({ node: n.name, brokerCpu: round(nodeCpu[i]), brokerRssMB: mb(rss[i]), ...main(nodeMain[i]) })) } : {}),
    };
  };
}

/** Broker CPU as printed in progress lines; a cluster's also per node (node 1 + node 2). */
const brokerCpuText = (u: Usage) => `${u.brokerCpu.toFixed(0)}%${u.nodes ? ` (${u.nodes.map((n) => n.brokerCpu.toFixed(0)).join('+')})` : ''}`;

/**
 * The machine may be shared (other test suites, JVMs): waits until the CPU used outside the broker, its
 * backend and the generators stays under the threshold for one second, or gives up after quietWaitMs.
 * Returns the time waited.
 */
async function quiet(sut: SystemUnderTest, gens: Generators | null, o: ScenarioOptions): Promise<number> {
  if (o.quietWaitMs <= 0) return 0;
  const t0 = performance.now();
  let said = false;
  for (;;) {
    const usage = meter(sut, gens);
    await sleep(1000);
    const other = usage().otherCpu;
    const waited = performance.now() - t0;
    if (other <= o.quietCpu) return Math.round(waited - 1000);
    if (waited >= o.quietWaitMs) {
      o.progress(`  the machine stayed busy (other processes ${other.toFixed(0)}% of a core) for ${(waited / 1000).toFixed(0)} s; measuring anyway`);
      return Math.round(waited);
    }
    if (!said) o.progress(`  waiting for a quiet machine: other processes use ${other.toFixed(0)}% of a core`);
    said = true;
  }
}

/** Waits (at most 30 s) until the system under test, backend included, uses under 15 % of a core for a second (not at all with --quiet-wait 0, as in quick mode); ms waited. */
async function idle(sut: SystemUnderTest, o: ScenarioOptions): Promise<number> {
  if (o.quietWaitMs <= 0) return 0;
  const t0 = performance.now();
  for (;;) {
    const usage = meter(sut, null);
    await sleep(1000);
    const u = usage();
    const waited = performance.now() - t0;
    if (u.brokerCpu + u.backendCpu < 15 || waited >= 30_000) return Math.round(waited);
  }
}

const fmt = (ms: number | null) => (ms === null ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

function addresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 2}`);
}

/** A user and the broker port it connects to. */
interface Seat {
  user: string;
  port: number;
}

/** The i-th user on node i mod N (nodeFor). */
const seated = (sut: SystemUnderTest, users: readonly string[], first = 0): Seat[] => users.map((user, i) => ({ user, port: nodeFor(sut, first + i).port }));

function chatSpecs(sut: SystemUnderTest, share: readonly Seat[]): ClientSpec[] {
  // Peers are in the same share (a ring), so each generator sees both ends of its own messages.
  return share.map(({ user, port }, i) => ({
    port,
    clientId: `chat-${user}`,
    ...sut.credentials(user),
    clean: true,
    inbox: `inbox/${user}`,
    sendTo: sut.sendTopic(share[(i + 1) % share.length].user),
  }));
}

/** Senders whose peer in the ring is on another node: all of them when shares are even and nodes two. */
const crossNode = (parts: Seat[][]) => sum(parts.map((share) => share.filter((s, i) => s.port !== share[(i + 1) % share.length].port).length));

async function connectAll(sut: SystemUnderTest, gens: Generators, specs: ClientSpec[][], o: ScenarioOptions, concurrency: number) {
  const t0 = performance.now();
  const replies = await gens.all<Connected>((i) => ({
    type: 'connect',
    host: sut.host,
    clients: specs[i],
    parley: sut.parley,
    localAddresses: addresses(o.sourceAddresses),
    concurrency,
  }));
  const ms = performance.now() - t0;
  const hist = newHistogram();
  for (const r of replies) merge(hist, r.hist);
  return {
    ms,
    ok: replies.reduce((a, r) => a + r.ok, 0),
    failed: replies.reduce((a, r) => a + r.failed, 0),
    firstError: replies.find((r) => r.firstError)?.firstError,
    hist,
  };
}

/** Two connect bursts as one: counts and latencies added, time summed (the pause between is not counted). */
function joinBursts(a: Awaited<ReturnType<typeof connectAll>>, b: Awaited<ReturnType<typeof connectAll>>): Awaited<ReturnType<typeof connectAll>> {
  const hist = newHistogram();
  merge(hist, a.hist);
  merge(hist, b.hist);
  return { ms: a.ms + b.ms, ok: a.ok + b.ok, failed: a.failed + b.failed, firstError: a.firstError ?? b.firstError, hist };
}

/** A ladder of rising rates over clients that are already connected. */
interface Ladder {
  what: string;
  rates: number[];
  /** Sending clients in all, and deliveries per message (1 for 1:1, members but the sender for a group). */
  senders: number;
  fanout: number;
  /** Messages generator `worker` should receive at `rate` for `durationMs`; unset: as many as it sent. */
  expectFor?: (worker: number, rate: number, durationMs: number) => number;
  /** After the ladder, its step at half of the peak once more for this long (0 or unset: not). */
  holdMs?: number;
}

async function climb(sut: SystemUnderTest, gens: Generators, o: ScenarioOptions, l: Ladder): Promise<{ steps: ChatStep[]; held?: ChatStep }> {
  const steps: ChatStep[] = [];
  const runStep = async (step: number, rate: number, durationMs: number) => {
    const from = monotonicUs();
    const before = await readAllMetrics(sut);
    const usage = meter(sut, gens);
    const originNs = process.hrtime.bigint();
    const replies = await gens.all<Ran>((i) => ({
      type: 'run',
      step,
      ratePerClient: rate,
      durationMs,
      drainTimeoutMs: o.drainTimeoutMs,
      bodyBytes: o.bodyBytes,
      expectReceived: l.expectFor?.(i, rate, durationMs),
      originNs,
    }));
    const measured = usage();
    const after = before.length ? await readAllMetrics(sut) : [];
    return { replies, usage: measured, ...stepPauses(before, after), monotonicUs: [from, monotonicUs()] as [number, number] };
  };
  // Every run gets its own tag, so a straggler of an earlier run is never counted in a later one.
  let tag = 0;
  if (o.warmupMs > 0) await runStep(++tag, l.rates[0], o.warmupMs);
  const warmupDeath = sut.died();
  if (warmupDeath) throw new Error(`the broker died in the warm-up: ${warmupDeath.message}`);
  /** One measured run at `rate` for `durationMs`, after waiting for a quiet machine. */
  const measure = async (rate: number, durationMs: number) => {
    const waited = await quiet(sut, gens, o);
    const { replies, usage, pauses, nodePauses, monotonicUs: window } = await runStep(++tag, rate, durationMs);
    const s = stepResult(rate, replies, usage, o, l);
    s.monotonicUs = window;
    if (pauses) s.pauses = pauses;
    if (nodePauses) s.nodePauses = nodePauses;
    s.quietWaitMs = waited;
    return s;
  };
  for (const rate of l.rates) {
    let s: ChatStep | null = null;
    let failures = 0;
    let disturbed = 0;
    for (let run = 1; ; run++) {
      s = await measure(rate, o.stepMs);
      s.attempts = run;
      s.disturbed = disturbed;
      // A broker that died in the step ends the ladder: no rerun, and the death is the reason.
      const death = sut.died();
      if (death) s.broken = `the broker died: ${death.message}`;
      // Lost messages, errors and disconnects are the system's own; a slow p99 or a short delivery may be
      // a neighbour's burst: run again, without counting it, when other processes were busy meanwhile,
      // and up to --retries more times when they were not.
      const ownFault = s.lost > 0 || s.errors > 0 || s.disconnects > 0;
      const noisy = s.otherCpu > o.noisyCpu && disturbed < o.maxDisturbed;
      const again = s.broken !== null && !death && !ownFault && (noisy || failures < o.retries);
      // Out of reruns on a busy machine: say so, the limit may be the neighbours' rather than the system's.
      if (s.broken && !again && s.otherCpu > o.noisyCpu) s.broken += ` while other processes used ${s.otherCpu.toFixed(0)}% of a core`;
      o.progress(stepLine(l.what, s, again ? (noisy ? `disturbed (other processes ${s.otherCpu.toFixed(0)}%); once more` : 'once more') : ''));
      if (!again) break;
      if (noisy) disturbed++;
      else failures++;
    }
    steps.push(s!);
    if (s!.broken) break;
  }
  // One 5 s step's p99 is its slowest 1 %: a single GC or fsync burst decides it. The step at half of the
  // peak held longer is what the issue's "p99 at half of peak" asks about; run once, not retried.
  const { halfPeak } = summarizeChat(steps);
  if (!l.holdMs || !halfPeak || sut.died()) return { steps };
  // The step past the limit may have left the system behind (the consumers' backlog, a compaction): the held
  // step starts once it is idle again, or would measure that backlog's end as well.
  const waited = await idle(sut, o);
  if (waited > 1500) o.progress(`  waited ${(waited / 1000).toFixed(1)} s for the system to go idle after its ladder`);
  const held = await measure(halfPeak.ratePerUser, l.holdMs);
  held.attempts = 1;
  held.disturbed = 0;
  held.heldMs = l.holdMs;
  const death = sut.died();
  if (death) held.broken = `the broker died: ${death.message}`;
  o.progress(stepLine(`${l.what} held ${l.holdMs / 1000} s at half of peak`, held, ''));
  return { steps, held };
}

/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profile timestamps on Linux. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Every node's /metrics, for the nodes that have one (none for the relays); null where a node did not answer. */
async function readAllMetrics(sut: SystemUnderTest): Promise<(MetricsSample | null)[]> {
  return Promise.all(sut.nodes.filter((n) => n.metricsUrl).map((n) => readMetrics(n.metricsUrl!)));
}

/** A step's pauses over all nodes, and each node's in a cluster; none unless every node answered both times. */
function stepPauses(before: (MetricsSample | null)[], after: (MetricsSample | null)[]): Pick<ChatStep, 'pauses' | 'nodePauses'> {
  if (before.length === 0 || after.length !== before.length || [...before, ...after].some((m) => m === null)) return {};
  const [b, a] = [before as MetricsSample[], after as MetricsSample[]];
  const pauses = pausesBetween(mergeMetrics(b), mergeMetrics(a));
  return b.length > 1 ? { pauses, nodePauses: b.map((m, i) => pausesBetween(m, a[i])) } : { pauses };
}

export async function chat(sut: SystemUnderTest, gens: Generators, o: ScenarioOptions): Promise<ChatResult> {
  // User i on node i mod N and sending to user i+1: in a cluster of two, every message crosses nodes.
  const parts = shares(seated(sut, o.users), gens.size);
  if (parts.some((p) => p.length < 2)) throw new Error(`chat needs at least 2 users per generator (${o.users.length} users, ${gens.size} generators)`);
  const c = await connectAll(sut, gens, parts.map((p) => chatSpecs(sut, p)), o, 50);
  try {
    if (c.failed > 0) throw new Error(`chat: ${c.failed} of ${o.users.length} clients could not connect: ${c.firstError}`);
    const crossing = clustered(sut) ? crossNode(parts) : undefined;
    const where = crossing === undefined ? '' : ` on ${sut.nodes.length} nodes, ${crossing} of ${o.users.length} sending to a user on another node`;
    o.progress(`  chat: ${c.ok} users online in ${(c.ms / 1000).toFixed(1)} s${where}`);
    const { steps, held } = await climb(sut, gens, o, { what: 'chat', rates: o.rates, senders: o.users.length, fanout: 1, holdMs: o.holdMs });
    return {
      system: sut.name,
      users: o.users.length,
      connectMs: Math.round(c.ms),
      ...(crossing === undefined ? {} : { crossNode: crossing }),
      steps,
      ...summarizeChat(steps),
      ...(held ? { halfPeakHeld: held } : {}),
    };
  } finally {
    await gens.all(() => ({ type: 'close' }));
  }
}

/**
 * Group fan-out: one sender, G members online. Parley: a group made through POST /v1/groups and
 * `send/group/{id}`; relays: every member subscribed to one topic. Either way G-1 deliveries a message.
 */
export async function fanout(sut: SystemUnderTest, gens: Generators, o: ScenarioOptions): Promise<ChatResult | null> {
  const members = o.users.slice(0, o.groupSize);
  const [sender, ...receivers] = members;
  let topic: string;
  if (sut.parley) {
    const created = await sut.createGroup!(sender, `bench ${Date.now()}`, receivers);
    if (!created.ok) {
      o.progress(`  fan-out: skipped — this Parley build has no groups (${created.reason})`);
      return null;
    }
    topic = `send/group/${created.id}`;
  } else {
    topic = `group/bench-${Date.now().toString(36)}`;
  }
  // Members on node i mod N like every user (the sender, member 0, on the first): a cluster's split evenly.
  const parts = shares(seated(sut, receivers, 1), gens.size);
  const specs: ClientSpec[][] = parts.map((part) =>
    part.map(({ user, port }) => ({ port, clientId: `fan-${user}`, ...sut.credentials(user), clean: true, inbox: sut.parley ? `inbox/${user}` : topic })),
  );
  specs[0].unshift({ port: nodeFor(sut, 0).port, clientId: `fan-${sender}`, ...sut.credentials(sender), clean: true, inbox: `inbox/${sender}`, sendTo: topic });
  const c = await connectAll(sut, gens, specs, o, 50);
  try {
    if (c.failed > 0) throw new Error(`fan-out: ${c.failed} of ${members.length} clients could not connect: ${c.firstError}`);
    o.progress(`  fan-out: group of ${members.length} online in ${(c.ms / 1000).toFixed(1)} s; one sender, ${receivers.length} deliveries a message`);
    const { steps } = await climb(sut, gens, o, {
      what: 'fan-out',
      rates: o.groupRates,
      senders: 1,
      fanout: receivers.length,
      // The sender's message count is known in advance (rate × window), so each generator knows its share.
      expectFor: (i, rate, durationMs) => Math.round((rate * durationMs) / 1000) * parts[i].length,
    });
    return { system: sut.name, users: members.length, connectMs: Math.round(c.ms), steps, ...summarizeChat(steps) };
  } finally {
    await gens.all(() => ({ type: 'close' }));
  }
}

function stepResult(rate: number, replies: Ran[], usage: Usage, o: ScenarioOptions, l: Ladder): ChatStep {
  const hist = newHistogram();
  const ackHist = newHistogram();
  for (const r of replies) {
    merge(hist, r.hist);
    merge(ackHist, r.ackHist);
  }
  const sum = (f: (r: Ran) => number) => replies.reduce((a, r) => a + f(r), 0);
  const windowMs = Math.max(...replies.map((r) => r.windowMs));
  const sent = sum((r) => r.sent);
  const received = sum((r) => r.received);
  const timeline = mergeTimelines(replies.map((r) => r.timeline));
  const s: ChatStep = {
    ratePerUser: rate,
    targetPerSec: rate * l.senders * l.fanout,
    offeredPerSec: Math.round(((sent * l.fanout) / windowMs) * 1000),
    // Everything that arrived, over the time it took: a system that falls behind stretches the span.
    deliveredPerSec: Math.round((received / Math.max(...replies.map((r) => r.spanMs))) * 1000),
    sent,
    received,
    lost: sent * l.fanout - received,
    pubacks: sum((r) => r.pubacks),
    appAcks: sum((r) => r.appAcks),
    errors: sum((r) => r.errors),
    errorSamples: replies.flatMap((r) => r.errorSamples).slice(0, 3),
    stray: sum((r) => r.stray),
    disconnects: sum((r) => r.disconnects),
    p50: quantileMs(hist, 0.5),
    p99: quantileMs(hist, 0.99),
    p999: quantileMs(hist, 0.999),
    max: maxMs(hist),
    ackP50: quantileMs(ackHist, 0.5),
    ackP99: quantileMs(ackHist, 0.99),
    ackTimed: count(ackHist),
    drainMs: Math.round(Math.max(...replies.map((r) => r.drainMs))),
    timeline,
    ...usage,
    broken: null,
    attempts: 1,
    disturbed: 0,
    quietWaitMs: 0,
  };
  s.broken = brokenBecause(s, replies, o);
  return s;
}

function stepLine(what: string, s: ChatStep, again: string): string {
  const tail = s.timeline ? summarizeTail(s.timeline) : null;
  const lag = tail ? sendLagText(tail) : '';
  return (
    `  ${what} ${String(s.ratePerUser).padStart(4)}/${what.startsWith('chat') ? 'user' : 'sender'}/s: offered ${String(s.offeredPerSec).padStart(6)} delivered ${String(s.deliveredPerSec).padStart(6)} msg/s  ` +
    `p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} p99.9 ${fmt(s.p999)} ms  PUBACK p50 ${fmt(s.ackP50 ?? null)} p99 ${fmt(s.ackP99 ?? null)} ms  broker ${brokerCpuText(s)} ${s.brokerRssMB} MB  ` +
    (s.mainCpu === undefined ? '' : `main thread ${s.mainCpu.toFixed(0)}% waited ${s.mainWaitMsPerSec!.toFixed(0)} ms/s preempted ${s.mainPreemptedPerSec}/s  `) +
    `gen ${s.generatorCpu.toFixed(0)}%${lag ? ` (${lag})` : ''}${s.backendCpu ? `  backend ${s.backendCpu.toFixed(0)}%` : ''}  other ${s.otherCpu.toFixed(0)}%` +
    (tail ? `  ${tailText(tail)}` : '') +
    (s.pauses ? `  ${pausesText(s.pauses)}` : '') +
    (s.broken ? `  ← ${s.broken}${again ? `; ${again}` : ''}` : '')
  );
}

function brokenBecause(s: ChatStep, replies: Ran[], o: ScenarioOptions): string | null {
  if (s.lost > 0 || !replies.every((r) => r.complete)) return `${s.lost} not delivered within ${o.drainTimeoutMs / 1000} s`;
  if (s.errors > 0) return `${s.errors} error envelopes`;
  if (s.disconnects > 0) return `${s.disconnects} disconnects`;
  if (s.p99 !== null && s.p99 > o.p99LimitMs) return `p99 over ${o.p99LimitMs} ms`;
  if (s.offeredPerSec < 0.9 * s.targetPerSec) return 'offered < 90% of the target';
  if (s.deliveredPerSec < 0.9 * s.targetPerSec) return 'delivered < 90% of the target';
  return null;
}

/** Tag of the drain scenario's messages in the `~step.ns~` stamp (chat steps count from 0). */
const DRAIN_STEP = 999999;

export async function drain(sut: SystemUnderTest, o: ScenarioOptions): Promise<DrainResult> {
  const [receiver, sender] = o.users;
  const host = sut.host;
  // In a cluster the queue is filled through node 1 and drained through node 2 (it is in the shared Redis).
  const senderPort = sut.nodes[0].port;
  const port = sut.nodes[sut.nodes.length - 1].port;
  const inbox = `inbox/${receiver}`;
  // Relays keep messages for an offline client only in a persistent session that subscribed before;
  // Parley queues by user, whatever the session.
  const persistent = !sut.parley;
  const receiverId = `drain-${receiver}`;
  if (persistent) {
    const r = await RawClient.connect({ host, port, clientId: receiverId, clean: true, ...sut.credentials(receiver) });
    await r.close();
    const s = await RawClient.connect({ host, port, clientId: receiverId, clean: false, ...sut.credentials(receiver) });
    await s.subscribe(inbox, 1);
    await s.close();
  }

  const s = await RawClient.connect({ host, port: senderPort, clientId: `drain-${sender}`, clean: true, ...sut.credentials(sender) });
  await s.subscribe(`inbox/${sender}`, 1);
  let appAcks = 0;
  let refused: string | null = null;
  s.onPublish = (payload, qos) => {
    if (qos !== 0) return;
    if (payload.includes('"kind":"ack"')) appAcks++;
    else if (payload.includes('"kind":"error"')) refused ??= payload.toString('utf8', 0, 300);
  };
  // Its PUBACKs stop when the broker dies or the connection drops: then the fill stops waiting for them.
  let dropped: Error | null = null;
  s.onClose = (err) => (dropped = err ?? new Error('connection closed'));
  const cutOff = () => {
    const death = sut.died();
    if (death) throw new Error(`drain: the broker died while the queue filled: ${death.message}`);
    if (dropped) throw new Error(`drain: the sender's connection dropped while the queue filled: ${dropped.message}`);
  };
  const topic = encodeTopic(sut.sendTopic(receiver));
  const nonce = Date.now().toString(36);
  const fill0 = performance.now();
  const fillDeadline = fill0 + 120_000;
  const timedOut = () => new Error(`drain: ${s.outstanding} publishes not PUBACKed, ${sut.parley ? o.drainMessages - appAcks : 0} not acked, after 120 s`);
  // Pipelined, with a bounded window: a phone would not have more than this in flight either.
  for (let i = 0; i < o.drainMessages; i++) {
    while (s.outstanding >= 500) {
      cutOff();
      if (performance.now() > fillDeadline) throw timedOut();
      await new Promise<void>((r) => setImmediate(r));
    }
    const body = `~${DRAIN_STEP}.0~queued message ${i}`;
    s.publish(topic, Buffer.from(`{"cid":"d${nonce}-${i}","kind":"text","body":"${body}"}`), 1);
  }
  while ((s.outstanding > 0 || (sut.parley && appAcks < o.drainMessages)) && !refused && performance.now() < fillDeadline) {
    cutOff();
    await sleep(5);
  }
  if (refused) throw new Error(`drain: the broker refused a message: ${refused}`);
  if (s.outstanding > 0 || (sut.parley && appAcks < o.drainMessages)) throw timedOut();
  const fillMs = performance.now() - fill0;
  await s.close();
  await sleep(300);
  await quiet(sut, null, o);

  const usage = meter(sut, null);
  let received = 0;
  let lastAt = 0;
  const t0 = performance.now();
  const onPublish = (payload: Buffer, qos: number) => {
    if (qos === 1 && payload.includes(`~${DRAIN_STEP}.`)) {
      received++;
      lastAt = performance.now();
    }
  };
  const r = await RawClient.connect({ host, port, clientId: receiverId, clean: !persistent, onPublish, ...sut.credentials(receiver) });
  await r.subscribe(inbox, 1);
  const deadline = t0 + o.drainTimeoutMs * 4;
  while (received < o.drainMessages && performance.now() < deadline) await sleep(2);
  const ms = (received > 0 ? lastAt : performance.now()) - t0;
  const u = usage();
  await r.close();
  if (persistent) {
    // Leave no session behind.
    const cleanup = await RawClient.connect({ host, port, clientId: receiverId, clean: true });
    await cleanup.close();
  }
  const result: DrainResult = {
    system: sut.name,
    messages: o.drainMessages,
    fillPerSec: Math.round((o.drainMessages / fillMs) * 1000),
    received,
    lost: o.drainMessages - received,
    ms: Math.round(ms),
    perSec: Math.round((received / ms) * 1000),
    ...u,
  };
  o.progress(
    `  drain: ${received}/${o.drainMessages} queued messages in ${result.ms} ms (${result.perSec} msg/s; queued at ${result.fillPerSec} msg/s)  ` +
      `broker ${brokerCpuText(u)} cpu ${u.brokerRssMB} MB`,
  );
  return result;
}

/**
 * The broker's RSS once its garbage is collected, per process: a Node broker runs a full, memory-reducing
 * GC first (V8's memory reducer does the same by itself 20-60 s into an idle spell), every node of a
 * cluster at once; Mosquitto has nothing to collect.
 */
async function settledRss(sut: SystemUnderTest, o: ScenarioOptions): Promise<{ rss: number[]; heap: HeapReading | null }> {
  const collecting = sut.nodes.filter((n) => n.collectGarbage);
  if (collecting.length === 0) return { rss: rssOf(sut), heap: null };
  const heaps = await Promise.all(collecting.map((n) => n.collectGarbage!()));
  const heap = { heapUsed: sum(heaps.map((h) => h.heapUsed)), external: sum(heaps.map((h) => h.external)) };
  // Freed pages leave RSS over the next seconds, as V8's unmapper releases them on a background thread:
  // read once RSS (of all nodes) holds still (within 1 MB for half a second), at most 10 s on.
  let last = rssOf(sut);
  for (const deadline = performance.now() + 10_000; performance.now() < deadline; ) {
    await sleep(Math.min(o.settleMs, 500));
    const now = rssOf(sut);
    if (Math.abs(sum(now) - sum(last)) < 1 << 20) return { rss: now, heap };
    last = now;
  }
  return { rss: last, heap };
}

/** A cluster's readings per node, with the connections placed on each. */
function nodeRss(sut: SystemUnderTest, specs: ClientSpec[], readings: { before: number[]; middle: number[]; after: number[]; settled: number[] }): NodeRss[] {
  return sut.nodes.map((n, i) => ({
    node: n.name,
    connections: specs.filter((c) => c.port === n.port).length,
    rssBeforeMB: mb(readings.before[i]),
    rssMiddleMB: mb(readings.middle[i]),
    rssAfterMB: mb(readings.after[i]),
    rssSettledMB: mb(readings.settled[i]),
  }));
}

export async function connections(sut: SystemUnderTest, gens: Generators, o: ScenarioOptions): Promise<ConnectionsResult> {
  // Connection k on node k mod N: a cluster's split evenly.
  const specs: ClientSpec[] = Array.from({ length: o.connections }, (_, k) => {
    const user = o.users[k % o.users.length];
    return { port: nodeFor(sut, k).port, clientId: `idle-${k}`, ...sut.credentials(user), clean: true, inbox: `inbox/${user}` };
  });
  await sleep(o.settleMs);
  await quiet(sut, gens, o);
  // Every reading starts from a settled broker: what earlier work (signing users in) left for the GC is gone.
  const settledBefore = await settledRss(sut, o);
  const snapshotsBefore = await heapSnapshots(sut, o, 'before');
  const beforeNodes = settledBefore.rss;
  const before = sum(beforeNodes);
  const usage = meter(sut, gens);
  // Two halves: what the whole burst added (fixed costs included: a young generation growing to its limit,
  // caches filled once) and what the second half added (the cost of one more connection).
  const half = Math.floor(specs.length / 2);
  const first = await connectAll(sut, gens, shares(specs.slice(0, half), gens.size), o, 64);
  await sleep(o.settleMs);
  const middleNodes = rssOf(sut);
  const middle = sum(middleNodes);
  const second = await connectAll(sut, gens, shares(specs.slice(half), gens.size), o, 64);
  const c = joinBursts(first, second);
  const u = usage();
  // Let the broker settle (timers) before reading its memory, as the burst left it; then again after a
  // full GC, which V8 runs on its own once the broker has idled for a while: what the idle connections hold.
  await sleep(o.settleMs * 2);
  const afterNodes = rssOf(sut);
  const after = sum(afterNodes);
  const settledAfter = await settledRss(sut, o);
  const snapshotsAfter = await heapSnapshots(sut, o, 'after');
  const settledNodes = settledAfter.rss;
  const settled = sum(settledNodes);
  const heapBefore = settledBefore.heap;
  const heapAfter = settledAfter.heap;
  await gens.all(() => ({ type: 'close' }));
  const result: ConnectionsResult = {
    system: sut.name,
    target: o.connections,
    connected: c.ok,
    failed: c.failed,
    firstError: c.firstError,
    ms: Math.round(c.ms),
    perSec: Math.round((c.ok / c.ms) * 1000),
    connectP50: quantileMs(c.hist, 0.5),
    connectP99: quantileMs(c.hist, 0.99),
    rssBeforeMB: mb(before),
    rssMiddleMB: mb(middle),
    rssAfterMB: mb(after),
    rssSettledMB: mb(settled),
    bytesPerConnection: c.ok > 0 ? Math.round((after - before) / c.ok) : 0,
    marginalBytesPerConnection: second.ok > 0 ? Math.round((after - middle) / second.ok) : 0,
    settledBytesPerConnection: c.ok > 0 ? Math.round((settled - before) / c.ok) : 0,
    ...(heapBefore && heapAfter && c.ok > 0
      ? {
          settledHeapBytesPerConnection: Math.round((heapAfter.heapUsed - heapBefore.heapUsed) / c.ok),
          settledExternalBytesPerConnection: Math.round((heapAfter.external - heapBefore.external) / c.ok),
        }
      : {}),
    sourceAddresses: o.sourceAddresses,
    ...u,
    ...(clustered(sut) ? { nodeRss: nodeRss(sut, specs, { before: beforeNodes, middle: middleNodes, after: afterNodes, settled: settledNodes }) } : {}),
  };
  o.progress(
    `  connections: ${c.ok}/${o.connections} in ${(c.ms / 1000).toFixed(1)} s (${result.perSec}/s, p99 ${fmt(result.connectP99)} ms)  ` +
      `RSS ${result.rssBeforeMB} → ${result.rssMiddleMB} → ${result.rssAfterMB} MB = ${(result.bytesPerConnection / 1024).toFixed(1)} KB/connection ` +
      `(second half ${((result.marginalBytesPerConnection ?? 0) / 1024).toFixed(1)} KB; settled ${result.rssSettledMB} MB = ` +
      `${((result.settledBytesPerConnection ?? 0) / 1024).toFixed(1)} KB` +
      (result.settledHeapBytesPerConnection === undefined
        ? ''
        : `, of which JS heap ${(result.settledHeapBytesPerConnection / 1024).toFixed(1)} KB, external ${((result.settledExternalBytesPerConnection ?? 0) / 1024).toFixed(1)} KB`) +
      `)  broker ${brokerCpuText(u)} cpu` +
      (result.nodeRss ? `  per node settled ${result.nodeRss.map((n) => `${n.rssBeforeMB} → ${n.rssSettledMB} MB`).join(', ')}` : '') +
      (c.failed ? `  (${c.failed} failed: ${c.firstError})` : ''),
  );
  for (const [i, before] of snapshotsBefore.entries()) {
    const after = snapshotsAfter[i];
    const [name, connections] = [sut.nodes[i].name, specs.filter((_, k) => nodeFor(sut, k) === sut.nodes[i]).length];
    o.progress(`  heap snapshots of ${name}: ${before} → ${after}\n${formatGrowth(heapGrowth(heapGroups(before), heapGroups(after)), connections, 20)}`);
  }
  await sleep(o.settleMs);
  return result;
}

/** With --heap-snapshots: one file per Node broker process (after its settled reading), in sut.nodes order. */
async function heapSnapshots(sut: SystemUnderTest, o: ScenarioOptions, label: string): Promise<string[]> {
  if (!o.heapSnapshotDir || sut.nodes.some((n) => !n.heapSnapshot)) return [];
  fs.mkdirSync(o.heapSnapshotDir, { recursive: true });
  const files = sut.nodes.map((n) => path.join(o.heapSnapshotDir!, `${n.name}-${label}.heapsnapshot`));
  for (const [i, n] of sut.nodes.entries()) await n.heapSnapshot!(files[i]);
  return files;
}
