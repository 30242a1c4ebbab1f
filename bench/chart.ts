// The bench's charts, as self-contained SVG (no dependency). renderChart: throughput against latency for
// every system, delivered msg/s on a log x axis, latency on a log y axis; solid lines are p99, dashed p50; a
// cross marks the step past the limit. renderTailChart: each system's step at half of its peak over time,
// the slowest message of every 100 ms, which shows whether its p99 is bursts or a steady tail.
import type { BenchResults } from './results.ts';
import { LABELS } from './systems.ts';
import { LATE_MS, summarizeTail, TAIL_BUCKET_MS, tailShort } from './tail.ts';

const COLORS: Record<string, string> = {
  'parley-embedded': '#d62728',
  'parley-redis': '#ff7f0e',
  'parley-cluster': '#9467bd',
  aedes: '#1f77b4',
  mosquitto: '#2ca02c',
};

const W = 960;
const H = 520;
const M = { left: 70, right: 290, top: 50, bottom: 60 };

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const r1 = (v: number) => Math.round(v * 10) / 10;
const tickLabel = (v: number) => (v >= 1000 ? `${v / 1000}k` : v >= 1 ? String(v) : v.toFixed(2).replace(/0+$/, ''));
const pw = W - M.left - M.right;
const ph = H - M.top - M.bottom;

/** 1-2-5 ticks of a log axis from min to max (both powers of ten); the powers of ten are major. */
function logTicks(min: number, max: number): { v: number; major: boolean }[] {
  const out: { v: number; major: boolean }[] = [];
  for (let d = min; d <= max * 1.0001; d *= 10) {
    for (const k of [1, 2, 5]) {
      if (d * k > max * 1.0001) break;
      out.push({ v: d * k, major: k === 1 });
    }
  }
  return out;
}

/** Powers of ten around `values`: below the least (and at most `low`, at least 0.01), above the greatest (and at least `high`). */
function decades(values: number[], low: number, high: number): [number, number] {
  const min = Math.pow(10, Math.floor(Math.log10(Math.max(0.01, Math.min(...values, low)))));
  return [min, Math.pow(10, Math.ceil(Math.log10(Math.max(...values, high))))];
}

/** A log scale from [min, max] onto `length` pixels from `start` (upwards when `flip`, as a y axis). */
function logScale(min: number, max: number, start: number, length: number, flip = false): (v: number) => number {
  return (v) => {
    const f = (Math.log10(Math.max(v, min)) - Math.log10(min)) / (Math.log10(max) - Math.log10(min));
    return r1(flip ? start + length - f * length : start + f * length);
  };
}

const logScaleY = (minY: number, maxY: number) => logScale(minY, maxY, M.top, ph, true);

/** A polyline through the points. */
const pathOf = (points: { x: number; y: number }[]) => points.map((p, k) => `${k ? 'L' : 'M'}${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ');

/** Series i's colour swatch in the legend right of the plot; returns where its text starts. */
function swatch(out: string[], i: number, spacing: number, color: string): { x: number; y: number } {
  const y = M.top + 10 + i * spacing;
  const x = M.left + pw + 16;
  out.push(`<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" stroke="${color}" stroke-width="3"/>`);
  return { x: x + 30, y };
}

function gridY(out: string[], minY: number, maxY: number, sy: (v: number) => number): void {
  for (const { v, major } of logTicks(minY, maxY)) {
    out.push(`<line x1="${M.left}" y1="${sy(v)}" x2="${M.left + pw}" y2="${sy(v)}" stroke="${major ? '#ddd' : '#f3f3f3'}"/>`);
    out.push(`<text x="${M.left - 6}" y="${sy(v) + 4}" text-anchor="end">${tickLabel(v)}</text>`);
  }
}

/** The title, the subtitle and the frame with its axis names. */
function frame(out: string[], title: string, subtitle: string, xName: string, yName: string): void {
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${M.left}" y="40" fill="#555">${esc(subtitle)}</text>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">${esc(xName)}</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yName)}</text>`);
}

/** A dotted line across the plot at latency v, named. */
function lineAt(out: string[], v: number, sy: (v: number) => number, name: string): void {
  out.push(`<line x1="${M.left}" y1="${sy(v)}" x2="${M.left + pw}" y2="${sy(v)}" stroke="#888" stroke-dasharray="2 3"/>`);
  out.push(`<text x="${M.left + pw - 4}" y="${sy(v) - 4}" text-anchor="end" fill="#666">${esc(name)}</text>`);
}

const machineText = (r: BenchResults) => {
  const m = r.machine as { cores?: number; model?: string };
  return `${r.startedAt.slice(0, 10)} · ${m.cores ?? '?'} cores ${m.model ?? ''}`;
};

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
  const [minY, maxY] = decades(all.flatMap((p) => [p.p50, p.p99]), 1, 10);
  const sx = logScale(minX, maxX, M.left, pw);
  const sy = logScaleY(minY, maxY);
  const out: string[] = [];
  frame(
    out,
    `1:1 chat, QoS 1, ${r.chat[0]?.users ?? 0} users online — latency vs delivered throughput`,
    `${machineText(r)} · solid p99, dashed p50, × = step past the limit${r.quick ? ' · QUICK MODE' : ''}`,
    'delivered messages/s (log scale)',
    'end-to-end latency (ms, log scale)',
  );
  // Grid and axes: 1-2-5 steps on both.
  for (const { v, major } of logTicks(minX, maxX)) {
    out.push(`<line x1="${sx(v)}" y1="${M.top}" x2="${sx(v)}" y2="${M.top + ph}" stroke="${major ? '#ddd' : '#f3f3f3'}"/>`);
    out.push(`<text x="${sx(v)}" y="${M.top + ph + 18}" text-anchor="middle">${tickLabel(v)}</text>`);
  }
  gridY(out, minY, maxY, sy);
  const limit = Number((r.options as { p99LimitMs?: number }).p99LimitMs ?? 0);
  if (limit > minY && limit < maxY) lineAt(out, limit, sy, `p99 limit ${limit} ms`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  // Series.
  series.forEach((s, i) => {
    const color = COLORS[s.system] ?? '#000';
    for (const key of ['p99', 'p50'] as const) {
      const d = pathOf(s.points.map((p) => ({ x: sx(p.x), y: sy(p[key]) })));
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
    const at = swatch(out, i, 22, color);
    const peak = r.chat.find((c) => c.system === s.system)?.peak;
    out.push(`<text x="${at.x}" y="${at.y + 4}">${esc(`${LABELS[s.system]}${peak ? ` (peak ${Math.round(peak.deliveredPerSec / 100) / 10}k)` : ''}`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Each system's 1:1 step at half of its peak, over the step: the slowest message sent in each 100 ms (log
 * y), with the LATE_MS line. The step held longer after the ladder (--hold-seconds) where there is one, else
 * the ladder's. Null when no ladder has a half-peak step with a timeline (results of earlier versions of the
 * bench).
 */
const tailStep = (c: BenchResults['chat'][number]) => (c.halfPeakHeld?.timeline?.length ? c.halfPeakHeld : c.halfPeak);

export function renderTailChart(r: BenchResults): string | null {
  const series = r.chat
    .filter((c) => tailStep(c)?.timeline?.length)
    .map((c) => {
      const step = tailStep(c)!;
      const points = step.timeline!.flatMap(([n, , slowest], i) => (n > 0 ? [{ x: ((i + 0.5) * TAIL_BUCKET_MS) / 1000, y: slowest / 1000 }] : []));
      // How late the generators' send loop was in each 100 ms (results from round 30 on).
      const lags = step.timeline!.flatMap(([, , , lag], i) => (lag !== undefined ? [{ x: ((i + 0.5) * TAIL_BUCKET_MS) / 1000, y: lag / 1000 }] : []));
      return { system: c.system, step, points, lags };
    });
  if (series.length === 0) return null;
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(...series.map((s) => (s.step.timeline!.length * TAIL_BUCKET_MS) / 1000));
  const [minY, maxY] = decades(all.map((p) => p.y), 1, LATE_MS * 2);
  const every = [1, 2, 5, 10, 20, 30, 60].find((k) => maxX / k <= 12) ?? 60;
  const sx = (v: number) => r1(M.left + (v / maxX) * pw);
  const sy = logScaleY(minY, maxY);
  const out: string[] = [];
  frame(
    out,
    `1:1 chat at half of each system's peak — the slowest message of every ${TAIL_BUCKET_MS} ms`,
    `${machineText(r)} · a steady line is a steady tail, spikes are bursts (a pause, a stall)${r.quick ? ' · QUICK MODE' : ''}`,
    'seconds into the step (by when a message was sent)',
    'slowest end-to-end latency (ms, log scale)',
  );
  for (let v = 0; v <= maxX + 1e-9; v += every) {
    out.push(`<line x1="${sx(v)}" y1="${M.top}" x2="${sx(v)}" y2="${M.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${sx(v)}" y="${M.top + ph + 18}" text-anchor="middle">${v}</text>`);
  }
  gridY(out, minY, maxY, sy);
  lineAt(out, LATE_MS, sy, `${LATE_MS} ms`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  series.forEach((s, i) => {
    const color = COLORS[s.system] ?? '#000';
    out.push(`<path d="${pathOf(s.points.map((p) => ({ x: sx(p.x), y: sy(p.y) })))}" fill="none" stroke="${color}" stroke-width="1.5" opacity="0.9"/>`);
    // A spike of the solid line with none of the dotted one under it is the system's own; with one, the load's.
    if (s.lags.length) {
      const clip = (y: number) => Math.min(maxY, Math.max(minY, y));
      out.push(`<path d="${pathOf(s.lags.map((p) => ({ x: sx(p.x), y: sy(clip(p.y)) })))}" fill="none" stroke="${color}" stroke-width="1" stroke-dasharray="1,2" opacity="0.7"/>`);
    }
    const at = swatch(out, i, 64, color);
    out.push(`<text x="${at.x}" y="${at.y + 4}">${esc(LABELS[s.system] ?? s.system)}</text>`);
    const tail = summarizeTail(s.step.timeline!);
    const lines = [`@ ${Math.round(s.step.deliveredPerSec).toLocaleString('en-US')} msg/s: p99 ${s.step.p99?.toFixed(2) ?? '–'} ms`, tailShort(tail), tail.sendLagMaxMs === null ? '' : `dotted: load sent ≤ ${tail.sendLagMaxMs.toFixed(1)} ms late`].filter(Boolean);
    lines.forEach((line, k) => out.push(`<text x="${at.x}" y="${at.y + 19 + k * 14}" fill="#555" font-size="11">${esc(line)}</text>`));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
