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

/** Runs a full, memory-reducing GC in the Node process `pid`, whose stderr goes to `log`. */
export async function collectGarbage(pid: number, log: string, timeoutMs = 10_000): Promise<void> {
  const url = await inspectorUrl(pid, log, timeoutMs);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`HeapProfiler.collectGarbage in ${pid}: no answer within ${timeoutMs} ms`)), timeoutMs);
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      ws.once('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      ws.on('message', (data) => {
        const answer = JSON.parse(String(data)) as { id?: number; error?: { message: string } };
        if (answer.id !== 1) return;
        clearTimeout(timer);
        if (answer.error) reject(new Error(`HeapProfiler.collectGarbage in ${pid}: ${answer.error.message}`));
        else resolve();
      });
    });
  } finally {
    ws.terminate();
  }
}
