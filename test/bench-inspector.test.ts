// The bench reads idle-connection memory after a full GC of the broker, run through the broker's inspector
// (bench/inspector.ts): SIGUSR1 opens it on a free port, HeapProfiler.collectGarbage runs the GC. Checked
// here against a real Node process that reports its own major GCs, and against one that cannot be inspected.
import assert from './helpers/assert.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { sampleAllocations } from '../bench/heap-sample.ts';
import { collectGarbage, INSPECT_ON_SIGNAL } from '../bench/inspector.ts';

// Logs every major GC; allocates nothing else while idle, and keeps 200,000 small objects more on SIGUSR2.
const CHILD = `
const kept = [];
process.on('SIGUSR2', () => { for (let i = 0; i < 200000; i++) kept.push({ i }); console.error('kept ' + kept.length); });
const { PerformanceObserver, constants } = require('node:perf_hooks');
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) console.error('major-gc');
}).observe({ entryTypes: ['gc'] });
console.error('ready');
setInterval(() => {}, 1000);
`;

function start(args: string[], log: string, code = CHILD): Promise<ChildProcess> {
  const fd = fs.openSync(log, 'w');
  const child = spawn(process.execPath, [...args, '-e', code], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (fs.readFileSync(log, 'utf8').includes('ready')) {
        clearInterval(poll);
        resolve(child);
      } else if (child.exitCode !== null) {
        clearInterval(poll);
        reject(new Error(`child exited: ${fs.readFileSync(log, 'utf8')}`));
      }
    }, 20);
  });
}

const majors = (log: string) => fs.readFileSync(log, 'utf8').split('\n').filter((l) => l === 'major-gc').length;

test('collectGarbage runs a full GC in another Node process, again on a second call', { timeout: 30_000 }, async () => {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inspector-')), 'child.log');
  const child = await start([INSPECT_ON_SIGNAL], log);
  try {
    const before = majors(log);
    await collectGarbage(child.pid!, log);
    await new Promise((r) => setTimeout(r, 200));
    const once = majors(log);
    assert.ok(once > before, `a major GC ran (${before} → ${once}):\n${fs.readFileSync(log, 'utf8')}`);
    // The inspector stays open: the second call reuses the address in the log.
    await collectGarbage(child.pid!, log);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(majors(log) > once, 'a second major GC ran');
    assert.equal(fs.readFileSync(log, 'utf8').match(/Debugger listening/g)?.length, 1, 'the inspector was opened once');
  } finally {
    child.kill();
  }
});

test('collectGarbage answers with the heap the process keeps after the GC', { timeout: 30_000 }, async () => {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inspector-')), 'child.log');
  const child = await start([INSPECT_ON_SIGNAL], log);
  try {
    const first = await collectGarbage(child.pid!, log);
    assert.ok(first.heapUsed > 1 << 20 && first.heapUsed < 200 << 20, `a Node process's heap: ${first.heapUsed} bytes`);
    assert.ok(first.external >= 0);
    child.kill('SIGUSR2');
    for (let i = 0; i < 100 && !fs.readFileSync(log, 'utf8').includes('kept 200000'); i++) await new Promise((r) => setTimeout(r, 50));
    const second = await collectGarbage(child.pid!, log);
    // 200,000 objects of one small field: at least 16 bytes each, plus the array that holds them.
    const grew = second.heapUsed - first.heapUsed;
    assert.ok(grew > 3_200_000 && grew < 40 << 20, `the heap grew by what the process keeps: ${grew} bytes`);
  } finally {
    child.kill();
  }
});

test('collectGarbage gives a clear error when the process never opens its inspector', { timeout: 30_000 }, async () => {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inspector-')), 'child.log');
  // SIGUSR1 is taken by the process itself, so no inspector opens.
  const handler = path.join(path.dirname(log), 'usr1.cjs');
  fs.writeFileSync(handler, "process.on('SIGUSR1', () => {});\n");
  const child = await start(['--require', handler], log);
  try {
    await assert.rejects(collectGarbage(child.pid!, log, 500), /did not open its inspector within 500 ms/);
    assert.equal(child.exitCode, null, 'the process kept running');
  } finally {
    child.kill();
  }
});


// Every 10 ms: churn() makes 20,000 objects that die at once, keepMany() 5,000 that stay for a second (a ring
// of 500,000, so it keeps allocating survivors however long the process runs: they are promoted, then die old).
const ALLOCATING = `
const kept = new Array(500000);
let next = 0;
let sink = null;
function churn() { for (let i = 0; i < 20000; i++) sink = { i, s: 'x' + i }; }
function keepMany() { for (let i = 0; i < 5000; i++) kept[next++ % kept.length] = { i, s: 'y' + i }; }
setInterval(() => { churn(); keepMany(); }, 10);
console.error('ready');
`;

test('sampleAllocations names the allocating functions, and with survivors only what outlives the young generation', { timeout: 60_000 }, async () => {
  const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parley-inspector-')), 'child.log');
  const child = await start([INSPECT_ON_SIGNAL], log, ALLOCATING);
  try {
    const share = (s: Awaited<ReturnType<typeof sampleAllocations>>, fn: string) => s.self.filter((e) => e.frame.startsWith(`${fn} `) || e.frame === fn).reduce((n, e) => n + e.percent, 0);
    const all = await sampleAllocations(child.pid!, log, 1.5, false);
    assert.ok(all.totalBytes > 1 << 20, `sampled ${all.totalBytes} bytes`);
    assert.ok(share(all, 'churn') > share(all, 'keepMany'), `churn allocates four times as much: ${JSON.stringify(all.self.slice(0, 5))}`);
    const survivors = await sampleAllocations(child.pid!, log, 1.5, true);
    assert.ok(share(survivors, 'keepMany') > share(survivors, 'churn'), `what stays is keepMany's: ${JSON.stringify(survivors.self.slice(0, 5))}`);
  } finally {
    child.kill();
  }
});
