// What a heap grew by between two V8 heap snapshots (.heapsnapshot, as DevTools and
// HeapProfiler.takeHeapSnapshot write them), grouped by what the objects are: their constructor, or V8's
// kind for strings, arrays, code and hidden objects. The connections scenario's `--heap-snapshots` divides
// it by the connections opened between the two: what one idle connection keeps, object by object.
//
//   npx tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [--per N] [--top K]
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Bytes and objects by group. */
export type HeapGroups = Map<string, { count: number; bytes: number }>;

const KIND_ONLY = new Set(['string', 'concatenated string', 'sliced string', 'code', 'number', 'bigint']);

function groupOf(type: string, name: string): string {
  if (KIND_ONLY.has(type)) return `(${type})`;
  if (type === 'object' || type === 'closure' || type === 'native') return type === 'object' ? name : `${type} ${name}`;
  return `(${type}) ${name}`;
}

/** Every node's self size, summed by group. */
export function heapGroups(file: string): HeapGroups {
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const types = s.snapshot.meta.node_types[0];
  const groups: HeapGroups = new Map();
  for (let i = 0; i < s.nodes.length; i += width) {
    const key = groupOf(types[s.nodes[i + typeAt]], s.strings[s.nodes[i + nameAt]].slice(0, 60));
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += s.nodes[i + sizeAt];
    groups.set(key, g);
  }
  return groups;
}

export interface HeapGrowth {
  group: string;
  objects: number;
  bytes: number;
}

/** Growth from `before` to `after`, largest first. */
export function heapGrowth(before: HeapGroups, after: HeapGroups): HeapGrowth[] {
  const out: HeapGrowth[] = [];
  for (const group of new Set([...before.keys(), ...after.keys()])) {
    const [b, a] = [before.get(group), after.get(group)];
    out.push({ group, objects: (a?.count ?? 0) - (b?.count ?? 0), bytes: (a?.bytes ?? 0) - (b?.bytes ?? 0) });
  }
  return out.sort((x, y) => y.bytes - x.bytes);
}

/** A table of the `top` largest growths, per `per` (connections). */
export function formatGrowth(growth: HeapGrowth[], per: number, top: number): string {
  const total = growth.reduce((n, g) => n + g.bytes, 0);
  const lines = [`heap grew ${(total / 1048576).toFixed(1)} MB = ${Math.round(total / per)} bytes per ${per === 1 ? 'snapshot' : 'connection'}; largest:`];
  for (const g of growth.slice(0, top)) lines.push(`${(g.bytes / per).toFixed(0).padStart(8)} B ${(g.objects / per).toFixed(2).padStart(7)} objects  ${g.group}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { per: { type: 'string' }, top: { type: 'string' } } });
  if (positionals.length !== 2) {
    console.error('usage: npx tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [--per N] [--top K]');
    process.exit(2);
  }
  const per = Number(values.per ?? 1);
  const top = Number(values.top ?? 30);
  console.log(formatGrowth(heapGrowth(heapGroups(positionals[0]), heapGroups(positionals[1])), per, top));
}
