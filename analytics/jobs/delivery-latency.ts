// Delivery latency per window: accept → 'delivered' receipt, taken from the receipt alone: its own ts
// minus the acceptance time in the Snowflake id it refers to (parseId(ref).ts). Windowed by the receipt's
// time. Exact nearest-rank percentiles up to 2048 receipts per window, 1 %-accurate buckets beyond.
import { defineJob, type MetricValue } from '../job.ts';
import { Quantiles, type QuantilesJSON } from '../sketches.ts';
import { refTime } from '../windows.ts';

export const LATENCY_QUANTILES: Record<string, number> = { p50: 0.5, p95: 0.95, p99: 0.99 };

export function quantileRows(metric: string, q: Quantiles, wanted: Record<string, number>): MetricValue[] {
  if (q.count === 0) return [];
  return Object.entries(wanted).map(([name, p]) => ({ metric, labels: { q: name }, value: name === 'max' ? q.max : Math.round(q.quantile(p)!) }));
}

export const deliveryLatency = defineJob<Quantiles, QuantilesJSON>({
  name: 'latency',
  metrics: ['delivery_latency_ms', 'delivery_receipts'],
  empty: () => new Quantiles(),
  add(s, e) {
    const sent = refTime(e);
    if (sent !== undefined) s.add(e.ts - sent);
  },
  save: (s) => s.toJSON(),
  load: (saved) => Quantiles.fromJSON(saved as QuantilesJSON),
  partial: (s) => s.toJSON(),
  merge(partials) {
    const all = new Quantiles();
    for (const p of partials) all.merge(Quantiles.fromJSON(p));
    return all.toJSON();
  },
  results(p) {
    const q = Quantiles.fromJSON(p);
    return [{ metric: 'delivery_receipts', value: q.count }, ...quantileRows('delivery_latency_ms', q, LATENCY_QUANTILES)];
  },
});
