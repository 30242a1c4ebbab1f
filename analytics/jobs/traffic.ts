// Messages per window, by kind (text, attachment, receipt) and by the sender's transport (tcp, tls, ws).
import { defineJob, type MetricValue } from '../job.ts';

type Counts = Record<string, number>;
interface Traffic {
  kinds: Counts;
  transports: Counts;
}

/** Always written, as zeros too, so every window has a point on every line. */
const KINDS = ['text', 'attachment', 'receipt'];
const TRANSPORTS = ['tcp', 'tls', 'ws'];

const sum = (into: Counts, from: Counts) => {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
};

const rows = (metric: string, label: string, counts: Counts, always: string[]): MetricValue[] =>
  [...new Set([...always, ...Object.keys(counts).sort()])].map((k) => ({ metric, labels: { [label]: k }, value: counts[k] ?? 0 }));

export const traffic = defineJob<Traffic, Traffic>({
  name: 'traffic',
  metrics: ['messages', 'messages_by_transport'],
  empty: () => ({ kinds: {}, transports: {} }),
  add(s, e) {
    s.kinds[e.kind] = (s.kinds[e.kind] ?? 0) + 1;
    s.transports[e.transport] = (s.transports[e.transport] ?? 0) + 1;
  },
  save: (s) => s,
  load: (saved) => saved as Traffic,
  partial: (s) => s,
  merge(partials) {
    const out: Traffic = { kinds: {}, transports: {} };
    for (const p of partials) {
      sum(out.kinds, p.kinds);
      sum(out.transports, p.transports);
    }
    return out;
  },
  results: (p) => [...rows('messages', 'kind', p.kinds, KINDS), ...rows('messages_by_transport', 'transport', p.transports, TRANSPORTS)],
});
