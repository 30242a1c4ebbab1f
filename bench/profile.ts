// Reads a V8 .cpuprofile (node --cpu-prof): the functions with the most self time, and Parley's own
// functions by inclusive time (themselves and what they call), both as a share of the time the thread
// was busy (idle samples left out). Self time finds the leaf costs (syscalls, JSON, GC); inclusive time
// tells which step of Parley's pipeline they belong to.
import fs from 'node:fs';
import path from 'node:path';
import type { ProfileEntry } from './results.ts';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  self: ProfileEntry[];
  /** Functions of Parley's own folders, by inclusive time. */
  parley: ProfileEntry[];
}

const OWN = ['/broker/', '/common/', '/auth/', '/cli/', '/consumers/', '/analytics/', '/blob/'];

function where(url: string): string {
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  for (const dir of [...OWN, '/bench/']) {
    const at = clean.lastIndexOf(dir);
    if (at >= 0) return clean.slice(at + 1);
  }
  return clean;
}

const isOwn = (url: string) => !url.includes('node_modules/') && OWN.some((d) => url.includes(d));

export function summarizeProfile(file: string, top = 25): ProfileSummary {
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
  return { self: list(self), parley: list(incl) };
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
