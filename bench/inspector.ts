// A full garbage collection in another Node process, through its inspector: the broker is started with
// `--inspect-port=127.0.0.1:0` (inert until used), SIGUSR1 opens the inspector on a free port, which the
// process prints to its stderr log, and the DevTools protocol's HeapProfiler.collectGarbage runs the GC.
// V8 does the same on its own once a process has been idle for a while (its memory reducer): this makes
// the memory scenario read that settled state now instead of after an unpredictable 20-60 s.
import fs from 'node:fs';
import WebSocket from 'ws';

/** Node's flag that makes SIGUSR1 open the inspector on a free loopback port instead of 9229. */
export const INSPECT_ON_SIGNAL = '--inspect-port=127.0.0.1:0';

const LISTENING = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/;

async function inspectorUrl(pid: number, log: string, timeoutMs: number): Promise<string> {
  const known = LISTENING.exec(fs.readFileSync(log, 'utf8'));
  if (known) return known[1];
  process.kill(pid, 'SIGUSR1');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const m = LISTENING.exec(fs.readFileSync(log, 'utf8'));
    if (m) return m[1];
  }
  throw new Error(`process ${pid} did not open its inspector within ${timeoutMs} ms (see ${log})`);
}

/** What the process's main thread holds after the GC (`process.memoryUsage()`, bytes; RSS is read from /proc). */
export interface HeapReading {
  /** The main isolate's live JS objects. */
  heapUsed: number;
  /** Memory of JS objects held outside the heap (Buffers, ArrayBuffers, native handles that report it). */
  external: number;
}

/** A DevTools protocol session with another Node process's main thread. */
export interface InspectorSession {
  call(method: string, params?: object): Promise<unknown>;
  /** Calls `handler` with the params of every notification `method` the process sends. */
  on(method: string, handler: (params: Record<string, unknown>) => void): void;
  close(): void;
}

/** Opens the inspector of the Node process `pid`, whose stderr goes to `log` (see INSPECT_ON_SIGNAL). */
export async function openInspector(pid: number, log: string, timeoutMs = 10_000): Promise<InspectorSession> {
  const url = await inspectorUrl(pid, log, timeoutMs);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspector of ${pid} at ${url}: not open within ${timeoutMs} ms`)), timeoutMs);
      ws.once('error', (err) => (clearTimeout(timer), reject(err)));
      ws.once('open', () => (clearTimeout(timer), resolve()));
    });
  } catch (err) {
    ws.terminate();
    throw err;
  }
  let nextId = 0;
  return {
    call: (method, params = {}) =>
      new Promise<unknown>((resolve, reject) => {
        const id = ++nextId;
        const timer = setTimeout(() => reject(new Error(`${method} in ${pid}: no answer within ${timeoutMs} ms`)), timeoutMs);
        const onMessage = (data: unknown) => {
          const answer = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
          if (answer.id !== id) return;
          clearTimeout(timer);
          ws.off('message', onMessage);
          if (answer.error) reject(new Error(`${method} in ${pid}: ${answer.error.message}`));
          else resolve(answer.result);
        };
        ws.on('message', onMessage);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    on: (method, handler) =>
      ws.on('message', (data: unknown) => {
        const note = JSON.parse(String(data)) as { method?: string; params?: Record<string, unknown> };
        if (note.method === method) handler(note.params ?? {});
      }),
    close: () => ws.terminate(),
  };
}

/**
 * Runs a full, memory-reducing GC in the Node process `pid`, whose stderr goes to `log`, then reads its
 * main thread's heap: the part of the settled RSS that is JS objects, as against native memory.
 */
export async function collectGarbage(pid: number, log: string, timeoutMs = 10_000): Promise<HeapReading> {
  const session = await openInspector(pid, log, timeoutMs);
  try {
    await session.call('HeapProfiler.collectGarbage');
    const read = (await session.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as {
      result?: { value?: string };
      exceptionDetails?: unknown;
    };
    if (read.exceptionDetails || typeof read.result?.value !== 'string') throw new Error(`process.memoryUsage() in ${pid} failed: ${JSON.stringify(read)}`);
    const usage = JSON.parse(read.result.value) as NodeJS.MemoryUsage;
    return { heapUsed: usage.heapUsed, external: usage.external };
  } finally {
    session.close();
  }
}

/**
 * Writes a heap snapshot of the Node process `pid`'s main thread to `file` (V8 collects garbage first: only
 * live objects are in it). The process is paused while V8 writes it: seconds for a few hundred MB.
 */
export async function takeHeapSnapshot(pid: number, log: string, file: string, timeoutMs = 120_000): Promise<void> {
  const session = await openInspector(pid, log, timeoutMs);
  const out = fs.openSync(file, 'w');
  try {
    session.on('HeapProfiler.addHeapSnapshotChunk', (p) => fs.writeSync(out, String(p.chunk)));
    await session.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    fs.closeSync(out);
    session.close();
  }
}
