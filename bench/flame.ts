// A flame graph of one thread's V8 CPU profile (node --cpu-prof), as a self-contained SVG like the bench's
// other charts. Each bar is a function in a call stack: its width is the time the thread spent in it and
// in what it called, the bars above it are what it called, and the widest come first (left). Only busy
// time is drawn: idle samples (the thread waiting in epoll) are left out, and with `windows` so is
// everything outside the measured steps (start-up, sign-in, connection bursts). Colours tell whose code a
// bar is: Parley's own, a dependency's, Node's, or native (V8, the garbage collector, system calls).
// Hovering a bar shows its file and line, and its time.
//
// No dependency: the flame-graph tools on npm read other formats (perf, `node --prof` logs) or draw in a
// browser, and Brendan Gregg's flamegraph.pl and its Rust port want folded stacks and a toolchain of their
// own, where this is one pass over the profile's tree.
import { esc } from './chart.ts';
import { isOwn, where, type CpuProfile, type ProfileWindow } from './profile.ts';

export interface FlameOptions {
  title: string;
  /** A second line under the title: what was running. */
  subtitle?: string;
  /** Only the samples inside these (the measured steps); none given: the whole profile. */
  windows?: ProfileWindow[];
}

interface Frame {
  fn: string;
  url: string;
  line: number;
  /** µs in this frame and everything it called. */
  total: number;
  /** µs in this frame itself. */
  self: number;
  children: Map<string, Frame>;
}

const W = 1200;
const ROW = 17;
const TOP = 64;
const PAD = 10;
/** Bars narrower than this are not drawn (nor what they called): a flame graph is read by its wide bars. */
const MIN_PX = 0.6;
const CHAR_PX = 6.4;

type Kind = 'parley' | 'dependency' | 'node' | 'native';

const KINDS: { kind: Kind; label: string; hue: number }[] = [
  { kind: 'parley', label: "Parley's code", hue: 16 },
  { kind: 'dependency', label: 'dependencies (node_modules)', hue: 210 },
  { kind: 'node', label: "Node's JavaScript (node:)", hue: 120 },
  { kind: 'native', label: 'native: V8, GC, system calls', hue: 280 },
];

function kindOf(url: string): Kind {
  if (!url) return 'native';
  if (url.includes('node_modules/')) return 'dependency';
  if (url.startsWith('node:')) return 'node';
  return isOwn(url) ? 'parley' : 'dependency';
}

/** A stable colour per function within its kind's hue, so that the same function looks the same everywhere. */
function colour(f: Frame): string {
  const hue = KINDS.find((k) => k.kind === kindOf(f.url))!.hue;
  let h = 0;
  for (let i = 0; i < f.fn.length; i++) h = (h * 31 + f.fn.charCodeAt(i)) >>> 0;
  return `hsl(${hue + (h % 24) - 12}, ${55 + (h % 20)}%, ${62 + ((h >>> 5) % 16)}%)`;
}

const nameOf = (f: { functionName: string }) => f.functionName || '(anonymous)';

/** The profile's busy samples merged into one call tree: a function called from the same stack is one bar. */
export function flameTree(p: CpuProfile, windows?: ProfileWindow[]): Frame {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const root: Frame = { fn: 'all', url: '', line: 0, total: 0, self: 0, children: new Map() };
  // The frame a profile node stands for, made once per node: its parent's child of the same function.
  const frameOf = new Map<number, Frame>();
  const frame = (id: number): Frame => {
    const known = frameOf.get(id);
    if (known) return known;
    const up = parent.get(id);
    const under = up === undefined || byId.get(up)!.callFrame.functionName === '(root)' ? root : frame(up);
    const cf = byId.get(id)!.callFrame;
    const key = `${nameOf(cf)}\n${cf.url}\n${cf.lineNumber}`;
    let f = under.children.get(key);
    if (!f) under.children.set(key, (f = { fn: nameOf(cf), url: cf.url, line: cf.lineNumber + 1, total: 0, self: 0, children: new Map() }));
    frameOf.set(id, f);
    return f;
  };
  const counted = new Map<number, number>();
  let at = p.startTime;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)' || n.callFrame.functionName === '(root)') return;
    if (windows && !windows.some((w) => at >= w.fromUs && at < w.toUs)) return;
    counted.set(id, (counted.get(id) ?? 0) + dt);
  });
  for (const [id, us] of counted) {
    const leaf = frame(id);
    leaf.self += us;
    root.total += us;
    for (let cur: number | undefined = id; cur !== undefined && byId.get(cur)!.callFrame.functionName !== '(root)'; cur = parent.get(cur)) frame(cur).total += us;
  }
  return root;
}

const ms = (us: number) => (us >= 10_000 ? Math.round(us / 1000).toLocaleString('en-US') : (us / 1000).toFixed(1));

export function renderFlame(p: CpuProfile, o: FlameOptions): string {
  const root = flameTree(p, o.windows);
  const width = W - 2 * PAD;
  const scale = root.total > 0 ? width / root.total : 0;
  const bars: { level: number; x: number; w: number; tip: string; label: string; fill: string }[] = [];
  let depth = 0;
  const draw = (f: Frame, x: number, level: number) => {
    const w = f.total * scale;
    if (w < MIN_PX) return;
    depth = Math.max(depth, level + 1);
    const pct = root.total > 0 ? ((100 * f.total) / root.total).toFixed(1) : '0.0';
    const at = f.url ? ` ${where(f.url)}:${f.line}` : '';
    const chars = Math.floor((w - 6) / CHAR_PX);
    bars.push({
      level,
      x,
      w,
      tip: `${f.fn}${at}: ${ms(f.total)} ms, ${pct} % of busy time (itself ${ms(f.self)} ms)`,
      label: chars >= 3 ? (f.fn.length <= chars ? f.fn : `${f.fn.slice(0, chars - 1)}…`) : '',
      fill: level === 0 ? '#c8c8c8' : colour(f),
    });
    let cx = x;
    for (const c of [...f.children.values()].sort((a, b) => b.total - a.total || a.fn.localeCompare(b.fn))) {
      draw(c, cx, level + 1);
      cx += c.total * scale;
    }
  };
  draw({ ...root, fn: `all busy time: ${ms(root.total)} ms` }, 0, 0);
  const height = TOP + Math.max(depth, 1) * ROW + 30;
  // The root sits at the bottom, what each bar called above it.
  const body = bars.map((b) => {
    const y = TOP + (depth - 1 - b.level) * ROW;
    const text = b.label ? `<text x="${(PAD + b.x + 3).toFixed(1)}" y="${y + ROW - 5}">${esc(b.label)}</text>` : '';
    return `<g><title>${esc(b.tip)}</title><rect x="${(PAD + b.x).toFixed(1)}" y="${y}" width="${b.w.toFixed(1)}" height="${ROW - 1}" fill="${b.fill}" rx="2"/>${text}</g>`;
  });
  const legend = KINDS.map((k, i) => {
    const x = PAD + i * 250;
    return `<rect x="${x}" y="${height - 20}" width="12" height="12" fill="hsl(${k.hue}, 65%, 68%)" rx="2"/><text x="${x + 17}" y="${height - 10}">${esc(k.label)}</text>`;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="Verdana, DejaVu Sans, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${height}" fill="#fdfdfb"/>`,
    `<text x="${PAD}" y="22" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
    o.subtitle ? `<text x="${PAD}" y="42" fill="#555">${esc(o.subtitle)}</text>` : '',
    `<text x="${W - PAD}" y="42" fill="#555" text-anchor="end">width: time on the CPU; above a bar: what it called; hover for details</text>`,
    ...body,
    root.total > 0 ? '' : `<text x="${PAD}" y="${TOP}" fill="#555">no busy samples${o.windows ? ' in these steps' : ''}</text>`,
    ...legend,
    '</svg>',
    '',
  ].join('\n');
}
