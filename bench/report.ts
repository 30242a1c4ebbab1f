// The results as Markdown tables: printed at the end of a run and pasted into BENCHMARKS.md.
import { PARLEYS, type BenchResults, type ChatStep, type Ratio } from './results.ts';
import { LABELS, type SystemName } from './systems.ts';
import { LATE_MS, summarizeTail, tailCell, type TailSummary } from './tail.ts';

const ms = (v: number | null | undefined) => (v == null ? '–' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));
const int = (v: number | null | undefined) => (v == null ? '–' : Math.round(v).toLocaleString('en-US'));
const pct = (v: number) => `${v.toFixed(0)}%`;
const x = (v: number | null | undefined) => (v == null ? '–' : `${v.toFixed(2)}×`);

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

const label = (s: SystemName) => LABELS[s];
/** A step's share of messages over LATE_MS (from its timeline), or '–' in results without one. */
const lateShare = (s: ChatStep) => (s.timeline ? `${(summarizeTail(s.timeline).lateShare * 100).toFixed(2)}%` : '–');

export function chatSummaryTable(r: BenchResults, ladders: BenchResults['chat'] = r.chat): string {
  // The step at half of the peak held longer after the ladder (--hold-seconds), where a ladder has one.
  const heldSeconds = ladders.find((c) => c.halfPeakHeld)?.halfPeakHeld?.heldMs;
  const held = heldSeconds === undefined ? [] : [`p99 at ~half peak held ${heldSeconds / 1000} s (ms @ msg/s; over ${LATE_MS} ms)`];
  return table(
    ['system', 'peak delivered msg/s', 'p50 / p99 / p99.9 at peak (ms)', 'p99 at ~half peak (ms @ msg/s)', ...held, "sender's PUBACK p50 / p99 at ~half peak (ms)", 'broker CPU at peak', 'broker RSS (MB)', 'backend CPU', 'generator CPU', 'other CPU', 'first step past the limit'],
    ladders.map((c) => {
      const p = c.peak;
      const h = c.halfPeak;
      const k = c.halfPeakHeld;
      const broken = c.steps.find((s) => s.broken);
      return [
        label(c.system),
        int(p?.deliveredPerSec),
        p ? `${ms(p.p50)} / ${ms(p.p99)} / ${ms(p.p999)}` : '–',
        h ? `${ms(h.p99)} @ ${int(h.deliveredPerSec)}` : '–',
        ...(held.length === 0 ? [] : [k ? `${ms(k.p99)} @ ${int(k.deliveredPerSec)}; ${lateShare(k)}${k.broken ? ` (${k.broken})` : ''}` : '–']),
        h && h.ackP99 != null ? `${ms(h.ackP50)} / ${ms(h.ackP99)}` : '–',
        p ? pct(p.brokerCpu) : '–',
        p ? String(p.brokerRssMB) : '–',
        p && p.backendCpu ? pct(p.backendCpu) : '–',
        p ? pct(p.generatorCpu) : '–',
        p ? pct(p.otherCpu) : '–',
        broken ? `${int(broken.targetPerSec)} msg/s: ${broken.broken}` : 'none (ladder ended)',
      ];
    }),
  );
}

/** The generators' CPU, and how late their send loop was at worst (results from round 30 on). */
function genCell(s: ChatStep, tail: TailSummary | undefined): string {
  const lag = tail?.sendLagMaxMs ?? null;
  return lag === null ? pct(s.generatorCpu) : `${pct(s.generatorCpu)} / ${ms(lag)}`;
}

export function chatLadderTable(r: BenchResults, ladders: BenchResults['chat'] = r.chat): string {
  const rows: string[][] = [];
  for (const c of ladders) {
    for (const s of c.steps as ChatStep[]) {
      const tail = s.timeline && summarizeTail(s.timeline);
      rows.push([
        label(c.system),
        int(s.targetPerSec),
        int(s.offeredPerSec),
        int(s.deliveredPerSec),
        `${int(s.received)}/${int(s.received + s.lost)}`,
        ms(s.p50),
        ms(s.p99),
        ms(s.p999),
        ms(s.max),
        s.ackP99 == null ? '–' : `${ms(s.ackP50)} / ${ms(s.ackP99)}`,
        tailCell(tail),
        pct(s.brokerCpu),
        s.mainCpu === undefined ? '–' : `${pct(s.mainCpu)} / ${Math.round(s.mainWaitMsPerSec!)}`,
        String(s.brokerRssMB),
        s.backendCpu ? pct(s.backendCpu) : '–',
        genCell(s, tail),
        pct(s.otherCpu),
        (s.broken ?? 'ok') + (s.attempts > 1 ? ` (run ${s.attempts}${s.disturbed ? `, ${s.disturbed} disturbed` : ''})` : ''),
      ]);
    }
  }
  return table(['system', 'target msg/s', 'offered', 'delivered', 'received/expected', 'p50 ms', 'p99', 'p99.9', 'max', 'PUBACK p50 / p99', `over ${LATE_MS} ms / the worst time holding half of them`, 'broker CPU', 'main thread CPU / waited for a CPU (ms/s)', 'RSS MB', 'backend CPU', 'gen CPU / send loop late ≤ (ms)', 'other CPU', 'verdict'], rows);
}

export function drainTable(r: BenchResults): string {
  return table(
    ['system', 'queued', 'received', 'drain time (ms)', 'drain msg/s', 'queueing msg/s', 'broker CPU', 'broker RSS (MB)', 'backend CPU'],
    r.drain.map((d) => [label(d.system), int(d.messages), int(d.received), int(d.ms), int(d.perSec), int(d.fillPerSec), pct(d.brokerCpu), String(d.brokerRssMB), d.backendCpu ? pct(d.backendCpu) : '–']),
  );
}

export function connectionsTable(r: BenchResults): string {
  return table(
    ['system', 'connected', 'connects/s', 'connect p50 / p99 (ms)', 'RSS before → half → after → settled (MB)', 'KB per connection', 'KB per connection, second half', 'KB per connection, settled', 'of which JS heap / external (KB)', 'broker CPU', 'backend CPU', 'generator CPU'],
    r.connections.map((c) => [
      label(c.system),
      `${int(c.connected)}/${int(c.target)}`,
      int(c.perSec),
      `${ms(c.connectP50)} / ${ms(c.connectP99)}`,
      `${c.rssBeforeMB} → ${c.rssMiddleMB ?? '–'} → ${c.rssAfterMB} → ${c.rssSettledMB ?? '–'}`,
      (c.bytesPerConnection / 1024).toFixed(1),
      c.marginalBytesPerConnection === undefined ? '–' : (c.marginalBytesPerConnection / 1024).toFixed(1),
      c.settledBytesPerConnection === undefined ? '–' : (c.settledBytesPerConnection / 1024).toFixed(1),
      c.settledHeapBytesPerConnection === undefined ? '–' : `${(c.settledHeapBytesPerConnection / 1024).toFixed(1)} / ${((c.settledExternalBytesPerConnection ?? 0) / 1024).toFixed(1)}`,
      pct(c.brokerCpu),
      c.backendCpu ? pct(c.backendCpu) : '–',
      pct(c.generatorCpu),
    ]),
  );
}

export function ratiosTable(r: BenchResults): string {
  const parleys = PARLEYS.filter((p) => r.systems.some((s) => s.name === p));
  const rows: [string, Partial<Record<SystemName, Ratio>>, string][] = [
    ['1:1 peak delivered msg/s', r.ratios.chatPeak, 'higher is better; goal ≥ 1 vs Mosquitto'],
    ['1:1 p99 at half of peak', r.ratios.chatP99AtHalfPeak, 'lower is better'],
    ...(r.ratios.chatP99AtHalfPeakHeld ? [['1:1 p99 at half of peak, held', r.ratios.chatP99AtHalfPeakHeld, 'lower is better'] as [string, Partial<Record<SystemName, Ratio>>, string]] : []),
    ['group fan-out peak deliveries/s', r.ratios.fanoutPeak, 'higher is better'],
    ['offline drain time', r.ratios.drainMs, 'lower is better'],
    ['memory per idle connection', r.ratios.bytesPerConnection, 'lower is better'],
    ['memory per idle connection, second half', r.ratios.marginalBytesPerConnection ?? {}, 'lower is better'],
    ['memory per idle connection, settled', r.ratios.settledBytesPerConnection ?? {}, 'lower is better; what idle connections hold'],
    ['connects/s', r.ratios.connectPerSec, 'higher is better'],
  ];
  return table(
    ['Parley / baseline', ...parleys.flatMap((p) => [`${label(p)} / Mosquitto`, `${label(p)} / bare Aedes`]), 'reading'],
    rows.map(([name, ratios, reading]) => [name, ...parleys.flatMap((p) => [x(ratios[p]?.vsMosquitto), x(ratios[p]?.vsAedes)]), reading]),
  );
}

export function fullReport(r: BenchResults): string {
  const parts = [
    '### 1. 1:1 chat, QoS 1, receivers online — summary',
    chatSummaryTable(r),
    '### 1. 1:1 chat — every step',
    chatLadderTable(r),
    '### 2. Offline drain',
    drainTable(r),
    '### 3. Idle connections',
    connectionsTable(r),
    `### 4. Group fan-out (a group of ${r.groups.groupSize}, one sender; msg/s are deliveries)`,
    r.fanout.length ? chatSummaryTable(r, r.fanout) : 'not run',
    ...(r.fanout.length ? ['### 4. Group fan-out — every step', chatLadderTable(r, r.fanout)] : []),
    ...r.groups.notes,
    '### Ratios (Parley / baseline, same run)',
    ratiosTable(r),
  ];
  if (r.crashes?.length)
    parts.push('### Broker processes that died (each was started again for the scenarios left)', ...r.crashes.map((c) => `- ${c.system} / ${c.scenario}: ${c.message}`));
  if (r.errors.length) parts.push('### Errors', ...r.errors.map((e) => `- ${e.system} / ${e.scenario}: ${e.message}`));
  return parts.join('\n\n');
}
