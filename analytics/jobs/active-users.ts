// Active users per window: distinct senders (of any kind of message). Exact up to
// PARLEY_ANALYTICS_EXACT_DISTINCT per partition and per merged window, HyperLogLog beyond (sketches.ts).
import { defineJob, type JobSettings } from '../job.ts';
import { DistinctSet, type DistinctJSON } from '../sketches.ts';

export const activeUsers = (settings: JobSettings) =>
  defineJob<DistinctSet, DistinctJSON>({
    name: 'users',
    metrics: ['active_users'],
    empty: () => new DistinctSet(settings.exactDistinct),
    add: (s, e) => s.add(e.from),
    save: (s) => s.toJSON(),
    load: (saved) => DistinctSet.fromJSON(saved as DistinctJSON, settings.exactDistinct),
    partial: (s) => s.toJSON(),
    merge(partials) {
      const all = new DistinctSet(settings.exactDistinct);
      for (const p of partials) all.merge(DistinctSet.fromJSON(p, settings.exactDistinct));
      return all.toJSON();
    },
    results: (p) => [{ metric: 'active_users', value: DistinctSet.fromJSON(p, settings.exactDistinct).size() }],
  });
