// `parley history --user U [--peer P | --group G] [--from T] [--to T]`: a user's or one conversation's
// history as NDJSON on stdout, oldest first, for analysts. Progress goes to stderr.
import type { Writable } from 'node:stream';
import type { Archive, ArchivedMessage } from '../consumers/archive.ts';
import { conversationOf, GROUP_ID, USER_ID } from '../common/envelope.ts';
import { EPOCH, firstIdAt } from '../common/ids.ts';

export interface HistoryQuery {
  user: string;
  peer?: string;
  group?: string;
  from: number;
  to: number;
}

/** Parses the command's options; throws with a usage message on anything invalid. */
export function parseHistoryArgs(values: Record<string, string | boolean | undefined>): HistoryQuery {
  const user = values.user;
  if (typeof user !== 'string' || !USER_ID.test(user)) throw new Error('--user must be a user id');
  const time = (name: string, fallback: number) => {
    const v = values[name];
    if (v === undefined) return fallback;
    const t = typeof v === 'string' ? (/^[0-9]+$/.test(v) ? Number(v) : Date.parse(v)) : NaN;
    if (!Number.isFinite(t)) throw new Error(`--${name} must be an ISO date or ms since the epoch`);
    return t;
  };
  const q: HistoryQuery = { user, from: time('from', EPOCH), to: time('to', Date.now() + 1) };
  if (q.from >= q.to) throw new Error('--from must be before --to');
  if (values.peer !== undefined) {
    if (typeof values.peer !== 'string' || !USER_ID.test(values.peer)) throw new Error('--peer must be a user id');
    q.peer = values.peer;
  }
  if (values.group !== undefined) {
    if (typeof values.group !== 'string' || !GROUP_ID.test(values.group)) throw new Error('--group must be a group id');
    q.group = values.group;
  }
  if (q.peer && q.group) throw new Error('give --peer or --group, not both');
  return q;
}

/** Writes the history; returns how many messages were written. */
export async function exportHistory(archive: Archive, q: HistoryQuery, out: Writable, progress: (n: number, done: boolean) => void): Promise<number> {
  let n = 0;
  const write = async (m: ArchivedMessage) => {
    if (!out.write(JSON.stringify(m) + '\n')) await new Promise((r) => out.once('drain', r));
    if (++n % 1000 === 0) progress(n, false);
  };
  if (q.peer || q.group) {
    const conversation = conversationOf({ from: q.user, to: q.peer ?? q.user, group: q.group });
    for await (const m of archive.scan(conversation, { from: q.from, to: q.to })) await write(m);
  } else {
    // Every conversation of the user, in id (= time) order, through the per-user index.
    // Ids sort by time: start just below the first id the start time can have.
    const floor = BigInt(firstIdAt(q.from));
    let after: string | undefined = floor > 0n ? (floor - 1n).toString() : undefined;
    for (;;) {
      const batch = await archive.sync(q.user, { after, limit: 500 });
      for (const m of batch) {
        if (m.ts >= q.to) {
          progress(n, true);
          return n;
        }
        // Receipts are in the user's sync, but an export is of messages (their state is on them).
        if (m.ts >= q.from && m.kind !== 'receipt') await write(m);
      }
      if (batch.length < 500) break;
      after = batch[batch.length - 1].id;
    }
  }
  progress(n, true);
  return n;
}
