// Messages between the orchestrator (run.ts) and the load generator processes (worker.ts), over the
// child_process IPC channel.
import type { Timeline } from './tail.ts';

export interface ClientSpec {
  /** The broker node it connects to (a cluster has several, on the command's host). */
  port: number;
  clientId: string;
  username?: string;
  password?: string;
  clean: boolean;
  /** Subscribed at QoS 1 after CONNACK. */
  inbox: string;
  /** Where this client publishes its messages; absent for idle clients. */
  sendTo?: string;
}

export type Command =
  | {
      type: 'connect';
      host: string;
      clients: ClientSpec[];
      /** Parley answers each publish with an `ack` envelope on the sender's inbox; relays do not. */
      parley: boolean;
      localAddresses: string[];
      concurrency: number;
    }
  | {
      type: 'run';
      step: number;
      ratePerClient: number;
      durationMs: number;
      drainTimeoutMs: number;
      bodyBytes: number;
      /** Messages this generator's clients should receive; default: as many as it sent (1:1 pairs within it). */
      expectReceived?: number;
      /** The step's start on the monotonic clock all processes share (ns): every generator's timeline counts from it. */
      originNs: bigint;
    }
  | { type: 'close' };

export interface Connected {
  type: 'connected';
  ok: number;
  failed: number;
  firstError?: string;
  ms: number;
  /** Connect → CONNACK → SUBACK, µs histogram. */
  hist: number[];
}

export interface Ran {
  type: 'ran';
  step: number;
  sent: number;
  /** PUBACKs the senders got back. */
  pubacks: number;
  /** Parley `ack` envelopes (0 for relays). */
  appAcks: number;
  /** Parley `error` envelopes; examples in errorSamples. */
  errors: number;
  errorSamples: string[];
  received: number;
  /** Messages of other steps that arrived during this one (late or duplicated). */
  stray: number;
  /** The send window as it really ran, and how long after it the last message arrived. */
  windowMs: number;
  /** From the window's start until the last message arrived (at least the window). */
  spanMs: number;
  drainMs: number;
  complete: boolean;
  disconnects: number;
  /** End-to-end latency, send → receiver, µs histogram. */
  hist: number[];
  /**
   * Send → the sender's PUBACK, µs histogram: what a sender waits for before it may count its message as
   * taken. Parley PUBACKs once the message is stored (embedded: on disk; Redis: in its fsync'd AOF) and
   * its `ack` is written; a relay PUBACKs once it has passed the message on.
   */
  ackHist: number[];
  /** The same messages by when they were sent (bench/tail.ts). */
  timeline: Timeline;
}

export type Reply = Connected | Ran | { type: 'closed' } | { type: 'error'; message: string };
