// The analytics dashboard in a real headless Chromium while messages flow through a running Parley: the
// charts draw, and the legend tables show the latest windows' values the test works out from its own acks.
// A screenshot is kept in test/artifacts/dashboard.png.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser.ts';
import { parseId } from '../common/ids.ts';
import { repo } from './helpers/child.ts';
import { connectDevice, PASSWORD, registerUser, startTestParley, type TestDevice, type TestParley } from './helpers/parley.ts';

const MINUTE = 60_000;

interface Sent {
  kind: 'text' | 'receipt';
  from: string;
  transport: 'tcp' | 'ws';
  ts: number;
  /** Receipts: accept → delivered, from the ids. */
  latency?: number;
}

/** What the dashboard should show for `sent`: per 1-minute window, then the latest window and range totals. */
function expectations(sent: Sent[]) {
  const latest = Math.max(...sent.map((s) => Math.floor(s.ts / MINUTE) * MINUTE));
  const inLatest = sent.filter((s) => Math.floor(s.ts / MINUTE) * MINUTE === latest);
  const count = (list: Sent[], pick: (s: Sent) => boolean) => list.filter(pick).length;
  const latencies = inLatest.flatMap((s) => (s.latency === undefined ? [] : [s.latency])).sort((a, b) => a - b);
  const rank = (q: number) => latencies[Math.ceil(q * latencies.length) - 1];
  return {
    latest,
    latestText: count(inLatest, (s) => s.kind === 'text'),
    latestReceipts: count(inLatest, (s) => s.kind === 'receipt'),
    latestWs: count(inLatest, (s) => s.transport === 'ws'),
    latestUsers: new Set(inLatest.map((s) => s.from)).size,
    latestLatency: latencies.length ? { p50: rank(0.5), p95: rank(0.95), p99: rank(0.99) } : null,
    totalText: count(sent, (s) => s.kind === 'text'),
    totalReceipts: count(sent, (s) => s.kind === 'receipt'),
    totalTcp: count(sent, (s) => s.transport === 'tcp'),
    totalWs: count(sent, (s) => s.transport === 'ws'),
  };
}

const cell = (page: Page, metric: string, labels: string, column: 'latest' | 'range') =>
  page.getAttribute(`td.${column}[data-metric="${metric}"][data-labels="${labels}"]`, `data-${column}`);

/**
 * Waits until the legend shows `want` for every (metric, labels, column) listed. On a timeout the error
 * also says where the pipeline stands (`explain`): the page's refreshes, the outbox, the analytics jobs.
 */
async function waitForCells(page: Page, want: [string, string, 'latest' | 'range', number][], explain: () => Promise<string>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await Promise.all(want.map(([m, l, c]) => cell(page, m, l, c)));
    const wrong = want.filter((w, i) => got[i] !== String(w[3]));
    if (wrong.length === 0) return;
    if (Date.now() > deadline) {
      const state = await explain().catch((err: Error) => `(where the pipeline stands is unknown: ${err.message})`);
      throw new Error(`dashboard shows ${JSON.stringify(got)} for ${JSON.stringify(want)}\n${state}`);
    }
    await page.waitForTimeout(250);
  }
}

/** Where the pipeline stands, for a failure's message: the page's last refresh, the shipper, the analytics counters. */
async function pipelineState(p: TestParley, page: Page): Promise<string> {
  const [refreshes, updated, status] = await Promise.all([page.getAttribute('body', 'data-refreshes'), page.getAttribute('body', 'data-updated'), page.textContent('#status')]);
  // What the series API answers now, beside what the page last drew (with the page's own token).
  const token = await page.evaluate(() => sessionStorage.getItem('parley.analytics.token'));
  const now = Date.now();
  const series = await p.http(`/v1/analytics/series?metric=messages&window=1m&from=${now - 3_600_000}&to=${now + 60_000}`, { token: token ?? undefined });
  const text = await fetch(`http://127.0.0.1:${p.running.httpPort}/metrics`).then((r) => r.text(), (e: Error) => `(metrics: ${e.message})`);
  const lines = text.split('\n').filter((l) => /^parley_(outbox_length|analytics_events_total|analytics_watermark|messages_accepted|archive)/.test(l));
  return [
    `page: ${refreshes ?? 0} refreshes, last ${updated ? `${Date.now() - Number(updated)} ms ago` : 'never'}, status ${JSON.stringify(status)}`,
    `outbox shipped ${p.running.shipper?.shipped}`,
    `series API: ${series.status} ${JSON.stringify(series.body?.points?.map((x: { labels?: Record<string, string>; value: number }) => [x.labels?.kind, x.value]))}`,
    ...lines,
  ].join('\n');
}

describe('analytics dashboard in Chromium', () => {
  let p: TestParley;
  let browser: Browser;
  before(async () => {
    p = await startTestParley('embedded', { PARLEY_ANALYTICS_REFRESH_MS: '1000', PARLEY_LOG_LEVEL: 'warn' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await p?.stop();
  });

  it('draws live charts whose legends show the latest windows while messages flow', async () => {
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const a = await connectDevice(p, 'tcp', ann);
    const b = await connectDevice(p, 'ws', ben);
    const sent: Sent[] = [];
    const converse = async (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        const ack = await a.sendAndAck(ben, { body: `ping ${i}` });
        sent.push({ kind: 'text', from: ann, transport: 'tcp', ts: ack.ts });
        const r = await b.sendAndAck(ann, { kind: 'receipt', ref: ack.id, state: 'delivered' });
        sent.push({ kind: 'receipt', from: ben, transport: 'ws', ts: r.ts, latency: r.ts - parseId(ack.id).ts });
        if (i % 2 === 0) {
          const reply = await b.sendAndAck(ann, { body: `pong ${i}` });
          sent.push({ kind: 'text', from: ben, transport: 'ws', ts: reply.ts });
        }
      }
    };
    await converse(3);

    const page = await browser.newPage({ viewport: { width: 1400, height: 1700 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(`http://127.0.0.1:${p.running.httpPort}/dashboard`);
    await page.fill('#login input[name=username]', ann);
    await page.fill('#login input[name=password]', PASSWORD);
    await page.click('#login button[type=submit]');
    const explain = () => pipelineState(p, page);
    await page.waitForSelector('#panels:not([hidden]) .uplot canvas', { timeout: 15_000 });

    const check = async () => {
      const e = expectations(sent);
      const want: [string, string, 'latest' | 'range', number][] = [
        ['messages', 'kind=text', 'range', e.totalText],
        ['messages', 'kind=receipt', 'range', e.totalReceipts],
        ['messages_by_transport', 'transport=tcp', 'range', e.totalTcp],
        ['messages_by_transport', 'transport=ws', 'range', e.totalWs],
        ['messages', 'kind=text', 'latest', e.latestText],
        ['messages', 'kind=receipt', 'latest', e.latestReceipts],
        ['messages_by_transport', 'transport=ws', 'latest', e.latestWs],
        ['active_users', '', 'latest', e.latestUsers],
      ];
      if (e.latestLatency) for (const q of ['p50', 'p95', 'p99'] as const) want.push(['delivery_latency_ms', `q=${q}`, 'latest', e.latestLatency[q]]);
      await waitForCells(page, want, explain);
      return e;
    };
    await check();

    // More messages while the page is open: the charts follow on their next refresh.
    const before = Number(await page.getAttribute('body', 'data-refreshes'));
    await converse(4);
    const e = await check();
    assert.ok(Number(await page.getAttribute('body', 'data-refreshes')) > before, 'the page refreshed by itself');

    // Top conversations: ann takes part, so she sees the id; the count is the chat messages of the latest
    // window that has any.
    const texts = sent.filter((s) => s.kind === 'text').map((s) => Math.floor(s.ts / MINUTE) * MINUTE);
    const lastText = Math.max(...texts);
    const pair = ann < ben ? `u:${ann}:${ben}` : `u:${ben}:${ann}`;
    const top = await page.$$eval('#top-rows tr', (rows) => rows.map((r) => [(r as HTMLElement).dataset.rank, (r as HTMLElement).dataset.conversation, (r as HTMLElement).dataset.count]));
    assert.deepEqual(top, [['1', pair, String(texts.filter((t) => t === lastText).length)]]);
    assert.ok(e.totalText > 0);
    // One chart per panel, drawn with uPlot on canvases.
    assert.equal(await page.locator('.uplot').count(), 7);
    assert.equal(await page.textContent('#panel-messages h2'), 'Messages by kind');

    // The same messages in 1-hour windows over two days: the range totals do not change.
    await page.selectOption('#window', '1h');
    await waitForCells(
      page,
      [
        ['messages', 'kind=text', 'range', e.totalText],
        ['messages', 'kind=receipt', 'range', e.totalReceipts],
        ['messages_by_transport', 'transport=ws', 'range', e.totalWs],
      ],
      explain,
    );
    await page.selectOption('#window', '1m');
    await waitForCells(page, [['messages', 'kind=text', 'range', e.totalText]], explain);

    fs.mkdirSync(path.join(repo, 'test/artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(repo, 'test/artifacts/dashboard.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps refreshing after a request that never answers: it is given up and the next refresh draws', async () => {
    const page = await browser.newPage();
    // The first request for the messages series hangs, as if the server never answered it.
    let hung = 0;
    await page.route('**/v1/analytics/series?metric=messages&*', async (route) => {
      if (hung++ === 0) return; // neither answered nor failed
      await route.continue();
    });
    await page.goto(`http://127.0.0.1:${p.running.httpPort}/dashboard`);
    const user = await registerUser(p);
    await page.fill('#login input[name=username]', user);
    await page.fill('#login input[name=password]', PASSWORD);
    await page.click('#login button[type=submit]');
    // The refresh with the hung request is given up (one failure), and the next ones draw.
    await page.waitForFunction(() => Number(document.body.dataset.refreshes) >= 1, undefined, { timeout: 25_000 });
    const [failures, refreshes] = await Promise.all([page.getAttribute('body', 'data-failures'), page.getAttribute('body', 'data-refreshes')]);
    assert.equal(failures, '1', 'one refresh was given up');
    assert.ok(hung >= 2 && Number(refreshes) >= 1, `the messages series was asked for again (${hung} times) and drawn`);
    await page.close();
  });

  it('asks for a sign-in again when the token stops working', async () => {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${p.running.httpPort}/dashboard`);
    await page.fill('#login input[name=token]', 'plt_not-a-token');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => /sign in again/.test(document.querySelector('#login-error')?.textContent ?? ''));
    assert.equal(await page.isVisible('#login'), true);
    assert.equal(await page.isVisible('#panels'), false);
    await page.fill('#login input[name=username]', 'nobody');
    await page.fill('#login input[name=password]', 'wrong password');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => /bad username or password/.test(document.querySelector('#login-error')?.textContent ?? ''));
  });
});
