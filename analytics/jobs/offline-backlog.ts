// Offline backlog, as far as the event log shows it. The log has no "queued" or "delivered" events, only
// messages and the receipts receivers send back, so:
// - backlog_pending: 1:1 chat messages accepted in the window whose 'delivered' receipt had not arrived when
//   the 1-minute window closed (a lateness after its end); while the minute is open, the count so far.
//   A 1-hour window sums its closed minutes. Group messages are left out: their receipts name the sender's
//   1:1 conversation, which may sit in another partition. Clients that never send receipts count as backlog.
// - backlog_delivered, backlog_wait_ms: receipts in the window for messages that waited at least
//   PARLEY_ANALYTICS_OFFLINE_AFTER_MS (taken as delivered from an offline queue), and how long they waited.
import { IdSet } from '../id-set.ts';
import { defineJob, type JobSettings } from '../job.ts';
import { Quantiles, type QuantilesJSON } from '../sketches.ts';
import { MINUTE, refTime } from '../windows.ts';
import { quantileRows } from './delivery-latency.ts';

interface Backlog {
  /** Minute windows: ids still waiting for their receipt. */
  pending: IdSet;
  /**
   * Minute windows: what happened to `pending` since the last checkpoint, in order: `+id` taken, `-id` its
   * receipt came. Written with the batch's seen ids (takeChanges), not in the checkpoint: `pending` grows with
   * every message of the minute whose receipt has not come (all of them, for clients that send none), and a
   * checkpoint holding it was rewritten whole after every batch (4.3 MB at 5,000 msg/s, ten times a second).
   */
  changes: string[];
  /** Hour windows: the sum of its closed minutes' pending. */
  closed: number;
  waits: Quantiles;
}

interface Saved {
  /** Checkpoints written before the changes went to seen rows held the pending ids here. */
  pending?: string[];
  closed: number;
  waits: QuantilesJSON;
}

interface Partial {
  pending: number;
  waits: QuantilesJSON;
}

export const offlineBacklog = (settings: JobSettings) =>
  defineJob<Backlog, Partial>({
    name: 'backlog',
    metrics: ['backlog_pending', 'backlog_delivered', 'backlog_wait_ms'],
    empty: () => ({ pending: new IdSet(), changes: [], closed: 0, waits: new Quantiles() }),
    add(s, e, windowMs) {
      if (windowMs === MINUTE && (e.kind === 'text' || e.kind === 'attachment') && !e.group && s.pending.add(e.id)) {
        s.changes.push(`+${e.id}`);
      }
      const sent = refTime(e);
      if (sent !== undefined && e.ts - sent >= settings.offlineAfterMs) s.waits.add(e.ts - sent);
    },
    relatedTime: refTime,
    applyRelated(minute, e) {
      if (!minute.pending.delete(e.ref!)) return false;
      minute.changes.push(`-${e.ref!}`);
      return true;
    },
    closeMinute(minute, hour) {
      hour.closed += minute.pending.size;
    },
    takeChanges(minute) {
      if (minute.changes.length === 0) return undefined;
      const changes = minute.changes;
      minute.changes = [];
      return changes;
    },
    replayChanges(minute, changes) {
      for (const change of changes as string[]) {
        if (change[0] === '+') minute.pending.add(change.slice(1));
        else minute.pending.delete(change.slice(1));
      }
    },
    save: (s): Saved => ({ closed: s.closed, waits: s.waits.toJSON() }),
    load(saved) {
      const s = saved as Saved;
      // An older checkpoint's pending ids go out as changes with the next batch, before it is replaced.
      const pending = s.pending ?? [];
      return { pending: new IdSet(pending), changes: pending.map((id) => `+${id}`), closed: s.closed, waits: Quantiles.fromJSON(s.waits) };
    },
    partial: (s, windowMs) => ({ pending: windowMs === MINUTE ? s.pending.size : s.closed, waits: s.waits.toJSON() }),
    merge(partials) {
      const waits = new Quantiles();
      let pending = 0;
      for (const p of partials) {
        pending += p.pending;
        waits.merge(Quantiles.fromJSON(p.waits));
      }
      return { pending, waits: waits.toJSON() };
    },
    results(p) {
      const waits = Quantiles.fromJSON(p.waits);
      return [
        { metric: 'backlog_pending', value: p.pending },
        { metric: 'backlog_delivered', value: waits.count },
        ...quantileRows('backlog_wait_ms', waits, { p50: 0.5, max: 1 }),
      ];
    },
  });
