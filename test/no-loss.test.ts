// Nothing acked is lost: SIGKILL the broker process while a burst is in flight, start it again on the
// same data, and the offline receiver gets every message whose sender saw an ack (PROTOCOL.md, guarantee 1).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connectDevice, registerUser, testEnv, type Backend, type TestParley } from './helpers/parley.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Child {
  proc: ChildProcess;
  parley: TestParley;
}

/** Starts `parley start` as its own process and reads the ports it chose from its start-up log line. */
async function startChild(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(repo, 'cli/parley.ts'), 'start'], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PARLEY_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: proc.stdout! });
  const started = await new Promise<{ mqtt: number; http: number }>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`parley exited with ${code} before it started`)));
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'parley started') resolve({ mqtt: rec.mqtt, http: rec.http });
      } catch {
        /* not a log line */
      }
    });
  });
  const base = `http://127.0.0.1:${started.http}`;
  const parley = {
    running: { mqttPort: started.mqtt, httpPort: started.http },
    async http(pathname: string, init: { body?: unknown } = {}) {
      const res = await fetch(base + pathname, { method: init.body ? 'POST' : 'GET', headers: { 'content-type': 'application/json' }, body: JSON.stringify(init.body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  } as unknown as TestParley;
  return { proc, parley };
}

function kill(child: Child): Promise<void> {
  return new Promise((resolve) => {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) return resolve();
    child.proc.once('exit', () => resolve());
    child.proc.kill('SIGKILL');
  });
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`no loss when the broker is killed, ${backend} adapters`, () => {
    const env = testEnv(backend);
    const children: Child[] = [];
    after(async () => {
      for (const c of children) await kill(c);
      if (backend === 'embedded') fs.rmSync(env.PARLEY_DATA_DIR, { recursive: true, force: true });
    });

    it('delivers every acked message after a SIGKILL in the middle of a burst', async (t) => {
      const first = await startChild(env);
      children.push(first);
      const [alice, bob] = [await registerUser(first.parley), await registerUser(first.parley)];
      const a = await connectDevice(first.parley, 'tcp', alice);
      const total = 3000;
      const cids = Array.from({ length: total }, (_, i) => a.send(bob, { body: `m${i}` }));
      // Kill the broker once some acks are in, while the rest of the burst is still in flight.
      const acks = () => a.received.filter((r) => r.body.kind === 'ack');
      await a.waitFor(() => acks().length >= 500, '500 acks', 60_000);
      await kill(first);
      const acked = new Set(acks().map((r) => r.body.cid as string));
      a.client.end(true);
      assert.ok(acked.size >= 500 && acked.size <= total);
      t.diagnostic(`${acked.size} of ${total} acked before the kill`);

      const second = await startChild(env);
      children.push(second);
      const b = await connectDevice(second.parley, 'tcp', bob);
      const got = await b.waitFor(() => {
        const have = new Set(b.inbox().map((m) => m.cid));
        return [...acked].every((c) => have.has(c)) && b.inbox();
      }, `all ${acked.size} acked messages`, 60_000);
      // Order is kept: what arrives follows the order sent.
      const order = got.map((m) => cids.indexOf(m.cid));
      for (let i = 1; i < order.length; i++) assert.ok(order[i] > order[i - 1], 'delivered in the order sent');
      assert.equal(new Set(got.map((m) => m.id)).size, got.length, 'no id twice');
      await b.close();
      await kill(second);
    });
  });
}
