// GET /v1/analytics/series: the metric rows of one metric and window length over a time range, checked
// strictly (anything unexpected is a 400), read from the archive's metric rows.
import type { Archive, MetricPoint } from '../consumers/archive.ts';
import { badRequest } from '../common/errors.ts';
import { HOUR, MINUTE, WINDOW_NAMES } from './windows.ts';
import { TOP } from './jobs/top-conversations.ts';

export interface SeriesQuery {
  metric: string;
  window: string;
  windowMs: number;
  from: number;
  to: number;
}

export interface SeriesPoint {
  windowStart: number;
  windowMs: number;
  value: number;
  labels?: Record<string, string>;
}

/** Default span and longest span per window length. */
const SPAN: Record<number, { default: number; max: number }> = {
  [MINUTE]: { default: HOUR, max: 7 * 86400_000 },
  [HOUR]: { default: 7 * 86400_000, max: 400 * 86400_000 },
};
const PARAMS = new Set(['metric', 'window', 'from', 'to']);
const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/;
const LATEST = 9_999_999_999_999;

/** A time as ms since the epoch (digits) or ISO 8601; anything else is a 400 naming the parameter. */
export function parseTime(value: unknown, name: string): number {
  if (typeof value !== 'string') throw badRequest(`${name} must be given once`);
  let ms = NaN;
  if (/^[0-9]{1,13}$/.test(value)) ms = Number(value);
  else if (ISO.test(value)) ms = Date.parse(value);
  if (!Number.isFinite(ms) || ms < 0 || ms > LATEST) throw badRequest(`${name} must be ms since the epoch or an ISO 8601 time`);
  return ms;
}

export function parseSeriesQuery(query: Record<string, unknown>, metrics: ReadonlySet<string>, now = Date.now()): SeriesQuery {
  for (const key of Object.keys(query)) if (!PARAMS.has(key)) throw badRequest(`unknown query parameter ${key}`);
  const { metric } = query;
  if (typeof metric !== 'string' || !metrics.has(metric)) throw badRequest(`metric must be one of ${[...metrics].join(', ')}`);
  const window = query.window ?? '1m';
  if (typeof window !== 'string' || !(window in WINDOW_NAMES)) throw badRequest('window must be 1m or 1h');
  const windowMs = WINDOW_NAMES[window];
  const span = SPAN[windowMs];
  const to = query.to === undefined ? now : parseTime(query.to, 'to');
  const from = query.from === undefined ? Math.max(0, to - span.default) : parseTime(query.from, 'from');
  if (!(to > from)) throw badRequest('to must be after from');
  if (to - from > span.max) throw badRequest(`at most ${span.max / 86400_000} days of ${window} windows at a time`);
  return { metric, window, windowMs, from, to };
}

/** Who may see which conversation ids in `top_conversations`. */
export type ConversationViewer = (conversation: string) => boolean;

/** A participant sees a 1:1 conversation's id; a group id is shown only to readers who see everything. */
export const participantViewer =
  (userId: string): ConversationViewer =>
  (conversation) =>
    conversation.startsWith('u:') && conversation.slice(2).split(':').includes(userId);

export async function readSeries(archive: Archive, q: SeriesQuery, canSee: ConversationViewer): Promise<SeriesPoint[]> {
  const rows = (await archive.metrics(q.metric, { from: q.from, to: q.to })).filter((p) => p.windowMs === q.windowMs && p.labels?.window === q.window);
  const points = q.metric === 'top_conversations' ? topPerWindow(rows, canSee) : rows;
  return points.map((p) => {
    const { window: _window, ...labels } = p.labels ?? {};
    return { windowStart: p.windowStart, windowMs: p.windowMs, value: p.value, ...(Object.keys(labels).length > 0 ? { labels } : {}) };
  });
}

/**
 * A window's top 10, ranked. A conversation that fell out of a window's top 10 keeps its older (smaller)
 * row, so the rows are ranked again here; ids the caller may not see are replaced by `hidden`.
 */
function topPerWindow(rows: MetricPoint[], canSee: ConversationViewer): MetricPoint[] {
  const byWindow = new Map<number, MetricPoint[]>();
  for (const p of rows) {
    if (!(p.value > 0) || !p.labels?.conversation) continue;
    const list = byWindow.get(p.windowStart) ?? [];
    list.push(p);
    byWindow.set(p.windowStart, list);
  }
  const out: MetricPoint[] = [];
  for (const start of [...byWindow.keys()].sort((a, b) => a - b)) {
    const ranked = byWindow
      .get(start)!
      .sort((a, b) => b.value - a.value || (a.labels!.conversation < b.labels!.conversation ? -1 : 1))
      .slice(0, TOP);
    ranked.forEach((p, i) => out.push({ ...p, labels: { conversation: canSee(p.labels!.conversation) ? p.labels!.conversation : 'hidden', rank: String(i + 1) } }));
  }
  return out;
}
