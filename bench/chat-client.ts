// Chat-protocol clients for the in-process benches (bench:pipeline, bench:backlog): users registered and
// signed in over HTTP, and mqtt.js senders that publish at a pace and note when each message was acked.
import fs from 'node:fs';
import mqtt from 'mqtt';

export const PASSWORD = 'bench-password-1';

export interface Endpoint {
  /** http://host:port of the HTTP API. */
  base: string;
  mqttPort: number;
}

export async function http(base: string, pathname: string, body?: unknown, token?: string): Promise<any> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${pathname}`, { method: body === undefined ? 'GET' : 'POST', headers, body: JSON.stringify(body) });
  return res.status === 204 ? null : res.json();
}

/** Registers (if new) and signs in `n` users named `{prefix}{i}`. */
export async function users(base: string, prefix: string, n: number): Promise<{ id: string; token: string }[]> {
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = `${prefix}${i}`;
    await http(base, '/v1/auth/register', { username: id, password: PASSWORD });
    out.push({ id, token: (await http(base, '/v1/auth/login', { username: id, password: PASSWORD })).token });
  }
  return out;
}

let phase = 0;

/**
 * Senders publish `perSender` messages each to `to`, paced to `rate` msg/s in all (0 = as fast as acks
 * allow); resolves with each message's id → when its ack arrived (performance.now()).
 */
export async function send(at: Endpoint, senders: { id: string; token: string }[], to: string, perSender: number, rate: number): Promise<Map<string, number>> {
  const tag = `p${++phase}_${Date.now().toString(36)}`; // a repeated (sender, cid) is a resend and not stored again
  const ackedAt = new Map<string, number>();
  await Promise.all(
    senders.map(async (s) => {
      const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${at.mqttPort}`, { username: s.id, password: s.token, reconnectPeriod: 0 });
      let acks = 0;
      const done = new Promise<void>((resolve) =>
        c.on('message', (_t, payload) => {
          const m = JSON.parse(payload.toString());
          if (m.kind !== 'ack') return;
          ackedAt.set(m.id, performance.now());
          if (++acks === perSender) resolve();
        }),
      );
      await c.subscribeAsync(`inbox/${s.id}`, { qos: 1 });
      const gap = rate > 0 ? (1000 * senders.length) / rate : 0;
      const start = performance.now();
      for (let i = 0; i < perSender; i++) {
        if (gap > 0) {
          const due = start + i * gap;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        } else if (i % 200 === 199) {
          await new Promise((r) => setImmediate(r));
        }
        c.publish(`send/user/${to}`, JSON.stringify({ cid: `${tag}_${i}`, body: `bench message ${i} from ${s.id} at ${performance.now()}` }), { qos: 1 });
      }
      await done;
      await c.endAsync();
    }),
  );
  return ackedAt;
}

/** Runs an in-process bench: its results go to stdout as JSON (and to `jsonOut` when given); exit 1 on failure. */
export function runBench(main: () => Promise<unknown>, jsonOut?: string): void {
  main().then(
    (results) => {
      const text = JSON.stringify(results, null, 2);
      if (jsonOut) fs.writeFileSync(jsonOut, text);
      console.log(text);
      process.exit(0);
    },
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
