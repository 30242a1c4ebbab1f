// Throughput against latency for every system, as a self-contained SVG (no dependency): delivered msg/s
// on a log x axis, latency on a log y axis; solid lines are p99, dashed p50; a cross marks the step past the limit.
import type { BenchResults } from './results.ts';
import { LABELS } from './systems.ts';

const COLORS: Record<string, string> = {
  'parley-embedded': '#d62728',
  'parley-redis': '#ff7f0e',
  'parley-cluster': '#9467bd',
  aedes: '#1f77b4',
  mosquitto: '#2ca02c',
};

const W = 900;
const H = 520;
const M = { left: 70, right: 250, top: 50, bottom: 60 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(r: BenchResults): string {
  const series = r.chat.map((c) => ({
    system: c.system,
    points: c.steps.filter((s) => s.p50 !== null && s.p99 !== null).map((s) => ({ x: s.deliveredPerSec, p50: s.p50!, p99: s.p99!, broken: s.broken !== null })),
  }));
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x).filter((x) => x > 0);
  // Both axes logarithmic: Parley's peaks and Mosquitto's are an order of magnitude apart.
  const minX = Math.pow(10, Math.floor(Math.log10(Math.max(1, Math.min(...xs, 1000)))));
  const maxX = Math.pow(10, Math.ceil(Math.log10(Math.max(...xs, 10_000) * 1.05)));
  const lat = all.flatMap((p) => [p.p50, p.p99]);
  const minY = Math.pow(10, Math.floor(Math.log10(Math.max(0.01, Math.min(...lat, 1)))));
  const maxY = Math.pow(10, Math.ceil(Math.log10(Math.max(...lat, 10))));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const r1 = (v: number) => Math.round(v * 10) / 10;
  const sx = (v: number) => r1(M.left + ((Math.log10(Math.max(v, minX)) - Math.log10(minX)) / (Math.log10(maxX) - Math.log10(minX))) * pw);
  const sy = (v: number) => r1(M.top + ph - ((Math.log10(Math.max(v, minY)) - Math.log10(minY)) / (Math.log10(maxY) - Math.log10(minY))) * ph);
  const label = (v: number) => (v >= 1000 ? `${v / 1000}k` : v >= 1 ? String(v) : v.toFixed(2).replace(/0+$/, ''));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  const title = `1:1 chat, QoS 1, ${r.chat[0]?.users ?? 0} users online — latency vs delivered throughput`;
  out.push(`<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  const m = r.machine as { cores?: number; model?: string };
  out.push(`<text x="${M.left}" y="40" fill="#555">${esc(`${r.startedAt.slice(0, 10)} · ${m.cores ?? '?'} cores ${m.model ?? ''} · solid p99, dashed p50, × = step past the limit${r.quick ? ' · QUICK MODE' : ''}`)}</text>`);
  // Grid and axes: 1-2-5 steps on both.
  for (let d = minX; d <= maxX * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > maxX * 1.0001) break;
      out.push(`<line x1="${sx(v)}" y1="${M.top}" x2="${sx(v)}" y2="${M.top + ph}" stroke="${k === 1 ? '#ddd' : '#f3f3f3'}"/>`);
      out.push(`<text x="${sx(v)}" y="${M.top + ph + 18}" text-anchor="middle">${label(v)}</text>`);
    }
  }
  for (let d = minY; d <= maxY * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k;
      if (v > maxY * 1.0001) break;
      out.push(`<line x1="${M.left}" y1="${sy(v)}" x2="${M.left + pw}" y2="${sy(v)}" stroke="${k === 1 ? '#ddd' : '#f3f3f3'}"/>`);
      out.push(`<text x="${M.left - 6}" y="${sy(v) + 4}" text-anchor="end">${label(v)}</text>`);
    }
  }
  const limit = Number((r.options as { p99LimitMs?: number }).p99LimitMs ?? 0);
  if (limit > minY && limit < maxY) {
    out.push(`<line x1="${M.left}" y1="${sy(limit)}" x2="${M.left + pw}" y2="${sy(limit)}" stroke="#888" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${M.left + pw - 4}" y="${sy(limit) - 4}" text-anchor="end" fill="#666">p99 limit ${limit} ms</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">delivered messages/s (log scale)</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">end-to-end latency (ms, log scale)</text>`);
  // Series.
  series.forEach((s, i) => {
    const color = COLORS[s.system] ?? '#000';
    for (const key of ['p99', 'p50'] as const) {
      const d = s.points.map((p, k) => `${k ? 'L' : 'M'}${sx(p.x).toFixed(1)} ${sy(p[key]).toFixed(1)}`).join(' ');
      if (d) out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${key === 'p50' ? ' stroke-dasharray="5 4" opacity="0.8"' : ''}/>`);
      for (const p of s.points) {
        const [cx, cy] = [sx(p.x), sy(p[key])];
        out.push(
          p.broken
            ? `<path d="M${cx - 5} ${cy - 5}L${cx + 5} ${cy + 5}M${cx - 5} ${cy + 5}L${cx + 5} ${cy - 5}" stroke="${color}" stroke-width="2"/>`
            : `<circle cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="3" fill="${key === 'p99' ? color : '#fff'}" stroke="${color}"/>`,
        );
      }
    }
    const ly = M.top + 10 + i * 22;
    const lx = M.left + pw + 16;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="3"/>`);
    const peak = r.chat.find((c) => c.system === s.system)?.peak;
    out.push(`<text x="${lx + 30}" y="${ly + 4}">${esc(`${LABELS[s.system]}${peak ? ` (peak ${Math.round(peak.deliveredPerSec / 100) / 10}k)` : ''}`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
