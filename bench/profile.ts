// Reads a V8 .cpuprofile (node --cpu-prof) and lists the functions with the most self time, as a share
// of the time the thread was busy (idle samples left out).
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

export function summarizeProfile(file: string, top = 25): ProfileEntry[] {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { us: number; fn: string; where: string }>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const dt = p.timeDeltas[i] ?? 0;
    if (!n || n.callFrame.functionName === '(idle)') return;
    total += dt;
    const { functionName, url, lineNumber } = n.callFrame;
    const fn = functionName || '(anonymous)';
    const where = url ? `${shorten(url)}:${lineNumber + 1}` : '';
    const key = `${fn}@${where}`;
    const e = self.get(key) ?? { us: 0, fn, where };
    e.us += dt;
    self.set(key, e);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ selfPercent: Math.round((e.us / total) * 1000) / 10, selfMs: Math.round(e.us / 1000), fn: e.fn, where: e.where }));
}

function shorten(url: string): string {
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('node_modules/');
  if (nm >= 0) return clean.slice(nm + 'node_modules/'.length);
  for (const dir of ['/bench/', '/broker/', '/common/', '/auth/', '/cli/']) {
    const at = clean.lastIndexOf(dir);
    if (at >= 0) return clean.slice(at + 1);
  }
  return clean;
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
