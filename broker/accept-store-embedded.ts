import path from 'node:path';
import type { Journal, JournalChannel } from '../common/journal.ts';
import type { AcceptStore, AcceptWrite, Stored } from './accept-store.ts';
import { ClaimArchive } from './claim-archive.ts';
import { ClaimIndex, type ClaimCursor } from './claim-index.ts';
import type { EmbeddedOfflineQueue } from './offline-queue-embedded.ts';
import type { EmbeddedOutbox } from './outbox-embedded.ts';

/**
 * Claims in memory (outside the JS heap: ClaimIndex), made durable in the node's journal (channel `d`,
 * `{expiresAt} {sender} {cid} {claim}`) together with the message's queue and outbox records: one write, one
 * fsync. The claim is appended last, so a write torn by a crash keeps a message without its claim (a resend
 * would store it again) but never a claim without its message (a resend would be acked for a message that
 * is nowhere). When the journal compacts, the claims written since the last compaction move to the claim
 * archive (ClaimArchive, beside the journal), once the journal is on disk, instead of every live claim
 * being rewritten into it. At start the archive is read, then the journal: a resend after a restart is
 * acked under its first id.
 */
export class EmbeddedAcceptStore implements AcceptStore {
  readonly adapter = 'embedded';
  private readonly claims = new ClaimIndex();
  private readonly archive: ClaimArchive;
  /** Claims stored before this are in the archive; the journal has those after it. */
  private archived: ClaimCursor;
  /** Where a compaction under way moves claims to the archive up to (noted before the journal's sync). */
  private archiving: ClaimCursor;
  private readonly log: JournalChannel;

  constructor(
    private readonly journal: Journal,
    private readonly queue: EmbeddedOfflineQueue,
    private readonly outbox: EmbeddedOutbox,
  ) {
    const claims = this.claims;
    const replay = (record: string) => {
      const [expiresAt, sender, cid] = record.split(' ', 3);
      // One clock reading, so the expiry is the one written (not a few ms later at every restart).
      const now = Date.now();
      const ttl = Number(expiresAt) - now;
      if (ttl > 0) claims.set(`${sender}\n${cid}`, record.slice(expiresAt.length + sender.length + cid.length + 3), ttl, now);
    };
    this.archive = new ClaimArchive(path.dirname(journal.file), `${path.basename(journal.file, '.log')}.claims`, journal.fsync);
    this.archive.load(replay, Date.now(), () => claims.position(claims.end()));
    this.archived = this.archiving = claims.end();
    this.log = journal.channel(
      'd',
      {
        // Those not in the archive: the claims stored since the compaction under way started (few, read at once).
        live: () => [...this.unarchived()],
        // None that a compaction would rewrite: it moves them to the archive instead, so the claims make the
        // journal no less sparse (counted as live, they kept a journal of claims and removals from ever
        // looking sparse: four records a delivered message, one of them live).
        liveCount: () => 0,
        compactionStarts: () => {
          this.archiving = claims.end();
        },
        compacting: async () => {
          const upTo = this.archiving;
          await this.archive.append(claims.lines('', Date.now(), this.archived, upTo), Date.now(), claims.position(upTo), claims.keptFrom());
          this.archived = upTo;
        },
      },
      replay,
    );
  }

  /** The journal records of the claims not in the archive. */
  private *unarchived(): Generator<string> {
    for (const buf of this.claims.lines('', Date.now(), this.archived)) for (const line of buf.toString('utf8').split('\n')) if (line) yield line;
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
    await this.archive.close();
    this.claims.clear();
  }
}
