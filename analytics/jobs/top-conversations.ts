// The busiest conversations per window by chat messages (text and attachments; receipts are not chat).
// The log is keyed by conversation, so a conversation lives in one partition and the top 10 of the merged
// window is exactly the top 10 of the partitions' own top 10s.
import { defineJob } from '../job.ts';
import { TopCounts } from '../sketches.ts';

export const TOP = 10;
/** Conversations counted exactly per partition and window before the smallest are dropped (sketches.ts). */
const CAP = 10_000;

type Entries = [string, number][];

const byCount = (a: [string, number], b: [string, number]) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

export const topConversations = defineJob<TopCounts, Entries>({
  name: 'conversations',
  metrics: ['top_conversations'],
  empty: () => new TopCounts(CAP),
  add(s, e) {
    if (e.kind === 'text' || e.kind === 'attachment') s.add(e.conversation);
  },
  save: (s) => s.toJSON(),
  load: (saved) => TopCounts.fromJSON(saved as Entries, CAP),
  partial: (s) => s.top(TOP),
  merge(partials) {
    // Summed, in case a conversation moved partition (the topic was given more partitions).
    const all = new Map<string, number>();
    for (const p of partials) for (const [k, n] of p) all.set(k, (all.get(k) ?? 0) + n);
    return [...all.entries()].sort(byCount).slice(0, TOP);
  },
  results: (p) => p.map(([conversation, value]) => ({ metric: 'top_conversations', labels: { conversation }, value })),
});
