// Reads a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, and Parley's own
// functions by inclusive time (themselves and what they call), both as a share of the time the thread
// was busy (idle samples left out). Self time finds the leaf costs (syscalls, JSON, GC); inclusive time
// tells which step of Parley's pipeline they belong to.
import fs from 'node:fs';
import path from 'node:path';
import type { ProfileEntry, ProfileStall } from './results.ts';

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  startTime: number;
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  self: ProfileEntry[];
  /** Functions of Parley's own folders, by inclusive time. */
  parley: ProfileEntry[];
  /** The longest stretches the thread was busy without a break: what held the event loop. */
  stalls: ProfileStall[];
}

const OWN = ['/broker/', '/common/', '/auth/', '/cli/', '/consumers/', '/analytics/', '/blob/'];

export function where(url: string): string {
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  for (const dir of [...OWN, '/bench/']) {
    const at = clean.lastIndexOf(dir);
    if (at >= 0) return clean.slice(at + 1);
  }
  return clean;
}

export const isOwn = (url: string) => !url.includes('node_modules/') && OWN.some((d) => url.includes(d));

/** A bench step, on the monotonic clock the profile's timestamps use (µs). */
export interface ProfileWindow {
  label: string;
  fromUs: number;
  toUs: number;
}

/** `windows`: the steps whose stalls are listed (none given: every stall, labelled by its time). */
export function summarizeProfile(file: string, top = 25, windows?: ProfileWindow[]): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, { us: number; fn: string; where: string }>();
  const incl = new Map<string, { us: number; fn: string; where: string }>();
  const add = (m: typeof self, fn: string, at: string, us: number) => {
    const key = `${fn}@${at}`;
    const e = m.get(key) ?? { us: 0, fn, where: at };
    e.us += us;
    m.set(key, e);
  };
  let total = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const dt = p.timeDeltas[i] ?? 0;
    if (!n || n.callFrame.functionName === '(idle)') return;
    total += dt;
    add(self, n.callFrame.functionName || '(anonymous)', n.callFrame.url ? where(n.callFrame.url) : '', dt);
    // Inclusive: each own function once per sample, however deep the recursion.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!isOwn(f.url)) continue;
      const fn = f.functionName || '(anonymous)';
      const key = `${fn}@${f.url}`;
      if (seen.has(key)) continue;
      seen.add(key);
      add(incl, fn, where(f.url), dt);
    }
  });
  const list = (m: typeof self) =>
    [...m.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({ selfPercent: Math.round((e.us / total) * 1000) / 10, selfMs: Math.round(e.us / 1000), fn: e.fn, where: e.where }));
  return { self: list(self), parley: list(incl), stalls: longestStalls(p, byId, parent, windows) };
}

/**
 * The thread's longest busy stretches (consecutive non-idle samples), each with the frames that took most
 * of it: a frame of Parley's own code when the stack has one, else the innermost named frame. A sample
 * interval of 1 ms (node's default) makes the lengths good to about a millisecond.
 */
function longestStalls(
  p: CpuProfile,
  byId: Map<number, CpuProfileNode>,
  parent: Map<number, number>,
  windows: ProfileWindow[] | undefined,
  top = 10,
): ProfileStall[] {
  const label = (id: number): string => {
    let innermost: string | null = null;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (isOwn(f.url)) return `${f.functionName || '(anonymous)'} ${where(f.url)}`;
      if (innermost === null && f.functionName && f.functionName !== '(root)') innermost = f.url ? `${f.functionName} ${where(f.url)}` : f.functionName;
    }
    return innermost ?? '(unknown)';
  };
  const stalls: { atUs: number; us: number; frames: Map<string, number> }[] = [];
  let at = p.startTime;
  let open: (typeof stalls)[number] | null = null;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    const n = byId.get(id);
    if (!n || n.callFrame.functionName === '(idle)') {
      open = null;
      return;
    }
    if (!open) stalls.push((open = { atUs: at, us: 0, frames: new Map() }));
    open.us += dt;
    const l = label(id);
    open.frames.set(l, (open.frames.get(l) ?? 0) + dt);
  });
  const during = (atUs: number): string | null => {
    if (!windows) return '';
    return windows.find((w) => atUs >= w.fromUs && atUs < w.toUs)?.label ?? null;
  };
  return stalls
    .map((s) => ({ ...s, during: during(s.atUs) }))
    .filter((s): s is typeof s & { during: string } => s.during !== null)
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((s) => ({
      ms: Math.round(s.us / 100) / 10,
      atSeconds: Math.round((s.atUs - p.startTime) / 1e5) / 10,
      during: s.during,
      frames: [...s.frames.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([frame, us]) => ({ frame, ms: Math.round(us / 100) / 10 })),
    }));
}

export function stallText(stalls: ProfileStall[]): string {
  return stalls
    .map((s) => `${s.ms.toFixed(1).padStart(7)} ms at ${s.atSeconds.toFixed(1)} s${s.during ? ` (${s.during})` : ''}: ${s.frames.map((f) => `${f.frame} (${f.ms} ms)`).join(', ')}`)
    .join('\n');
}

/** The busiest profile in `dir` (most non-idle time): the main thread's, not the module loader thread's. */
export function busiestProfile(dir: string): string | null {
  if (!fs.existsSync(dir)) return null;
  let best: { file: string; busy: number } | null = null;
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const file = path.join(dir, f);
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
    const idle = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
    let busy = 0;
    p.samples.forEach((id, i) => {
      if (!idle.has(id)) busy += p.timeDeltas[i] ?? 0;
    });
    if (!best || busy > best.busy) best = { file, busy };
  }
  return best?.file ?? null;
}

export function profileText(entries: ProfileEntry[]): string {
  return entries.map((e) => `${e.selfPercent.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(7)} ms  ${e.fn}  ${e.where}`).join('\n');
}
