// What a stream job is: how one window's state takes an event, how it is saved in a checkpoint, what
// part of it another partition's copy of the same window can be merged with, and which metric rows the
// merged window gives. The runner (engine.ts) owns everything else: the log, event time, the watermark,
// duplicates, checkpoints and the writes.
import type { AnalyticsEvent } from './windows.ts';

export interface MetricValue {
  metric: string;
  labels?: Record<string, string>;
  value: number;
}

export interface JobSettings {
  /** Distinct senders counted exactly up to this many per window, then by HyperLogLog. */
  exactDistinct: number;
  /** A delivery that took at least this long is taken as one that waited for an offline receiver. */
  offlineAfterMs: number;
}

/**
 * One job over windows of state S; P is the mergeable "partial" of a window that each partition writes
 * and that the partitions' copies of one window are merged from. Everything must be deterministic: the
 * same events in the same order give the same state, partial and rows.
 */
export interface Job<S, P> {
  readonly name: string;
  /** The metric names it writes (besides `late_events`), for the API and for replays. */
  readonly metrics: readonly string[];
  empty(windowMs: number): S;
  /** An accepted event (not late, not a duplicate) of this window. */
  add(state: S, event: AnalyticsEvent, windowMs: number): void;
  /** An event may also touch the open 1-minute window of another time: a receipt, its message's window. */
  relatedTime?(event: AnalyticsEvent): number | undefined;
  /** Applies the event to that window; true when it changed something. */
  applyRelated?(minute: S, event: AnalyticsEvent): boolean;
  /** A 1-minute window closes; `hour` is its (still open) 1-hour window. */
  closeMinute?(minute: S, hour: S): void;
  /**
   * For a minute window's state that grows with its events (a set of ids, which a checkpoint would rewrite
   * whole after every batch): what changed since the last call, JSON-able, or undefined when nothing did;
   * the call forgets it. The engine writes it beside the batch's seen ids (StateStore), `save` leaves that
   * part of the state out, and `replayChanges` rebuilds it from those rows, oldest first, on top of `load`.
   */
  takeChanges?(minute: S): unknown;
  replayChanges?(minute: S, changes: unknown): void;
  save(state: S): unknown;
  load(saved: unknown, windowMs: number): S;
  partial(state: S, windowMs: number): P;
  /** Merges partitions' partials of one window (at least one). */
  merge(partials: P[], windowMs: number): P;
  results(merged: P, windowMs: number): MetricValue[];
}

export type AnyJob = Job<any, any>;

/** Identity helper that keeps S and P checked inside a job's definition. */
export const defineJob = <S, P>(job: Job<S, P>): Job<S, P> => job;

/** The metric every job writes: events that came after their 1-minute window had closed. */
export const LATE_EVENTS = 'late_events';
