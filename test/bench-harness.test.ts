// The benchmark harness works: `bench/run.ts --quick` runs every scenario (1:1 chat, group fan-out,
// offline drain, idle connections) against every system and every message sent arrives, and reads Parley's
// GC, fsync and event-loop figures around each step; the two-node Parley cluster is measured on both of
// its processes, with every 1:1 message crossing nodes. No timing is asserted; CI machines are too
// different for thresholds.
import assert from './helpers/assert.ts';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { renderTailChart } from '../bench/chart.ts';
import { mergeMetrics, parseMetrics, pausesBetween, pausesText } from '../bench/pauses.ts';
import { flameTree, renderFlame } from '../bench/flame.ts';
import { stallText, summarizeProfile } from '../bench/profile.ts';
import { measuresAsFullRun, PARLEYS, type BenchResults, type ChatStep, type Usage } from '../bench/results.ts';
import { MainThreadMeter } from '../bench/procstat.ts';
import { LABELS, redisFsyncFor, SYSTEMS } from '../bench/systems.ts';
import { LATE_MS, mergeTimelines, recordSendLag, recordTimeline, sendLagText, summarizeTail, tailCell, tailShort, tailText, TAIL_BUCKET_MS, type Timeline } from '../bench/tail.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Runs `bench/run.ts`; `onOutput` sees everything it printed so far after each chunk. `signal`: the test's,
 * so a test that times out does not leave the bench running.
 */
function runBench(args: string[], o: { onOutput?: (output: string) => void; signal?: AbortSignal } = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], signal: o.signal, killSignal: 'SIGKILL' });
    let output = '';
    child.on('error', () => undefined); // an abort; its exit follows
    child.stdout.on('data', (d) => {
      output += d;
      o.onOutput?.(output);
    });
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

/** Runs the bench on bare Aedes alone and SIGKILLs that broker `delayMs` after `when` first shows in the output. */
async function runBenchKillingAedes(args: string[], when: RegExp, delayMs: number, signal: AbortSignal) {
  let killed: number | null = null;
  const { code, output } = await runBench(['--quick', '--systems', 'aedes', ...args], {
    signal,
    onOutput: (output) => {
      const pid = /aedes pid (\d+)/.exec(output);
      if (!pid || killed !== null || !when.test(output)) return;
      const victim = (killed = Number(pid[1]));
      setTimeout(() => process.kill(victim, 'SIGKILL'), delayMs);
    },
  });
  assert.ok(killed !== null, `the bench never printed ${when}:\n${output.slice(-3000)}`);
  return { code, output, killed: killed as number };
}

test('bench --quick: a row for every system and scenario, and every message arrives', { timeout: 600_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  const out = path.join(tmp, 'results.json');
  // Its own data folder and Redis key prefix: a developer's bench run at the same time is not disturbed.
  const prefix = `parley-bench-test-${randomBytes(4).toString('hex')}:`;
  try {
    const { code, output } = await runBench(['--quick', '--json-out', out, '--data-dir', path.join(tmp, 'data'), '--redis-prefix', prefix]);
    assert.equal(code, 0, `bench exited with ${code}:\n${output.slice(-4000)}`);
    assert.match(output, /20 users, rates 2,5\/user\/s \(1:1 in all: 40, 100 msg\/s\)/, 'the rates per user, and what they come to');
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
    assert.equal(r.quick, true);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.crashes ?? [], [], 'no broker process died');
    assert.deepEqual(r.systems.map((s) => s.name).sort(), [...SYSTEMS].sort());

    for (const system of SYSTEMS) {
      const chat = r.chat.find((c) => c.system === system);
      assert.ok(chat, `chat row for ${system}`);
      assert.ok(chat.steps.length > 0, `${system}: chat ran at least one step`);
      for (const s of chat.steps) {
        assert.ok(s.sent > 0, `${system} @${s.ratePerUser}/s: messages were sent`);
        assert.ok(s.deliveredPerSec > 0, `${system} @${s.ratePerUser}/s: delivered > 0`);
        assert.equal(s.received, s.sent, `${system} @${s.ratePerUser}/s: every sent message was received`);
        assert.equal(s.lost, 0);
        assert.equal(s.pubacks, s.sent, `${system} @${s.ratePerUser}/s: every publish was PUBACKed`);
        if (system.startsWith('parley')) assert.equal(s.appAcks, s.sent, `${system}: an ack envelope for every message`);
        assert.equal(s.errors, 0, `${system}: no error envelopes (${s.errorSamples.join(' | ')})`);
        assert.ok(s.p50 !== null && s.p99 !== null, `${system}: latency was measured`);
        assert.equal(s.ackTimed, s.sent, `${system}: every PUBACK was timed against its own publish`);
        assert.ok(s.ackP50 != null && s.ackP99 != null && s.ackP50 <= s.ackP99, `${system}: PUBACK latency p50 ${s.ackP50} ≤ p99 ${s.ackP99}`);
        // The same messages by when they were sent: every one counted once, and its late share agrees
        // with the histogram's p99 (whose buckets are 1 % wide).
        assert.ok(s.timeline, `${system}: the step has a timeline`);
        assert.equal(s.timeline.reduce((n, b) => n + b[0], 0), s.received, `${system}: the timeline counts every message received`);
        const tail = summarizeTail(s.timeline);
        assert.equal(tail.messages, s.received);
        assert.ok(s.timeline.length >= Math.floor(r.options.stepMs as number / TAIL_BUCKET_MS), `${system}: the timeline covers the send window`);
        if (tail.lateShare > 0.0101) assert.ok(s.p99 >= LATE_MS * 0.99, `${system}: ${tailText(tail)} but p99 ${s.p99} ms`);
        if (tail.lateShare < 0.0099) assert.ok(s.p99 <= LATE_MS * 1.01, `${system}: ${tailText(tail)} but p99 ${s.p99} ms`);
        // How late the generators' send loop ran: measured in the buckets sends went out in, never negative.
        assert.ok(tail.sendLagMaxMs !== null && tail.sendLagMaxMs >= 0, `${system}: the generators' send lag was measured (${tail.sendLagMaxMs})`);
        assert.ok(s.timeline.every((b) => b[3] === undefined || b[3] >= 0), `${system}: no negative send lag`);
        assert.ok(s.timeline.filter((b) => b[3] !== undefined).length >= Math.floor(r.options.stepMs as number / TAIL_BUCKET_MS) / 2, `${system}: sends went out in most buckets`);
        // The broker's main thread: what it ran and how long it waited for a CPU (Linux schedstat).
        assert.ok(s.mainCpu !== undefined && s.mainCpu > 0, `${system}: its main thread ran during the step`);
        assert.ok(s.mainWaitMsPerSec !== undefined && s.mainWaitMsPerSec >= 0);
        assert.ok(s.mainPreemptedPerSec !== undefined && s.mainPreemptedPerSec >= 0);
        if (!system.startsWith('parley')) assert.equal(s.pauses, undefined, `${system} has no /metrics to read`);
        else {
          assert.ok(s.pauses, `${system}: its GC, fsync and event-loop figures were read around the step`);
          assert.ok(s.pauses.gcMs >= 0 && s.pauses.minorGcs >= 0 && s.pauses.loopMaxMs > 0);
          // Embedded acks wait for the journal's fdatasync; on Redis there is no journal.
          if (system === 'parley-embedded') assert.ok(s.pauses.fsyncs > 0 && s.pauses.fsyncMaxMs !== null, 'journal fdatasyncs were timed');
          else assert.equal(s.pauses.fsyncs, 0);
        }
      }

      const fan = r.fanout.find((c) => c.system === system);
      assert.ok(fan, `group fan-out row for ${system}`);
      assert.ok(fan.steps.length > 0);
      for (const s of fan.steps) {
        assert.ok(s.sent > 0 && s.received > 0, `${system} fan-out @${s.ratePerUser}/s: messages went out and arrived`);
        assert.equal(s.received, s.sent * (r.groups.groupSize - 1), `${system} fan-out: every member got every message`);
        assert.equal(s.lost, 0);
        assert.equal(s.errors, 0, `${system} fan-out: no error envelopes (${s.errorSamples.join(' | ')})`);
      }

      const drain = r.drain.find((d) => d.system === system);
      assert.ok(drain, `drain row for ${system}`);
      assert.ok(drain.messages > 0);
      assert.equal(drain.received, drain.messages, `${system}: every queued message arrived after the reconnect`);
      assert.ok(drain.ms > 0);

      const conn = r.connections.find((c) => c.system === system);
      assert.ok(conn, `connections row for ${system}`);
      assert.ok(conn.connected > 0);
      assert.equal(conn.connected, conn.target, `${system}: every idle connection was accepted (${conn.firstError ?? ''})`);
      assert.equal(conn.failed, 0);
      // Read again after a full GC (through the inspector for the Node brokers): the settled figures exist.
      assert.ok(conn.rssSettledMB !== undefined && conn.rssSettledMB > 0, `${system}: settled RSS was read`);
      assert.equal(typeof conn.settledBytesPerConnection, 'number');
      // Node brokers also say how much of it is their JS heap; Mosquitto has none.
      if (system === 'mosquitto') assert.equal(conn.settledHeapBytesPerConnection, undefined);
      else assert.equal(typeof conn.settledHeapBytesPerConnection, 'number', `${system}: the heap was read after the GC`);
    }
    // The step at half of the peak, held once more for --hold-seconds after each 1:1 ladder that has one.
    assert.equal(r.options.holdMs, 1000, 'quick mode holds the half-peak step for 1 s');
    for (const c of r.chat) {
      if (!c.halfPeak) {
        assert.equal(c.halfPeakHeld, undefined, `${c.system}: nothing to hold without a step that held`);
        continue;
      }
      const k = c.halfPeakHeld;
      assert.ok(k, `${c.system}: its half-peak step was held`);
      assert.equal(k.ratePerUser, c.halfPeak.ratePerUser, `${c.system}: held at the half-peak step's rate`);
      assert.equal(k.heldMs, 1000);
      assert.ok(k.sent > 0 && k.received === k.sent && k.lost === 0, `${c.system}: every message of the held step arrived`);
      assert.ok(k.timeline && k.timeline.length >= Math.floor(1000 / TAIL_BUCKET_MS), `${c.system}: the held step's timeline covers its window`);
      assert.ok(!c.steps.includes(k), 'the held step is not a step of the ladder');
      if (PARLEYS.includes(c.system as (typeof PARLEYS)[number])) assert.ok(r.ratios.chatP99AtHalfPeakHeld?.[c.system], `${c.system}: a ratio for the held p99`);
    }
    assert.match(output, /chat held 1 s at half of peak +\d+(\.\d+)?\/user\/s: offered/);
    assert.match(output, /\| p99 at ~half peak held 1 s \(ms @ msg\/s; over 5 ms\) \|/);
    assert.match(output, /\| 1:1 p99 at half of peak, held +\|/);
    assertClusterMeasured(r);
    for (const p of PARLEYS) {
      assert.ok(r.ratios.chatPeak[p], `ratios for ${p}`);
    }
    assert.ok(fs.existsSync(out.replace(/\.json$/, '.svg')), 'the chart was written next to the results');
    const tailSvg = fs.readFileSync(out.replace(/\.json$/, '-tail.svg'), 'utf8');
    // A line for every ladder with a step at half of its peak (in the quick run's two 1 s steps a baseline may fail both).
    const drawn = r.chat.filter((c) => c.halfPeak);
    assert.ok(drawn.some((c) => c.system.startsWith('parley')), 'a Parley has a half-peak step');
    for (const c of drawn) assert.ok(tailSvg.includes(LABELS[c.system]), `the tail chart has a line for ${c.system}`);

    // --report redraws both charts beside the file; results of a bench before the timelines get no tail chart.
    fs.rmSync(out.replace(/\.json$/, '-tail.svg'));
    const again = await runBench(['--report', out]);
    assert.equal(again.code, 0, again.output.slice(-2000));
    assert.match(again.output, /\| over 5 ms \/ the worst time holding half of them \|/);
    assert.equal(fs.readFileSync(out.replace(/\.json$/, '-tail.svg'), 'utf8'), tailSvg);
    const old = path.join(tmp, 'old.json');
    const stripped = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
    for (const ladder of [...stripped.chat, ...stripped.fanout]) for (const step of [ladder.peak, ladder.halfPeak, ladder.halfPeakHeld, ...ladder.steps]) if (step) delete step.timeline;
    fs.writeFileSync(old, JSON.stringify(stripped));
    const older = await runBench(['--report', old]);
    assert.equal(older.code, 0, older.output.slice(-2000));
    assert.ok(fs.existsSync(path.join(tmp, 'old.svg')), 'the throughput chart is drawn');
    assert.ok(!fs.existsSync(path.join(tmp, 'old-tail.svg')), 'no tail chart without timelines');
    assert.match(older.output, /\| ok +\|\n/, 'the tables print');
    assert.ok(/\| [\d.]+ +\| – +\| \d+%/.test(older.output), 'a step without a timeline shows – for its late messages');
  } finally {
    await removeKeys(prefix).catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

// A broker that dies mid-ladder (bare Aedes overflowed its stack at 30,000 msg/s in one full run) ends its
// ladder with the death as the reason, and the scenarios after it run on a new process of the same system.
test('bench: a broker process killed during the 1:1 ladder is a recorded death, and the drain runs on a new one', { timeout: 180_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  const out = path.join(tmp, 'results.json');
  try {
    // Killed as the second step begins: its first step is measured whole.
    const args = ['--scenarios', 'chat,drain', '--rates', '1,2,3,4', '--step-seconds', '3', '--json-out', out, '--data-dir', path.join(tmp, 'data')];
    const { code, output, killed } = await runBenchKillingAedes(args, /chat +1\/user\/s: offered/, 0, t.signal);
    // A baseline's death is what the run found, not a failure of the harness.
    assert.equal(code, 0, `bench exited with ${code}:\n${output.slice(-3000)}`);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
    assert.deepEqual(r.errors, []);
    assert.equal(r.crashes?.length, 1, JSON.stringify(r.crashes));
    assert.equal(r.crashes![0].system, 'aedes');
    assert.equal(r.crashes![0].scenario, 'chat');
    assert.match(r.crashes![0].message, /^bare Aedes was killed by SIGKILL/);
    assert.equal(typeof r.crashes![0].logTail, 'string', "the dead process's log is kept in the results");

    const steps = r.chat.find((c) => c.system === 'aedes')!.steps;
    assert.equal(steps.length, 2, 'the ladder stopped at the step the broker died in');
    assert.equal(steps[0].broken, null);
    assert.equal(steps[0].received, steps[0].sent);
    assert.match(steps[1].broken ?? '', /^the broker died: bare Aedes was killed by SIGKILL/);
    assert.equal(steps[1].attempts, 1, 'a death is not run again');
    assert.equal(r.chat.find((c) => c.system === 'aedes')!.peak?.ratePerUser, 1);

    const drain = r.drain.find((d) => d.system === 'aedes');
    assert.ok(drain, 'the drain ran after the death');
    assert.equal(drain.received, drain.messages, 'every queued message arrived, from the new process');
    const info = r.systems.find((s) => s.name === 'aedes')!;
    assert.equal(info.nodes?.length, 2, 'the dead process and the new one');
    assert.equal(info.nodes![0].pid, killed);
    assert.notEqual(info.nodes![1].pid, killed);
    assert.ok(info.notes.some((n) => n.startsWith('died during chat')), info.notes.join(' | '));
    assert.match(output, /### Broker processes that died[^\n]*\n\n- aedes \/ chat: bare Aedes was killed by SIGKILL/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench: a rate no broker keeps up with ends on time as a step past the limit, its shortfall shown as the offered rate', { timeout: 180_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  const out = path.join(tmp, 'results.json');
  try {
    // 20 users at a million messages a second each: 20 million due in the 1 s window. The send loop used to
    // try them all in one go and ran out of memory; now it waits for the broker and gives up 5 s on.
    const args = ['--quick', '--systems', 'aedes', '--scenarios', 'chat', '--rates', '1000000', '--hold-seconds', '0', '--json-out', out, '--data-dir', path.join(tmp, 'data')];
    const { code, output } = await runBench(args, { signal: t.signal });
    assert.equal(code, 0, `bench exited with ${code}:\n${output.slice(-3000)}`);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
    assert.deepEqual(r.errors, []);
    const [step] = r.chat.find((c) => c.system === 'aedes')!.steps;
    assert.equal(step.targetPerSec, 20_000_000);
    assert.ok(step.sent > 0 && step.sent < 20_000_000, `sent ${step.sent}`);
    assert.ok(step.offeredPerSec < 0.9 * step.targetPerSec, `offered ${step.offeredPerSec}`);
    assert.match(step.broken ?? '', /^(p99 over 50 ms|offered < 90% of the target)$/, 'the step is past the limit');
    assert.match(output, /chat +1000000\/user\/s: offered +\d+ delivered/);
    assert.equal(step.received, step.sent, 'what was sent still arrived: the relay was slow, not lossy');
    assert.equal(step.pubacks, step.sent, 'every publish sent was PUBACKed once: no packet id was reused in flight');
    assert.ok(step.timeline!.some((b) => (b[3] ?? 0) > 1_000_000), 'the send loop ran over a second late while it waited');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench: a broker killed in a scenario before it measured anything is started again and the scenario runs whole', { timeout: 180_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  const out = path.join(tmp, 'results.json');
  try {
    // Killed while the drain queues its 50,000 messages (~0.4 s here), after its clients connected.
    const args = ['--scenarios', 'drain', '--drain', '50000', '--json-out', out, '--data-dir', path.join(tmp, 'data')];
    const { code, output } = await runBenchKillingAedes(args, /-- bare Aedes: drain/, 150, t.signal);
    assert.equal(code, 0, `bench exited with ${code}:\n${output.slice(-3000)}`);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.crashes?.map((c) => [c.system, c.scenario]), [['aedes', 'drain']]);
    const drains = r.drain.filter((d) => d.system === 'aedes');
    assert.equal(drains.length, 1, 'one drain result: the one measured on the new process');
    assert.equal(drains[0].received, drains[0].messages);
    assert.equal(r.systems[0].nodes?.length, 2);
    assert.ok(r.systems[0].notes.some((n) => /^died during drain .*started again .* for drain$/.test(n)), r.systems[0].notes.join(' | '));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench tail: late messages counted by when they were sent, merged across generators, and how packed they are', () => {
  const a: Timeline = [];
  const b: Timeline = [];
  // 1,000 messages a second for 10 s, 1 ms each, but those sent in 4.2–4.4 s took 30 ms (a 200 ms burst).
  for (let t = 0; t < 10_000; t++) recordTimeline(t % 2 ? a : b, t + 0.5, t >= 4200 && t < 4400 ? 30_000 : 1000);
  const merged = mergeTimelines([a, b]);
  assert.equal(merged.length, 10_000 / TAIL_BUCKET_MS);
  assert.deepEqual(merged[42], [100, 100, 30_000]);
  assert.deepEqual(merged[0], [100, 0, 1000]);
  const burst = summarizeTail(merged);
  assert.deepEqual(burst, { messages: 10_000, late: 200, lateShare: 0.02, halfLateWithinMs: 100, spanMs: 10_000, sendLagMaxMs: null });
  assert.equal(tailText(burst), '2.00% over 5 ms (half of them in the worst 0.1 of 10 s)');
  assert.equal(tailShort(burst), '2.00% over 5 ms, half in the worst 0.1 s');
  assert.equal(tailCell(burst), '2.00% / 0.1 s');

  // The same 200 late messages spread over the whole step: half of them need half of it.
  const spread: Timeline = [];
  for (let t = 0; t < 10_000; t++) recordTimeline(spread, t, t % 50 === 0 ? 6000 : 1000);
  assert.deepEqual(summarizeTail(spread), { messages: 10_000, late: 200, lateShare: 0.02, halfLateWithinMs: 5000, spanMs: 10_000, sendLagMaxMs: null });
  // Exactly LATE_MS is not late; a generator whose clock read a send a little before its window counts it in the first bucket.
  const edge: Timeline = [];
  recordTimeline(edge, -0.3, LATE_MS * 1000);
  assert.deepEqual(edge, [[1, 0, 5000]]);
  assert.deepEqual(summarizeTail(edge), { messages: 1, late: 0, lateShare: 0, halfLateWithinMs: null, spanMs: 100, sendLagMaxMs: null });
  assert.equal(tailText(summarizeTail(edge)), 'none over 5 ms');
  // Generators whose windows ran a bucket apart.
  assert.deepEqual(mergeTimelines([[[1, 1, 9000]], [[2, 0, 100], [3, 1, 7000]]]), [[3, 1, 9000], [3, 1, 7000]]);
  assert.equal(sendLagText(summarizeTail(merged)), '', 'no send lag in results without it');

  // The generators' send loop: each bucket keeps the worst lag, by when the late send went out; merged,
  // the worst of any generator. A bucket no send fell in has none; one a receive made is created.
  const g1: Timeline = [];
  const g2: Timeline = [];
  recordSendLag(g1, 10, 1500);
  recordSendLag(g1, 60, 40_000);
  recordSendLag(g1, 90, 2000);
  recordSendLag(g1, 250, 1200);
  // A send right on time is a lag of 0 (a clock read a hair early, never below), recorded all the same.
  recordSendLag(g2, 120, -0.4);
  recordTimeline(g2, 30, 800);
  recordSendLag(g2, 50, 3000);
  recordTimeline(g2, 150, 45_000);
  assert.deepEqual(g1, [[0, 0, 0, 40_000], [0, 0, 0], [0, 0, 0, 1200]]);
  const both = mergeTimelines([g1, g2]);
  assert.deepEqual(both, [[1, 0, 800, 40_000], [1, 1, 45_000, 0], [0, 0, 0, 1200]]);
  const lagged = summarizeTail(both);
  assert.equal(lagged.sendLagMaxMs, 40);
  assert.equal(lagged.late, 1);
  assert.equal(sendLagText(lagged), 'send loop ≤ 40.0 ms late');
});

test('bench tail chart: one line per system at its half-peak step, none for results without timelines', () => {
  const step = (rate: number, timeline?: Timeline) =>
    ({ ratePerUser: rate, deliveredPerSec: rate * 1000, p99: 3, timeline }) as unknown as ChatStep;
  const ladder = (system: string, timeline?: Timeline) => ({ system, steps: [step(1, timeline)], peak: step(1, timeline), halfPeak: step(1, timeline) });
  const results = { startedAt: '2026-12-05T00:00:00Z', machine: { cores: 2 }, quick: false, chat: [ladder('mosquitto', [[10, 0, 300], [10, 2, 12_000]]), ladder('aedes')] } as unknown as BenchResults;
  const svg = renderTailChart(results)!;
  assert.match(svg, /^<svg /);
  assert.ok(svg.includes('Mosquitto') && svg.includes('@ 1,000 msg/s: p99 3.00 ms'));
  assert.ok(!svg.includes('bare Aedes'), 'a ladder without a timeline has no line');
  assert.ok(svg.includes('10.00% over 5 ms, half in the worst 0.1 s'));
  assert.equal(renderTailChart({ ...results, chat: [ladder('aedes')] } as unknown as BenchResults), null);
  // The half-peak step held longer after the ladder, where there is one, is the line drawn.
  const held = { ...step(1, [[10, 0, 300], [10, 0, 400], [10, 0, 200], [10, 1, 6_000]]), p99: 4 } as ChatStep;
  const withHeld = renderTailChart({ ...results, chat: [{ ...ladder('mosquitto', [[10, 0, 300], [10, 2, 12_000]]), halfPeakHeld: held }] } as unknown as BenchResults)!;
  assert.ok(withHeld.includes('@ 1,000 msg/s: p99 4.00 ms') && withHeld.includes('2.50% over 5 ms'), 'the held step is drawn');
  assert.ok(!withHeld.includes('p99 3.00 ms'), "the ladder's own step is not");
  assert.ok(!withHeld.includes('stroke-dasharray="1,2"') && !withHeld.includes('load sent'), 'no send-lag line without send lags');
  // With the generators' send lag: a dotted line of it under the system's, and its worst in the legend.
  const lagged = { ...step(1, [[10, 0, 300, 2000], [10, 3, 40_000, 35_000], [10, 0, 400, 0]]), p99: 30 } as ChatStep;
  const withLag = renderTailChart({ ...results, chat: [{ ...ladder('mosquitto'), halfPeakHeld: lagged }] } as unknown as BenchResults)!;
  assert.equal((withLag.match(/stroke-dasharray="1,2"/g) ?? []).length, 1, 'one dotted line');
  assert.ok(withLag.includes('dotted: load sent ≤ 35.0 ms late'));
});

test('bench main-thread meter: a thread that spins is seen running, and its wait for a CPU is counted', () => {
  const meter = new MainThreadMeter(process.pid);
  const until = performance.now() + 300;
  while (performance.now() < until);
  const r = meter.read();
  assert.ok(r, 'this kernel keeps schedstat');
  assert.ok(r.cpu > 50 && r.cpu <= 101, `ran ${r.cpu}% of a core while spinning`);
  assert.ok(r.waitMsPerSec >= 0 && r.waitMsPerSec < 1000);
  assert.ok(r.preemptedPerSec >= 0);
});

test('bench main-thread meter: a thread that shares one CPU with two other spinning processes waits and is preempted', async () => {
  // All three pinned to CPU 0 (taskset execs node: the pid is node's), whatever the machine's core count.
  const spin = () => spawn('taskset', ['-c', '0', process.execPath, '-e', 'for (;;);'], { stdio: 'ignore' });
  const spinners = [spin(), spin(), spin()];
  try {
    await new Promise((r) => setTimeout(r, 300));
    const meter = new MainThreadMeter(spinners[0].pid!);
    await new Promise((r) => setTimeout(r, 1000));
    const r = meter.read();
    assert.ok(r);
    assert.ok(r.preemptedPerSec > 0, `preempted ${r.preemptedPerSec}/s`);
    assert.ok(r.waitMsPerSec > 200, `waited ${r.waitMsPerSec} ms/s: two others shared its CPU`);
    assert.ok(r.cpu > 10 && r.cpu < 60, `ran ${r.cpu}% of a CPU it shared with two others`);
  } finally {
    for (const c of spinners) c.kill('SIGKILL');
  }
});

test('bench pauses: GC, fsync, compaction and event-loop figures of one step from two /metrics reads', () => {
  const text = (minorSum: number, minorCount: number, majorCount: number, buckets: number[], loopMax: number, fsyncSum = 0, compactions = [0, 0]) =>
    [
      '# TYPE parley_process_nodejs_gc_duration_seconds histogram',
      `parley_process_nodejs_gc_duration_seconds_sum{kind="minor"} ${minorSum}`,
      `parley_process_nodejs_gc_duration_seconds_count{kind="minor"} ${minorCount}`,
      `parley_process_nodejs_gc_duration_seconds_sum{kind="major"} ${majorCount * 0.03}`,
      `parley_process_nodejs_gc_duration_seconds_count{kind="major"} ${majorCount}`,
      ...['0.001', '0.01', '0.1', '+Inf'].map((le, i) => `parley_journal_fsync_seconds_bucket{le="${le}"} ${buckets[i]}`),
      `parley_journal_fsync_seconds_sum ${fsyncSum}`,
      `parley_journal_fsync_seconds_count ${buckets[3]}`,
      ...['0.01', '0.05', '+Inf'].map((le, i) => `parley_journal_compaction_seconds_bucket{le="${le}"} ${compactions[Math.min(i, 1)]}`),
      `parley_journal_compaction_seconds_sum 0`,
      `parley_journal_compaction_seconds_count ${compactions[1]}`,
      `parley_process_nodejs_eventloop_lag_max_seconds ${loopMax}`,
    ].join('\n');
  const before = parseMetrics(text(0.1, 10, 1, [50, 60, 60, 60], 0.011, 0.03, [2, 2]));
  // In the step: 20 scavenges (0.12 s), one major GC (0.03 s), 100 fsyncs of which 98 under 1 ms, 1 under 10 ms,
  // 1 under 100 ms, 0.125 s in all; 3 compactions, 1 of them under 10 ms, the others under 50 ms.
  const after = parseMetrics(text(0.22, 30, 2, [148, 159, 160, 160], 0.0457, 0.155, [3, 5]));
  const p = pausesBetween(before, after);
  assert.deepEqual(p, { gcMs: 150, minorGcs: 20, majorGcs: 1, fsyncs: 100, fsyncMeanMs: 1.25, fsyncP99Ms: 10, fsyncMaxMs: 100, compactions: 3, compactionMaxMs: 50, loopMaxMs: 45.7 });
  assert.match(pausesText(p), /gc 150 ms \(20 minor, 1 major\)  fsync 100 mean 1.25 p99≤10 max≤100 ms  compactions 3 max≤50 ms  loop max 45.7 ms/);
  // No journal (Redis): no fsync figures, and the text says nothing about them.
  const none = pausesBetween(parseMetrics(text(0, 0, 0, [0, 0, 0, 0], 0)), parseMetrics(text(0, 0, 0, [0, 0, 0, 0], 0.01)));
  assert.equal(none.fsyncs, 0);
  assert.equal(none.fsyncMaxMs, null);
  assert.equal(none.fsyncMeanMs, null);
  assert.doesNotMatch(pausesText(none), /fsync|compaction/);
  // Two nodes of a cluster as one: their GCs and fsyncs added, bucket by bucket; the longer loop delay.
  const both = pausesBetween(mergeMetrics([before, parseMetrics(text(0, 0, 0, [0, 0, 0, 0], 0))]), mergeMetrics([after, parseMetrics(text(0.05, 5, 0, [0, 0, 10, 10], 0.02))]));
  assert.deepEqual(both, { gcMs: 200, minorGcs: 25, majorGcs: 1, fsyncs: 110, fsyncMeanMs: 1.136, fsyncP99Ms: 100, fsyncMaxMs: 100, compactions: 3, compactionMaxMs: 50, loopMaxMs: 45.7 });
});

/** Sums as the results round them (MB and % to one decimal): equal within the rounding of each part. */
function assertSum(total: number, parts: number[], what: string): void {
  const sum = parts.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - sum) <= 0.1 * parts.length, `${what}: ${total} is the sum of the nodes' ${parts.join(' + ')}`);
}

/** Both node processes of the cluster were measured in every scenario, and its system figures are their sums. */
function assertClusterMeasured(r: BenchResults): void {
  const nodes = r.systems.find((s) => s.name === 'parley-cluster')?.nodes ?? [];
  assert.equal(nodes.length, 2, 'the cluster ran as two processes');
  assert.notEqual(nodes[0].pid, nodes[1].pid);
  assert.notEqual(nodes[0].port, nodes[1].port);
  const names = nodes.map((n) => n.name);
  const perNode = (u: Usage, what: string) => {
    assert.deepEqual(u.nodes?.map((n) => n.node), names, `${what}: CPU and RSS of each node`);
    assert.ok(u.nodes!.every((n) => n.brokerRssMB > 0), `${what}: each node's RSS was read`);
    assertSum(u.brokerRssMB, u.nodes!.map((n) => n.brokerRssMB), `${what} broker RSS`);
    assertSum(u.brokerCpu, u.nodes!.map((n) => n.brokerCpu), `${what} broker CPU`);
  };
  const chat = r.chat.find((c) => c.system === 'parley-cluster')!;
  assert.equal(chat.crossNode, chat.users, 'in 1:1 chat every sender writes to a user on the other node');
  const ladders: [string, ChatStep[]][] = [['chat', chat.steps], ['fan-out', r.fanout.find((c) => c.system === 'parley-cluster')!.steps]];
  for (const [what, steps] of ladders) {
    for (const s of steps) {
      perNode(s, `cluster ${what} @${s.ratePerUser}/s`);
      assert.equal(s.nodePauses?.length, 2, `cluster ${what}: each node's /metrics was read around the step`);
      assert.ok(s.nodePauses!.every((p) => p.loopMaxMs > 0));
      assert.equal(s.pauses!.minorGcs, s.nodePauses![0].minorGcs + s.nodePauses![1].minorGcs, "the step's GCs are both nodes'");
    }
    // Both processes worked on the messages (a step is short; over the ladder each has CPU time to show).
    for (const [i, name] of names.entries()) assert.ok(steps.some((s) => s.nodes![i].brokerCpu > 0), `cluster ${what}: ${name} used CPU`);
  }
  perNode(r.drain.find((d) => d.system === 'parley-cluster')!, 'cluster drain');
  const conn = r.connections.find((c) => c.system === 'parley-cluster')!;
  perNode(conn, 'cluster connections');
  assert.deepEqual(conn.nodeRss?.map((n) => [n.node, n.connections]), names.map((n) => [n, conn.target / 2]), 'idle connections split evenly over the nodes');
  // The settled reading ran a full GC in both processes: each has its own, and the system's is their sum.
  assert.ok(conn.nodeRss!.every((n) => n.rssBeforeMB > 0 && n.rssSettledMB > 0));
  assertSum(conn.rssSettledMB!, conn.nodeRss!.map((n) => n.rssSettledMB), 'cluster settled RSS');
  assertSum(conn.rssBeforeMB, conn.nodeRss!.map((n) => n.rssBeforeMB), 'cluster RSS before the burst');
}

test('bench --redis-appendfsync: Redis runs with the policy asked for, and gets its own back after', { timeout: 30_000 }, async () => {
  const url = 'redis://127.0.0.1:16379';
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  const policy = async () => ((await r.config('GET', 'appendfsync')) as string[])[1];
  const before = await policy();
  try {
    const other = before === 'everysec' ? 'always' : 'everysec';
    const set = await redisFsyncFor(url, other);
    assert.equal(set.policy, other, 'reported as set');
    assert.equal(await policy(), other, 'Redis runs with it');
    await set.restore();
    assert.equal(await policy(), before, 'put back');
    // Asked for what Redis has, or for nothing: reported as it is, and nothing to put back.
    for (const wanted of [before as 'always' | 'everysec', undefined]) {
      const same = await redisFsyncFor(url, wanted);
      assert.equal(same.policy, before);
      await same.restore();
      assert.equal(await policy(), before);
    }
  } finally {
    await r.config('SET', 'appendfsync', before);
    r.disconnect();
  }
});

test('bench against a Redis that refuses CONFIG: measured as it is, unless a policy is asked for', { timeout: 30_000 }, async () => {
  const admin = new Redis('redis://127.0.0.1:16379', { maxRetriesPerRequest: 1 });
  const user = `bench-noconfig-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(8).toString('hex');
  await admin.acl('SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all', '-config');
  try {
    const limited = `redis://${user}:${password}@127.0.0.1:16379`;
    const as = await redisFsyncFor(limited);
    assert.equal(as.policy, 'unknown (CONFIG refused)');
    await as.restore();
    await assert.rejects(redisFsyncFor(limited, 'everysec'), (err: Error) => {
      assert.match(err.message, /--redis-appendfsync everysec: Redis at redis:\/\/127\.0\.0\.1:16379 refused CONFIG GET appendfsync/);
      assert.ok(!err.message.includes(password), 'the password stays out of the message');
      return true;
    });
  } finally {
    await admin.acl('DELUSER', user);
    admin.disconnect();
  }
});

test('bench options: --redis-appendfsync takes only a policy Redis knows', async () => {
  const { code, output } = await runBench(['--redis-appendfsync', 'sometimes', '--scenarios', 'chat']);
  assert.notEqual(code, 0);
  assert.match(output, /--redis-appendfsync takes always, everysec, no, not "sometimes"/);
});

/** `parley …` (the CLI from its sources, or `node dist/cli/parley.js` when `built`), its exit code and output. */
function runCli(args: string[], built = false): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const argv = built ? [path.join(REPO, 'dist', 'cli', 'parley.js'), ...args] : ['--import', 'tsx', path.join(REPO, 'cli', 'parley.ts'), ...args];
    // The built one from elsewhere, as an installed command would be (tsx's loader resolves from the checkout).
    const child = spawn(process.execPath, argv, { cwd: built ? os.tmpdir() : REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('exit', (code) => resolve({ code, output }));
  });
}

test('parley bench: the bench from the CLI, its options passed through, a bad one a clear error', { timeout: 300_000 }, async (t) => {
  const help = await runCli(['bench', '--help']);
  assert.equal(help.code, 0, help.output);
  assert.match(help.output, /--parley-build B/);
  assert.match(help.output, /--redis-appendfsync F/);
  const bad = await runCli(['bench', '--bogus']);
  assert.equal(bad.code, 2, bad.output);
  assert.match(bad.output, /Unknown option '--bogus'/);
  assert.match(bad.output, /parley bench --help/);
  assert.doesNotMatch(bad.output, /\n\s+at /, 'no stack trace for a bad option');
  // The built CLI finds the bench of its checkout too (dist/cli/ is a folder deeper than cli/), and runs it.
  const build = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  assert.equal(build.status, 0, build.stdout + build.stderr);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cli-bench-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const out = path.join(tmp, 'results.json');
  const run = await runCli(['bench', '--quick', '--systems', 'aedes', '--scenarios', 'chat', '--data-dir', path.join(tmp, 'data'), '--json-out', out], true);
  assert.equal(run.code, 0, run.output.slice(-3000));
  const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
  const steps = r.chat.find((c) => c.system === 'aedes')?.steps ?? [];
  assert.ok(steps.length > 0 && steps.every((s) => s.sent > 0 && s.received === s.sent), 'every message of the quick run arrived');
});

test('bench options: --parley-build takes tsx or dist', async () => {
  const { code, output } = await runBench(['--parley-build', 'docker', '--scenarios', 'chat']);
  assert.notEqual(code, 0);
  assert.match(output, /--parley-build takes tsx or dist, not "docker"/);
});

test('bench options: --body-bytes stops at the longest body Parley accepts, and --parley-env takes only values Parley would', async () => {
  const tooLong = await runBench(['--body-bytes', '100000000', '--scenarios', 'chat']);
  assert.notEqual(tooLong.code, 0);
  assert.match(tooLong.output, /--body-bytes must be ≤ 65536, the longest body Parley accepts/);
  assert.doesNotMatch(tooLong.output, /systems .*; scenarios/, 'refused before anything started');
  const raised = await runBench(['--body-bytes', '100000', '--parley-env', 'PARLEY_MAX_BODY_BYTES=50000', '--scenarios', 'chat']);
  assert.notEqual(raised.code, 0);
  assert.match(raised.output, /--body-bytes must be ≤ 50000/);
  const bad = await runBench(['--parley-env', 'PARLEY_NODE_ID=5000', '--scenarios', 'chat']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.output, /--parley-env: invalid configuration:\s+PARLEY_NODE_ID: /);
});

test('bench: a --redis-url or --kafka-brokers where nothing answers is named in a clear error, not a client library\'s retry message', { timeout: 120_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  try {
    for (const [option, value, said] of [
      ['--redis-url', 'redis://127.0.0.1:1', 'Redis at redis://127.0.0.1:1 (--redis-url) not answering'],
      ['--kafka-brokers', '127.0.0.1:1', 'Kafka at 127.0.0.1:1 (--kafka-brokers) not answering'],
    ]) {
      const out = path.join(tmp, `${option.slice(2)}.json`);
      const { code, output } = await runBench(['--quick', '--systems', 'parley-redis', '--scenarios', 'chat', option, value, '--json-out', out, '--data-dir', path.join(tmp, 'data')], { signal: t.signal });
      assert.notEqual(code, 0, output.slice(-2000));
      const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults;
      assert.deepEqual(r.errors.map((e) => [e.system, e.scenario, e.message]), [['parley-redis', 'start', `${said}, with test/stack's running`]]);
      assert.deepEqual(r.chat, [], 'nothing was measured');
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench --parley-build dist: Parley built by npm run build, run from dist/ as the Docker image runs it; built once per commit', { timeout: 600_000 }, async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-dist-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const data = path.join(tmp, 'data');
  const run = async (n: number) => {
    const out = path.join(tmp, `results-${n}.json`);
    const { code, output } = await runBench(['--quick', '--systems', 'parley-embedded', '--scenarios', 'chat', '--parley-ref', 'HEAD', '--parley-build', 'dist', '--data-dir', data, '--json-out', out]);
    assert.equal(code, 0, `bench exited with ${code}:\n${output.slice(-4000)}`);
    return { output, r: JSON.parse(fs.readFileSync(out, 'utf8')) as BenchResults };
  };
  const first = await run(1);
  assert.match(first.output, /building Parley in .*npm run build/);
  const [src] = fs.readdirSync(path.join(data, 'src'));
  const dir = path.join(data, 'src', src);
  assert.ok(fs.existsSync(path.join(dir, 'dist', 'cli', 'parley.js')), 'tsc wrote dist/cli/parley.js in the exported commit');
  assert.ok(fs.existsSync(path.join(dir, 'dist', 'consumers', 'thread-boot.mjs')), "the build copied the consumer thread's boot module");
  assert.equal(fs.readFileSync(path.join(dir, 'dist', '.built'), 'utf8').trim().slice(0, 12), src, 'the build names its commit');
  const sut = first.r.systems.find((s) => s.name === 'parley-embedded');
  assert.match(sut?.version ?? '', /node dist\/cli\/parley\.js start --role all/);
  assert.equal(first.r.options.parleyBuild, 'dist', 'the results say which build ran');
  const steps = first.r.chat.find((c) => c.system === 'parley-embedded')?.steps ?? [];
  assert.ok(steps.length > 0);
  for (const s of steps) {
    assert.ok(s.sent > 0);
    assert.equal(s.received, s.sent, 'every message through the built Parley arrived');
    assert.equal(s.appAcks, s.sent, 'and was acked');
    assert.equal(s.errors, 0);
  }
  // A second run of the same commit starts the build it has.
  const second = await run(2);
  assert.doesNotMatch(second.output, /building Parley/);
  assert.match(second.r.systems[0].version, /node dist\/cli\/parley\.js/);
});

/** The run's Redis keys (tokens, presence, dedupe, queues) under its own prefix. */
async function removeKeys(prefix: string): Promise<void> {
  const r = new Redis('redis://127.0.0.1:16379', { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  r.on('error', () => {});
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

test('bench profiles: the longest busy stretches inside the measured steps, by the Parley frame that took them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-profile-'));
  const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 0 }, children });
  // root → (idle); root → processImmediate (node) → store (Parley) → writeSync (node); root → (garbage collector)
  const nodes = [
    frame(1, '(root)', '', [2, 3, 6]),
    frame(2, '(idle)', ''),
    frame(3, 'processImmediate', 'node:internal/timers', [4]),
    frame(4, 'store', 'file:///app/broker/accept-store-embedded.ts', [5]),
    frame(5, 'writeSync', 'node:fs'),
    frame(6, '(garbage collector)', ''),
  ];
  // 1 ms samples from t = 1,000,000 µs: idle ×3, a 5 ms stretch (3 in store's writeSync, 2 of GC), idle ×2,
  // a 2 ms stretch in store, idle, then a 9 ms stretch after the step's window.
  const samples = [2, 2, 2, 5, 5, 5, 6, 6, 2, 2, 4, 4, 2, ...Array(9).fill(6), 2];
  const file = path.join(dir, 'CPU.cpuprofile');
  fs.writeFileSync(file, JSON.stringify({ nodes, startTime: 1_000_000, endTime: 1_023_000, samples, timeDeltas: samples.map(() => 1000) }));
  const { stalls } = summarizeProfile(file, 25, [{ label: '1:1 chat 1,000 msg/s', fromUs: 1_000_000, toUs: 1_013_000 }]);
  assert.deepEqual(
    stalls.map((s) => [s.ms, s.during, s.frames.map((f) => `${f.frame} ${f.ms}`)]),
    [
      [5, '1:1 chat 1,000 msg/s', ['store broker/accept-store-embedded.ts 3', '(garbage collector) 2']],
      [2, '1:1 chat 1,000 msg/s', ['store broker/accept-store-embedded.ts 2']],
    ],
    'the 9 ms stretch after the window is left out; Parley frames name what ran under them',
  );
  assert.match(stallText(stalls), /^ {4}5\.0 ms at 0\.0 s \(1:1 chat 1,000 msg\/s\): store broker\/accept-store-embedded\.ts \(3 ms\), \(garbage collector\) \(2 ms\)/);
  // Without windows every stretch is listed, longest first.
  assert.deepEqual(summarizeProfile(file).stalls.map((s) => s.ms), [9, 5, 2]);
  fs.rmSync(dir, { recursive: true });
});

test('bench: only a run measured as the full one replaces the charts BENCHMARKS.md shows', () => {
  assert.equal(measuresAsFullRun({}), true);
  assert.equal(measuresAsFullRun({ 'parley-ref': '1455390', systems: 'parley-embedded', scenarios: 'chat', 'cpu-prof': undefined }), true, 'which commit, systems and scenarios do not change how a step measures');
  for (const given of [{ rates: '1,2,5' }, { 'step-seconds': '20' }, { 'hold-seconds': '0' }, { users: '300' }, { quick: true }, { 'cpu-prof': true }, { 'parley-env': 'PARLEY_EMBEDDED_FSYNC=false' }, { 'redis-appendfsync': 'everysec' }, { 'parley-build': 'dist' }]) {
    assert.equal(measuresAsFullRun(given), false, `${JSON.stringify(given)} makes it an experiment`);
  }
});

test('bench flame graph: busy time in the measured steps, merged by call stack, widest first, names escaped', () => {
  const frame = (id: number, functionName: string, url: string, children: number[] = []) => ({ id, callFrame: { functionName, url, lineNumber: 41 }, children });
  // root → (idle); root → processImmediate → store → writeSync, and → encode <b>&</b> {y1}; root → (garbage collector);
  // a second processImmediate node (V8 makes one per distinct stack position) → store again, to be merged.
  const nodes = [
    frame(1, '(root)', '', [2, 3, 6, 7]),
    frame(2, '(idle)', ''),
    frame(3, 'processImmediate', 'node:internal/timers', [4, 8]),
    frame(4, 'store', 'file:///app/broker/accept-store-embedded.ts', [5]),
    frame(5, 'writeSync', 'node:fs'),
    frame(6, '(garbage collector)', ''),
    frame(7, 'processImmediate', 'node:internal/timers', [9]),
    frame(8, 'encode <b>&</b> {y1}', 'file:///app/node_modules/mqtt-packet/generate.js'),
    frame(9, 'store', 'file:///app/broker/accept-store-embedded.ts'),
  ];
  // 1 ms samples from t = 1,000,000 µs: in the window (the first 12 samples) writeSync 4, store 1 (node 9),
  // encode 1, GC 2, idle 4; after it, 9 of GC that must not count.
  const samples = [2, 5, 5, 5, 5, 9, 8, 6, 6, 2, 2, 2, ...Array(9).fill(6)];
  const profile = { nodes, startTime: 1_000_000, endTime: 1_021_000, samples, timeDeltas: samples.map(() => 1000) };
  const windows = [{ label: '1:1 chat 1,000 msg/s', fromUs: 1_000_000, toUs: 1_012_000 }];
  const root = flameTree(profile, windows);
  const shape = (f: ReturnType<typeof flameTree>): unknown => [f.fn, f.total / 1000, f.self / 1000, [...f.children.values()].map(shape)];
  assert.deepEqual(shape(root), [
    'all', 8, 0,
    [
      ['processImmediate', 6, 0, [['store', 5, 1, [['writeSync', 4, 4, []]]], ['encode <b>&</b> {y1}', 1, 1, []]]],
      ['(garbage collector)', 2, 2, []],
    ],
  ], 'idle and out-of-window samples left out; the two processImmediate → store stacks are one bar');
  assert.equal(flameTree(profile).total / 1000, 17, 'without windows, every busy sample');

  const svg = renderFlame(profile, { title: 'Parley <test>', subtitle: 'steps & more', windows });
  assert.match(svg, /^<svg [^>]*width="1200"/);
  assert.ok(!svg.includes('<b>') && !svg.includes('<test>'), 'names and titles are escaped');
  assert.ok(svg.includes('Parley &lt;test&gt;') && svg.includes('steps &amp; more'));
  assert.ok(svg.includes('<title>store broker/accept-store-embedded.ts:42: 5.0 ms, 62.5 % of busy time (itself 1.0 ms)</title>'));
  assert.ok(svg.includes('<title>encode &lt;b&gt;&amp;&lt;/b&gt; {y1} mqtt-packet/generate.js:42: 1.0 ms, 12.5 % of busy time (itself 1.0 ms)</title>'));
  // Widths are the time: 1,180 px for 8 ms; processImmediate (6 ms) first, at the left edge, above the root.
  const bar = (name: string) => {
    const m = new RegExp(`<title>${name}[^<]*</title><rect x="([\\d.]+)" y="(\\d+)" width="([\\d.]+)"`).exec(svg);
    assert.ok(m, `a bar for ${name}`);
    return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]) };
  };
  const [all, imm, store, write, gc] = ['all busy time', 'processImmediate', 'store', 'writeSync', '\\(garbage collector\\)'].map(bar);
  assert.deepEqual([all.w, imm.w, store.w, write.w, gc.w], [1180, 885, 737.5, 590, 295]);
  assert.deepEqual([imm.x, gc.x], [10, 895], 'the wider child first');
  assert.ok(all.y > imm.y && imm.y > store.y && store.y > write.y, 'callees above their callers');
  const bars = [...svg.matchAll(/<\/title><rect [^>]*>/g)];
  assert.equal(bars.length, 6, 'a bar for each of the six frames');
  assert.ok(bars.every(([r]) => /\by="\d+"/.test(r)), 'every bar has a numeric y, whatever its name holds');
  // A bar under MIN_PX is not drawn: one sample of 1 µs in a second of others.
  const tiny = { ...profile, samples: [5, 8], timeDeltas: [1_000_000, 1] };
  assert.ok(!renderFlame(tiny, { title: 't' }).includes('encode'), 'a sliver of time draws no bar');
  const idle = { ...profile, samples: [2, 2], timeDeltas: [1000, 1000] };
  assert.match(renderFlame(idle, { title: 't', windows }), /no busy samples in these steps/);
});

test('bench heap diff: what grew between two real heap snapshots, by constructor, per connection', { timeout: 60_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-heap-'));
  try {
    // A process that keeps 5,000 objects of a class of its own between its two snapshots.
    const script = `
      const v8 = require('node:v8');
      class KeptPerConnection { constructor(i) { this.a = i; this.b = 'x' + i; this.c = [i]; } }
      v8.writeHeapSnapshot(${JSON.stringify(path.join(tmp, 'before.heapsnapshot'))});
      globalThis.kept = Array.from({ length: 5000 }, (_, i) => new KeptPerConnection(i));
      v8.writeHeapSnapshot(${JSON.stringify(path.join(tmp, 'after.heapsnapshot'))});`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'inherit' });
    assert.equal(await new Promise((r) => child.on('exit', r)), 0);
    const { heapGroups, heapGrowth, formatGrowth } = await import('../bench/heap-diff.ts');
    const growth = heapGrowth(heapGroups(path.join(tmp, 'before.heapsnapshot')), heapGroups(path.join(tmp, 'after.heapsnapshot')));
    const kept = growth.find((g) => g.group === 'KeptPerConnection');
    assert.ok(kept, `KeptPerConnection among ${growth.slice(0, 10).map((g) => g.group).join(', ')}`);
    assert.equal(kept.objects, 5000);
    assert.ok(kept.bytes >= 5000 * 24, `each instance has a size (${kept.bytes} bytes)`);
    const text = formatGrowth(growth, 5000, 10);
    assert.match(text, /^heap grew [\d.]+ MB = \d+ bytes per connection; largest:/);
    assert.match(text, /\d+ B +1\.00 objects +KeptPerConnection/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench --heap-snapshots: the connections scenario writes snapshots before and after and prints what a connection keeps', { timeout: 300_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-'));
  try {
    const args = ['--quick', '--systems', 'aedes', '--scenarios', 'connections', '--heap-snapshots', '--json-out', path.join(tmp, 'r.json'), '--data-dir', path.join(tmp, 'data')];
    const { code, output } = await runBench(args);
    assert.equal(code, 0, output.slice(-3000));
    const m = /heap snapshots of aedes: (\S+) → (\S+)\n(heap grew .* bytes per connection; largest:)/.exec(output);
    assert.ok(m, output.slice(-3000));
    for (const file of [m[1], m[2]]) assert.ok(fs.statSync(file).size > 1_000_000, `${file} is a heap snapshot`);
    fs.rmSync(path.dirname(m[1]), { recursive: true, force: true });
    assert.match(output, /\d+ B +1\.00 objects +Client\b/, 'one Aedes Client per connection');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench:archive: CPU per message by thread, for a young and a grown store', { timeout: 300_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-archive-'));
  try {
    const output = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/archive.ts', '--prefill', '3000', '--messages', '2000', '--users', '50', '--data-dir', tmp], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d) => (text += d));
      child.stderr.on('data', (d) => (text += d));
      child.on('exit', (code) => resolve({ code, text }));
    });
    assert.equal(output.code, 0, output.text.slice(-4000));
    assert.match(output.text, /filling a store with 3,000 messages/);
    const rows = output.text.split('\n').filter((l) => /^\| (young|grown)/.test(l));
    assert.equal(rows.length, 2, output.text);
    for (const row of rows) {
      const [, , messages, , total, main] = row.split('|').map((c) => c.trim());
      assert.equal(messages, '2,000');
      assert.ok(Number(total) > 0 && Number(main) > 0, row);
    }
    assert.ok(fs.existsSync(path.join(tmp, 'archive-prefill-3000-50', 'archive', 'CURRENT')), 'the grown store is kept for the next run');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
