import type { Journal, JournalChannel } from '../common/journal.ts';
import type { AcceptStore, AcceptWrite, Stored } from './accept-store.ts';
import { ClaimIndex } from './claim-index.ts';
import type { EmbeddedOfflineQueue } from './offline-queue-embedded.ts';
import type { EmbeddedOutbox } from './outbox-embedded.ts';

/**
 * Claims in memory (outside the JS heap: ClaimIndex), made durable in the node's journal (channel `d`, `{expiresAt} {sender} {cid} {claim}`)
 * together with the message's queue and outbox records: one write, one fsync. The claim is appended last,
 * so a write torn by a crash keeps a message without its claim (a resend would store it again) but never a
 * claim without its message (a resend would be acked for a message that is nowhere). Claims are replayed
 * at start, so a resend after a restart is acked under its first id; a compaction keeps the unexpired ones.
 */
export class EmbeddedAcceptStore implements AcceptStore {
  readonly adapter = 'embedded';
  private readonly claims = new ClaimIndex();
  private readonly log: JournalChannel;

  constructor(
    private readonly journal: Journal,
    private readonly queue: EmbeddedOfflineQueue,
    private readonly outbox: EmbeddedOutbox,
  ) {
    const claims = this.claims;
    this.log = journal.channel(
      'd',
      {
        live: function* () {
          for (const { key, value, expiresAt } of claims.live()) yield `${expiresAt} ${key.replace('\n', ' ')} ${value}`;
        },
        liveCount: () => claims.size,
        // The same lines in bytes: a compaction rewrites every claim of the last 24 h.
        liveLines: (prefix) => claims.lines(prefix),
      },
      (record) => {
        const [expiresAt, sender, cid] = record.split(' ', 3);
        const ttl = Number(expiresAt) - Date.now();
        if (ttl > 0) claims.set(`${sender}\n${cid}`, record.slice(expiresAt.length + sender.length + cid.length + 3), ttl);
      },
    );
  }

  store(w: AcceptWrite): Stored {
    const key = `${w.sender}\n${w.cid}`;
    const ttlMs = w.ttlSeconds * 1000;
    const earlier = this.claims.setIfAbsent(key, w.claim, ttlMs);
    // The first store of this cid may still be on its way to the disk: the answer waits for it.
    if (earlier !== undefined) return { written: Promise.resolve(earlier), durable: this.journal.synced() };
    let wasWritten = false;
    let wrote!: (claim: null) => void;
    let failed!: (err: unknown) => void;
    const written = new Promise<null>((resolve, reject) => {
      wrote = resolve;
      failed = reject;
    });
    let durable: Promise<void>;
    try {
      // One append, in this order (the claim last), one promise for the three.
      durable = this.journal.appendAll(
        [this.queue.stage(w.queue), this.outbox.stage(w.outbox), { channel: this.log, records: [`${Date.now() + ttlMs} ${w.sender} ${w.cid} ${w.claim}`] }],
        true,
        () => {
          wasWritten = true;
          wrote(null);
        },
      );
    } catch (err) {
      durable = Promise.reject(err);
    }
    durable.catch((err: unknown) => {
      // Not written: the claim goes with the records, and a resend stores again. Written but not synced: it
      // stays (the records may be on disk, and replay then), so a resend finds out which way it went.
      if (!wasWritten) this.claims.delete(key);
      failed(err);
    });
    return { written, durable };
  }

  async close(): Promise<void> {
    this.log.close();
    this.claims.clear();
  }
}
