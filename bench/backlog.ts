// Live chat while the consumers catch up a backlog: what the consumer thread is for. For each mode
// (PARLEY_CONSUMER_THREAD false and true, alternated), a Parley child process with the broker role alone
// fills the embedded event log with N messages; then Parley starts again on the same data with every role,
// so the archiver and the five analytics jobs read all N from the beginning, and one sender chats with one
// receiver at a fixed rate during that catch-up and again once it is over. Latency is send → receiver's
// inbox (both clients in this process, one clock).
//   npm run bench:backlog [-- --messages N] [--rate R] [--seconds S] [--rounds K] [--json-out FILE]
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { runBench, send, users, type Endpoint } from './chat-client.ts';
import { maxMs, newHistogram, quantileMs, record } from './histogram.ts';
import { buildParley, freePort, npmStartBuild, npmStartNodeFlags, parleyEntry, stopChild, waitFor } from './systems.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '8' },
    rounds: { type: 'string', default: '2' },
    'json-out': { type: 'string' },
  },
});
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const progress = (msg: string) => process.stderr.write(`[backlog] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** As `npm start` runs Parley: built first (the working tree, every run), then dist/cli/parley.js. */
const BUILD = npmStartBuild(REPO);
if (BUILD === 'dist') buildParley({ parleySrc: REPO, progress });

/** Parley as `npm start` runs it, in a child process, with the given roles; resolves once /healthz answers. */
async function startChild(dataDir: string, thread: boolean, role: string): Promise<{ child: ChildProcess; at: Endpoint }> {
  const [mqttPort, httpPort] = [await freePort(), await freePort()];
  const env = { ...process.env, PARLEY_HOST: '127.0.0.1', PARLEY_MQTT_PORT: String(mqttPort), PARLEY_HTTP_PORT: String(httpPort), PARLEY_TLS_PORT: '0', PARLEY_DATA_DIR: dataDir, PARLEY_LOG_LEVEL: 'warn', PARLEY_OFFLINE_MAX: '10000000', PARLEY_CONSUMER_THREAD: String(thread), UV_THREADPOOL_SIZE: '16' };
  const child = spawn(process.execPath, [...npmStartNodeFlags(REPO), ...parleyEntry(BUILD), 'start', '--role', role], { cwd: REPO, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const base = `http://127.0.0.1:${httpPort}`;
  await waitFor(`Parley (${role})`, () => fetch(`${base}/healthz`).then((r) => r.ok, () => false), child);
  return { child, at: { base, mqttPort } };
}

/** The archiver's and the analytics jobs' progress, from the process's counters. */
async function consumed(base: string): Promise<{ archived: number; analytics: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let analytics = 0;
  for (const line of text.split('\n')) if (line.startsWith('parley_analytics_events_total{')) analytics += Number(line.slice(line.lastIndexOf(' ') + 1));
  const archived = Number(/^parley_archiver_archived (\S+)$/m.exec(text)?.[1] ?? NaN);
  return { archived, analytics };
}

/** One sender → one receiver at RATE msg/s for SECONDS: latency from publish to the receiver's inbox. */
async function chatWindow(at: Endpoint, sender: { id: string; token: string }, receiver: { id: string; token: string }) {
  const rx = await mqtt.connectAsync(`mqtt://127.0.0.1:${at.mqttPort}`, { username: receiver.id, password: receiver.token, reconnectPeriod: 0 });
  const hist = newHistogram();
  let got = 0;
  rx.on('message', (_t, payload) => {
    const m = JSON.parse(payload.toString());
    const sent = /at ([0-9.]+)$/.exec(m.body ?? '');
    if (m.kind !== 'text' || !sent) return;
    record(hist, (performance.now() - Number(sent[1])) * 1000);
    got++;
  });
  await rx.subscribeAsync(`inbox/${receiver.id}`, { qos: 1 });
  const n = RATE * SECONDS;
  await send(at, [sender], receiver.id, n, RATE);
  for (let i = 0; i < 100 && got < n; i++) await sleep(100);
  await rx.endAsync();
  return { sent: n, received: got, p50: quantileMs(hist, 0.5), p99: quantileMs(hist, 0.99), p999: quantileMs(hist, 0.999), max: maxMs(hist) };
}

const children = new Set<ChildProcess>();

async function round(thread: boolean) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-bench-backlog-'));
  try {
    // 1. The backlog: the broker alone, so nothing consumes it yet.
    let p = await startChild(dataDir, thread, 'broker');
    children.add(p.child);
    const [receiver] = await users(p.at.base, 'blrecv', 1);
    const senders = await users(p.at.base, 'blsend', 20);
    progress(`${thread ? 'thread' : 'inline'}: filling the event log with ${MESSAGES} messages`);
    const t0 = performance.now();
    await send(p.at, senders, receiver.id, MESSAGES / senders.length, 0);
    progress(`  accepted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(2000); // the outbox ships its last records (10 ms linger) before the broker stops
    await stopChild(p.child);

    // 2. Every role: the consumers start from the beginning of the log; live chat meanwhile.
    p = await startChild(dataDir, thread, 'all');
    children.add(p.child);
    // Embedded tokens live in the process: sign in again.
    const [live, liveRx] = await users(p.at.base, 'bllive', 2);
    const before = await consumed(p.at.base);
    const during = await chatWindow(p.at, live, liveRx);
    const after = await consumed(p.at.base);
    progress(`  during catch-up: p50 ${during.p50?.toFixed(2)} p99 ${during.p99?.toFixed(1)} p99.9 ${during.p999?.toFixed(1)} max ${during.max?.toFixed(1)} ms; consumed meanwhile: archived ${after.archived - before.archived}, analytics records ${after.analytics - before.analytics}`);
    // 3. Once every job has read the backlog (5 jobs × MESSAGES records), the same chat again.
    const deadline = Date.now() + 300_000;
    while ((await consumed(p.at.base)).analytics < 5 * MESSAGES && Date.now() < deadline) await sleep(500);
    const caughtUp = await consumed(p.at.base);
    const idle = await chatWindow(p.at, live, liveRx);
    progress(`  after catch-up:  p50 ${idle.p50?.toFixed(2)} p99 ${idle.p99?.toFixed(1)} p99.9 ${idle.p999?.toFixed(1)} max ${idle.max?.toFixed(1)} ms`);
    await stopChild(p.child);
    return { mode: thread ? 'thread' : 'inline', messages: MESSAGES, rate: RATE, seconds: SECONDS, duringCatchUp: { ...during, consumed: { archived: after.archived - before.archived, analytics: after.analytics - before.analytics } }, afterCatchUp: { ...idle, caughtUp } };
  } finally {
    for (const child of children) await stopChild(child);
    children.clear();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  const results = [];
  for (let k = 0; k < ROUNDS; k++) for (const thread of [false, true]) results.push(await round(thread));
  return { date: new Date().toISOString(), machine: { cpus: os.cpus().length }, results };
}

runBench(main, values['json-out']);
