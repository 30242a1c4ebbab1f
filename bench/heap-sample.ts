// Where a running broker allocates: V8's sampling heap profiler (HeapProfiler.startSampling) on the main
// thread of a Node process the bench started, for a few seconds, grouped by the allocating function (self)
// and by the Parley and package functions on the stack (inclusive). With --survivors it counts only what
// outlived the young generation (promoted, or still live): what makes scavenges slow and major GCs come.
//
//   npm run bench -- --systems parley-redis --scenarios chat --rates 1 --step-seconds 60   # then, meanwhile:
//   npx tsx bench/heap-sample.ts --pid <pid the bench printed> --log bench/data/logs/parley-redis.log --seconds 10 --survivors [--top 60] [--save FILE.heapprofile]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { openInspector } from './inspector.ts';
import { isOwn, where } from './profile.ts';

interface SamplingNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SamplingNode[];
}

export interface AllocationSummary {
  /** Bytes the samples stand for (an estimate: one sample per `samplingInterval` bytes on average). */
  totalBytes: number;
  self: { percent: number; frame: string }[];
  inclusive: { percent: number; frame: string }[];
}

/** Folds a sampling heap profile into the heaviest frames, self and inclusive (Parley's and packages' frames). */
export function summarizeAllocations(head: SamplingNode, top = 25): AllocationSummary {
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  const walk = (node: SamplingNode, stack: string[]) => {
    const f = node.callFrame;
    const frame = `${f.functionName || '(anonymous)'}${f.url ? ` ${where(f.url)}` : ''}`;
    self.set(frame, (self.get(frame) ?? 0) + node.selfSize);
    total += node.selfSize;
    const counted = f.url && (isOwn(f.url) || f.url.includes('node_modules/')) ? [...stack, frame] : stack;
    for (const k of new Set(counted)) inclusive.set(k, (inclusive.get(k) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child, counted);
  };
  walk(head, []);
  const list = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, bytes]) => ({ percent: total ? Math.round((bytes / total) * 1000) / 10 : 0, frame }));
  return { totalBytes: total, self: list(self), inclusive: list(inclusive) };
}

/** `save`: also write the raw profile there (a .heapprofile, which Chrome DevTools' Memory panel loads). */
export async function sampleAllocations(pid: number, log: string, seconds: number, survivors: boolean, top = 25, save?: string): Promise<AllocationSummary> {
  const session = await openInspector(pid, log);
  try {
    await session.call('HeapProfiler.enable');
    await session.call('HeapProfiler.startSampling', {
      samplingInterval: 1024,
      includeObjectsCollectedByMinorGC: !survivors,
      includeObjectsCollectedByMajorGC: true,
    });
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = (await session.call('HeapProfiler.stopSampling')) as { profile: { head: SamplingNode } };
    if (save) fs.writeFileSync(save, JSON.stringify(profile));
    return summarizeAllocations(profile.head, top);
  } finally {
    session.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { pid: { type: 'string' }, log: { type: 'string' }, seconds: { type: 'string', default: '10' }, survivors: { type: 'boolean', default: false }, top: { type: 'string', default: '25' }, save: { type: 'string' } },
  });
  if (!values.pid || !values.log) throw new Error('usage: npx tsx bench/heap-sample.ts --pid N --log FILE [--seconds S] [--survivors] [--top N] [--save FILE.heapprofile]');
  const seconds = Number(values.seconds);
  process.stderr.write(`sampling the allocations of ${values.pid} for ${seconds} s${values.survivors ? ' (survivors of the young generation only)' : ''}…\n`);
  const top = Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw new Error('--top is a whole number of lines, at least 1');
  const s = await sampleAllocations(Number(values.pid), values.log, seconds, values.survivors, top, values.save);
  console.log(`${(s.totalBytes / 1e6).toFixed(1)} MB sampled in ${seconds} s (${(s.totalBytes / 1e6 / seconds).toFixed(1)} MB/s)`);
  console.log('\nallocating function (self):');
  for (const e of s.self) console.log(`${e.percent.toFixed(1).padStart(5)} %  ${e.frame}`);
  console.log("\nParley's and packages' functions (inclusive):");
  for (const e of s.inclusive) console.log(`${e.percent.toFixed(1).padStart(5)} %  ${e.frame}`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
