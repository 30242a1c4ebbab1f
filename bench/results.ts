// The shape of bench/results/<timestamp>.json, and the summaries derived from it (peak, ratios).
import type { StepPauses } from './pauses.ts';
import type { SystemName } from './systems.ts';
import type { Timeline } from './tail.ts';

/** One broker process of a cluster: its part of the system's brokerCpu and brokerRssMB (which are the sums). */
export interface NodeUsage {
  node: string;
  brokerCpu: number;
  brokerRssMB: number;
  /** Its main thread, as in Usage. */
  mainCpu?: number;
  mainWaitMsPerSec?: number;
  mainPreemptedPerSec?: number;
}

export interface Usage {
  /** % of one core, averaged over the phase (200 = two cores busy). */
  brokerCpu: number;
  brokerRssMB: number;
  /** Redis and Kafka for Parley (Redis+Kafka); 0 for the others. */
  backendCpu: number;
  generatorCpu: number;
  /** % of all cores busy on the machine, every process included. */
  machineBusy: number;
  /**
   * CPU (% of one core) used by neither the broker, its backend nor the generators: other processes on
   * the machine and kernel work (loopback TCP in softirq) not charged to a process.
   */
  otherCpu: number;
  /**
   * The broker's main thread (its event loop; Mosquitto's only thread): % of a core it ran, and ms per
   * second it was ready but waited for a CPU. Summed over a cluster's nodes. Absent where the kernel keeps
   * no schedstat, and in results from before 2026-12-05.
   */
  mainCpu?: number;
  mainWaitMsPerSec?: number;
  /** Times a second the main thread was taken off a CPU while it could have gone on running (summed over a cluster's nodes). */
  mainPreemptedPerSec?: number;
  /** A cluster only: the broker's CPU and RSS per node. */
  nodes?: NodeUsage[];
}

export interface ChatStep extends Usage {
  ratePerUser: number;
  targetPerSec: number;
  offeredPerSec: number;
  /** Messages received over the time from the window's start to the last arrival (≥ the window). */
  deliveredPerSec: number;
  sent: number;
  received: number;
  lost: number;
  pubacks: number;
  appAcks: number;
  errors: number;
  errorSamples: string[];
  stray: number;
  disconnects: number;
  p50: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  /** Send → the sender's PUBACK (Ran.ackHist), ms, and how many PUBACKs were timed; absent in results from before round 24. */
  ackP50?: number | null;
  ackP99?: number | null;
  ackTimed?: number;
  /** After the send window: ms until the last message arrived. */
  drainMs: number;
  /** Why this step counts as past the limit, or null. */
  broken: string | null;
  /** Runs of this step: one past the limit is run again (up to --retries times) to rule out a neighbour's burst. */
  attempts: number;
  /** Of those, runs past the limit while other processes were busy (not counted against --retries). */
  disturbed: number;
  /** Time spent waiting for a quiet machine before this run. */
  quietWaitMs: number;
  /** Parley only: its GC pauses, journal fdatasyncs and longest event-loop delay during the step. */
  pauses?: StepPauses;
  /** A cluster only: each node's pauses; `pauses` is over all of them (times and counts added, the longest loop delay). */
  nodePauses?: StepPauses[];
  /** When the step ran (this machine's monotonic clock, µs, as V8's CPU profiles count): maps profile stalls to steps. */
  monotonicUs?: [number, number];
  /** Its messages by when they were sent, per 100 ms (bench/tail.ts summarizes them; absent in earlier results). */
  timeline?: Timeline;
  /** Set on ChatResult.halfPeakHeld: how long the step was held (the ladder's steps last --step-seconds). */
  heldMs?: number;
}

export interface ChatResult {
  system: SystemName;
  users: number;
  connectMs: number;
  /** A cluster only: senders whose receiver is connected to another node (in 1:1 chat: all of them). */
  crossNode?: number;
  steps: ChatStep[];
  /** The best delivered msg/s of a step that held (no loss, p99 under the limit); null when none held. */
  peak: ChatStep | null;
  /** The held step nearest half of the peak rate: its p99 is the "p99 at half of peak". */
  halfPeak: ChatStep | null;
  /**
   * 1:1 only, with --hold-seconds: halfPeak's rate run once more, for that long, after the ladder. A 5 s step's
   * p99 is its slowest 250 messages at 5,000 msg/s, so one burst decides it; held 30 s, six times as many
   * messages decide. Absent in earlier results, when no step held, or with --hold-seconds 0.
   */
  halfPeakHeld?: ChatStep;
}

export interface DrainResult extends Usage {
  system: SystemName;
  messages: number;
  /** Queueing: messages/s accepted while the receiver was away. */
  fillPerSec: number;
  received: number;
  lost: number;
  /** From the receiver's CONNECT until its last queued message arrived. */
  ms: number;
  perSec: number;
}

export interface ConnectionsResult extends Usage {
  system: SystemName;
  target: number;
  connected: number;
  failed: number;
  firstError?: string;
  ms: number;
  perSec: number;
  connectP50: number | null;
  connectP99: number | null;
  rssBeforeMB: number;
  /** After the first half of the connections (absent in results of earlier versions). */
  rssMiddleMB?: number;
  rssAfterMB: number;
  /** (RSS after − before) / connections: fixed costs of the burst included. */
  bytesPerConnection: number;
  /** (RSS after − after the first half) / the second half: what one more connection costs. */
  marginalBytesPerConnection?: number;
  /** RSS after a full GC with every connection open (Node brokers; Mosquitto's RSS as it is). */
  rssSettledMB?: number;
  /** (settled RSS − before) / connections, before also read after a full GC: what idle connections hold. */
  settledBytesPerConnection?: number;
  /**
   * Of the settled figure, the main thread's JS heap per connection (heapUsed after the GC, after − before) and
   * what JS objects hold outside it (`external`: Buffers, ArrayBuffers); the rest is native memory (sockets,
   * allocator). Node brokers only, since round 7.
   */
  settledHeapBytesPerConnection?: number;
  settledExternalBytesPerConnection?: number;
  sourceAddresses: number;
  /** A cluster only: the connections placed on each node and its RSS readings (the fields above are their sums). */
  nodeRss?: NodeRss[];
}

export interface NodeRss {
  node: string;
  connections: number;
  rssBeforeMB: number;
  rssMiddleMB: number;
  rssAfterMB: number;
  rssSettledMB: number;
}

export interface SystemInfo {
  name: SystemName;
  label: string;
  version: string;
  notes: string[];
  /** Its broker processes (absent in results of earlier versions). */
  nodes?: { name: string; pid: number; port: number }[];
}

export interface ProfileEntry {
  /** Share of the busy time (self time, or inclusive time in `parley` lists). */
  selfPercent: number;
  selfMs: number;
  fn: string;
  where: string;
}

export interface ProfileStall {
  /** How long the thread was busy without an idle sample. */
  ms: number;
  /** When it began, from the profile's start. */
  atSeconds: number;
  /** The frames that took most of it (Parley's own where the stack has one). */
  frames: { frame: string; ms: number }[];
  /** The bench step it fell in, e.g. "1:1 chat 1,000 msg/s". */
  during: string;
}

export interface BenchResults {
  version: 1;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  systems: SystemInfo[];
  chat: ChatResult[];
  /** Group fan-out, one ladder per system: `users` is the group size, rates are the sender's. */
  fanout: ChatResult[];
  drain: DrainResult[];
  connections: ConnectionsResult[];
  /** Notes on the group scenario (skipped systems, settings). */
  groups: { groupSize: number; notes: string[] };
  ratios: Ratios;
  /**
   * With --cpu-prof: per broker process (the system's name, or a cluster node's), the top functions by
   * self time and Parley's own by inclusive time.
   */
  profiles: Record<string, { self: ProfileEntry[]; parley: ProfileEntry[]; stalls?: ProfileStall[] }>;
  errors: { system: string; scenario: string; message: string }[];
  /**
   * Broker processes that died (a crash of the system measured, not of the harness), with the last lines
   * of their logs: `scenario` is the one they died in, or "after X" between scenarios. The system is started
   * again for the scenarios left, and a scenario that had measured nothing yet runs once more. Absent in
   * results from before 2026-12-05.
   */
  crashes?: { system: string; scenario: string; message: string; logTail?: string }[];
}

export interface Ratio {
  vsMosquitto: number | null;
  vsAedes: number | null;
}

/** Parley / baseline for each Parley system; > 1 is better for throughput, worse for time and memory. */
export interface Ratios {
  chatPeak: Partial<Record<SystemName, Ratio>>;
  /** p99 of the step at half of the peak held for --hold-seconds (absent in earlier results). */
  chatP99AtHalfPeakHeld?: Partial<Record<SystemName, Ratio>>;
  chatP99AtHalfPeak: Partial<Record<SystemName, Ratio>>;
  fanoutPeak: Partial<Record<SystemName, Ratio>>;
  drainMs: Partial<Record<SystemName, Ratio>>;
  bytesPerConnection: Partial<Record<SystemName, Ratio>>;
  marginalBytesPerConnection: Partial<Record<SystemName, Ratio>>;
  settledBytesPerConnection?: Partial<Record<SystemName, Ratio>>;
  connectPerSec: Partial<Record<SystemName, Ratio>>;
}

/** Picks the peak and the half-peak step of a ladder. */
export function summarizeChat(steps: ChatStep[]): { peak: ChatStep | null; halfPeak: ChatStep | null } {
  const held = steps.filter((s) => s.broken === null);
  if (held.length === 0) return { peak: null, halfPeak: null };
  const peak = held.reduce((a, b) => (b.deliveredPerSec > a.deliveredPerSec ? b : a));
  const half = peak.deliveredPerSec / 2;
  // Nearest to half of the peak from below (the issue asks for p99 at half of peak, not above it).
  const below = held.filter((s) => s.deliveredPerSec <= half * 1.05);
  const pool = below.length ? below : held;
  const halfPeak = pool.reduce((a, b) => (Math.abs(b.deliveredPerSec - half) < Math.abs(a.deliveredPerSec - half) ? b : a));
  return { peak, halfPeak };
}

/** The Parley systems, each compared with the relays in the ratios. */
export const PARLEYS: readonly SystemName[] = ['parley-embedded', 'parley-redis', 'parley-cluster'];

/**
 * The options that change what a run measures or how (its ladders, load, limits, Parley's settings, Redis's
 * fsync, a profiler's cost). A run given any of them is an experiment: its charts stay beside its results
 * and do not replace bench/charts/latest*.svg, the full run's that BENCHMARKS.md shows.
 */
export const SHAPING_OPTIONS = [
  'quick', 'users', 'rates', 'group-rates', 'group-size', 'step-seconds', 'hold-seconds', 'p99-limit', 'drain', 'connections', 'source-addresses',
  'body-bytes', 'workers', 'parley-role', 'parley-build', 'parley-env', 'redis-url', 'redis-appendfsync', 'kafka-brokers', 'cpu-prof', 'heap-snapshots',
] as const;

/** Whether a run's options measure as the full run does (none of SHAPING_OPTIONS given). */
export function measuresAsFullRun(given: Readonly<Record<string, unknown>>): boolean {
  return SHAPING_OPTIONS.every((name) => given[name] === undefined || given[name] === false);
}

const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null || b === 0 ? null : a / b);

export function computeRatios(r: Pick<BenchResults, 'chat' | 'fanout' | 'drain' | 'connections'>): Ratios {
  const out: Ratios = { chatPeak: {}, chatP99AtHalfPeak: {}, fanoutPeak: {}, drainMs: {}, bytesPerConnection: {}, marginalBytesPerConnection: {}, settledBytesPerConnection: {}, connectPerSec: {} };
  const chat = (s: SystemName) => r.chat.find((c) => c.system === s);
  const fan = (s: SystemName) => r.fanout.find((c) => c.system === s);
  const drain = (s: SystemName) => r.drain.find((c) => c.system === s);
  const conn = (s: SystemName) => r.connections.find((c) => c.system === s);
  const both = <T>(get: (s: SystemName) => T | undefined, value: (t: T | undefined) => number | null | undefined, p: SystemName): Ratio => ({
    vsMosquitto: ratio(value(get(p)), value(get('mosquitto'))),
    vsAedes: ratio(value(get(p)), value(get('aedes'))),
  });
  for (const p of PARLEYS) {
    if (chat(p)) {
      out.chatPeak[p] = both(chat, (c) => c?.peak?.deliveredPerSec, p);
      out.chatP99AtHalfPeak[p] = both(chat, (c) => c?.halfPeak?.p99, p);
      if (chat(p)?.halfPeakHeld) (out.chatP99AtHalfPeakHeld ??= {})[p] = both(chat, (c) => c?.halfPeakHeld?.p99, p);
    }
    if (fan(p)) out.fanoutPeak[p] = both(fan, (c) => c?.peak?.deliveredPerSec, p);
    if (drain(p)) out.drainMs[p] = both(drain, (d) => d?.ms, p);
    if (conn(p)) {
      out.bytesPerConnection[p] = both(conn, (c) => c?.bytesPerConnection, p);
      out.marginalBytesPerConnection[p] = both(conn, (c) => c?.marginalBytesPerConnection, p);
      out.settledBytesPerConnection![p] = both(conn, (c) => c?.settledBytesPerConnection, p);
      out.connectPerSec[p] = both(conn, (c) => c?.perSec, p);
    }
  }
  return out;
}
