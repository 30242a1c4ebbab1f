// GET /v1/analytics/series and the dashboard's files on a running Parley (embedded adapters): events fed
// straight into its event log come back as points; a token is required, junk gets 400, conversation ids
// are shown to participants (or to PARLEY_ANALYTICS_READERS) only; the jobs' counters are on /metrics.
import assert from './helpers/assert.ts';
import { after, before, describe, it } from 'node:test';
import { conversationOf } from '../common/envelope.ts';
import { EPOCH } from '../common/ids.ts';
import { PASSWORD, registerUser, sleep, startTestParley, uniqueName, type TestParley } from './helpers/parley.ts';

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
let seq = 0;

function record(from: string, to: string, ts: number, transport = 'tcp') {
  const id = ((BigInt(ts - EPOCH) << 22n) | BigInt(++seq)).toString();
  const message = { id, from, to, ts, cid: `c${seq}`, kind: 'text', body: 'hi' };
  return { key: conversationOf(message), value: JSON.stringify({ v: 1, type: 'message', transport, participants: [from, to], message }) };
}

async function token(p: TestParley, username: string): Promise<string> {
  const res = await p.http('/v1/auth/login', { body: { username, password: PASSWORD } });
  assert.equal(res.status, 200);
  return res.body.token;
}

/** Feeds alice↔bob ×3 and carol↔dave ×1 in minute 0 of T0, and waits until the jobs have them. */
async function feed(p: TestParley, alice: string, bob: string, carol: string, dave: string, reader: string): Promise<void> {
  const log = p.running.ports.eventLog;
  await log.append(p.config.messagesTopic, [
    record(alice, bob, T0 + 1000),
    record(bob, alice, T0 + 2000, 'ws'),
    record(alice, bob, T0 + 3000),
    record(carol, dave, T0 + 4000),
  ]);
  const t = await token(p, reader);
  for (let i = 0; i < 200; i++) {
    const res = await p.http(`/v1/analytics/series?metric=top_conversations&from=${T0}&to=${T0 + 60_000}`, { token: t });
    if (res.status === 200 && res.body.points.length === 2) return;
    await sleep(50);
  }
  throw new Error('the analytics jobs did not take the events');
}

describe('analytics series API and dashboard files', () => {
  let p: TestParley;
  let alice: string, bob: string, carol: string, dave: string;
  let t: string;
  before(async () => {
    p = await startTestParley('embedded', { PARLEY_EMBEDDED_FSYNC: 'false' });
    [alice, bob, carol, dave] = [await registerUser(p), await registerUser(p), await registerUser(p), await registerUser(p)];
    t = await token(p, alice);
    await feed(p, alice, bob, carol, dave, alice);
  });
  after(async () => p?.stop());

  it('answers points of one metric and window length, without the internal window label', async () => {
    const res = await p.http(`/v1/analytics/series?metric=messages&window=1m&from=${T0}&to=${T0 + 120_000}`, { token: t });
    assert.equal(res.status, 200);
    assert.equal(res.body.metric, 'messages');
    assert.equal(res.body.window, '1m');
    assert.deepEqual(
      res.body.points.map((x: any) => [x.windowStart, x.windowMs, x.labels.kind, x.value]),
      [
        [T0, 60_000, 'attachment', 0],
        [T0, 60_000, 'receipt', 0],
        [T0, 60_000, 'text', 4],
      ],
    );
    const hour = await p.http(`/v1/analytics/series?metric=messages_by_transport&window=1h&from=${new Date(T0).toISOString()}&to=${new Date(T0 + 3_600_000).toISOString()}`, { token: t });
    assert.equal(hour.status, 200);
    assert.deepEqual(
      hour.body.points.map((x: any) => [x.windowMs, x.labels.transport, x.value]),
      [
        [3_600_000, 'tcp', 3],
        [3_600_000, 'tls', 0],
        [3_600_000, 'ws', 1],
      ],
    );
    const users = await p.http(`/v1/analytics/series?metric=active_users&from=${T0}&to=${T0 + 60_000}`, { token: t });
    assert.deepEqual(users.body.points, [{ windowStart: T0, windowMs: 60_000, value: 3 }]);
  });

  it('shows a conversation id to its participants only; PARLEY_ANALYTICS_READERS see all and no one else reads', async () => {
    const res = await p.http(`/v1/analytics/series?metric=top_conversations&from=${T0}&to=${T0 + 60_000}`, { token: t });
    assert.deepEqual(
      res.body.points.map((x: any) => [x.labels.rank, x.labels.conversation, x.value]),
      [
        ['1', conversationOf({ from: alice, to: bob }), 3],
        ['2', 'hidden', 1],
      ],
    );
    const boss = uniqueName('boss');
    const q = await startTestParley('embedded', { PARLEY_ANALYTICS_READERS: `${boss}, someone`, PARLEY_EMBEDDED_FSYNC: 'false' });
    try {
      await registerUser(q, boss);
      const [a, b, c, d] = [await registerUser(q, alice), await registerUser(q, bob), await registerUser(q, carol), await registerUser(q, dave)];
      await feed(q, a, b, c, d, boss);
      const denied = await q.http(`/v1/analytics/series?metric=messages`, { token: await token(q, alice) });
      assert.equal(denied.status, 403);
      assert.equal(denied.body.error.code, 'forbidden');
      const all = await q.http(`/v1/analytics/series?metric=top_conversations&from=${T0}&to=${T0 + 60_000}`, { token: await token(q, boss) });
      assert.deepEqual(
        all.body.points.map((x: any) => x.labels.conversation),
        [conversationOf({ from: alice, to: bob }), conversationOf({ from: carol, to: dave })],
      );
    } finally {
      await q.stop();
    }
  });

  it('needs a bearer token', async () => {
    assert.equal((await p.http('/v1/analytics/series?metric=messages')).status, 401);
    assert.equal((await p.http('/v1/analytics/series?metric=messages', { token: 'plt_nope' })).status, 401);
  });

  it('answers 400 to junk', async () => {
    const bad = [
      '',
      '?metric=',
      '?metric=nope',
      '?metric=messages&window=5m',
      '?metric=messages&from=yesterday',
      '?metric=messages&from=-5',
      '?metric=messages&from=12345678901234',
      `?metric=messages&from=${T0}&to=${T0}`,
      `?metric=messages&from=${T0 + 10}&to=${T0}`,
      `?metric=messages&from=${T0}&to=${T0 + 8 * 86_400_000}`,
      `?metric=messages&window=1h&from=0&to=${T0}`,
      '?metric=messages&metric=active_users',
      '?metric=messages&extra=1',
      '?metric=messages&from=2025-13-45T99:00:00Z',
      '?metric=__proto__',
    ];
    for (const query of bad) {
      const res = await p.http(`/v1/analytics/series${query}`, { token: t });
      assert.equal(res.status, 400, `${query} got ${res.status}`);
      assert.equal(res.body.error.code, 'bad_request');
    }
  });

  it('serves the dashboard page, its script and uPlot from this server, with a strict CSP', async () => {
    const base = `http://127.0.0.1:${p.running.httpPort}`;
    const page = await fetch(`${base}/dashboard`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
    const html = await page.text();
    assert.match(html, /data-refresh-ms="5000"/);
    for (const src of [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]).filter((u) => u !== 'data:,')) {
      assert.ok(src.startsWith('/dashboard/'), `${src} is served by Parley itself`);
      const res = await fetch(base + src);
      assert.equal(res.status, 200, src);
    }
    const uplot = await (await fetch(`${base}/dashboard/vendor/uPlot.iife.min.js`)).text();
    assert.match(uplot, /uPlot/);
  });

  it('counts the jobs’ events on /metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${p.running.httpPort}/metrics`)).text();
    assert.match(text, /parley_analytics_events_total\{job="traffic",outcome="accepted"\} 4/);
    assert.match(text, /parley_analytics_watermark_seconds\{job="users",partition="\d+"\}/);
  });
});
