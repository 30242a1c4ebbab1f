// Push for offline users: the notifier posts a signed webhook for a message whose receiver has no device
// online, once per message, retrying when the webhook answers 500 the first time.
import assert from './helpers/assert.ts';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { signPush } from '../consumers/notifier.ts';
import { connectDevice, registerUser, sleep, startTestParley, type Backend, type TestParley } from './helpers/parley.ts';

const SECRET = 'a-webhook-secret-of-some-length';

interface Hook {
  url: string;
  /** Accepted notifications (signature checked). */
  accepted: { user: string; messages: { id: string; from: string; preview?: string }[] }[];
  attempts: number;
  badSignatures: number;
  close(): Promise<void>;
}

/** A webhook receiver that answers 500 to the first attempt of every notification, then 200. */
async function webhook(): Promise<Hook> {
  const seen = new Set<string>();
  const hook: Hook = { url: '', accepted: [], attempts: 0, badSignatures: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      hook.attempts++;
      const ts = String(req.headers['x-parley-timestamp']);
      if (req.headers['x-parley-signature'] !== signPush(SECRET, ts, body)) {
        hook.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      if (!seen.has(body)) {
        seen.add(body);
        res.writeHead(500).end();
        return;
      }
      hook.accepted.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hook.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`;
  hook.close = () => new Promise((r) => server.close(() => r()));
  return hook;
}

for (const backend of ['embedded', 'real'] as Backend[]) {
  describe(`push notifications, ${backend === 'real' ? 'Kafka' : 'embedded'} event log`, () => {
    let p: TestParley;
    let hook: Hook;
    before(async () => {
      hook = await webhook();
      p = await startTestParley(backend, { PARLEY_PUSH_WEBHOOK_URL: hook.url, PARLEY_PUSH_SECRET: SECRET, PARLEY_PUSH_BACKOFF_MS: '50' }, { pipeline: backend === 'real' });
    });
    after(async () => {
      await p.stop();
      await hook.close();
    });

    it('notifies an offline receiver once per message, signed, after a 500', async () => {
      const [ann, ben, cat] = [await registerUser(p), await registerUser(p), await registerUser(p)];
      const a = await connectDevice(p, 'tcp', ann);
      const c = await connectDevice(p, 'tcp', cat); // cat is online: no push for her
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await a.sendAndAck(ben, { body: `hello ben ${i}` })).id);
      const online = await a.sendAndAck(cat, { body: 'you are here' });
      await c.waitForInbox(1);
      const forBen = () => hook.accepted.filter((n) => n.user === ben).flatMap((n) => n.messages);
      for (let i = 0; i < 200 && forBen().length < 5; i++) await sleep(100);
      assert.deepEqual(forBen().map((m) => m.id).sort(), [...ids].sort(), 'each message once');
      assert.ok(forBen().every((m) => m.from === ann && m.preview?.startsWith('hello ben')));
      assert.ok(hook.attempts > hook.accepted.length, 'the first attempts got 500 and were retried');
      assert.equal(hook.badSignatures, 0);
      await sleep(500);
      assert.ok(!hook.accepted.some((n) => n.user === cat || n.messages.some((m) => m.id === online.id)), 'no push for an online user');
      assert.equal(forBen().length, 5, 'nothing sent twice');
      await Promise.all([a.close(), c.close()]);
    });
  });
}
