// The web client at / in a real headless Chromium: sign in, open a conversation, send over MQTT/WebSocket,
// and see a reply from an MQTT app arrive. A screenshot is kept in test/artifacts/.
import assert from './helpers/assert.ts';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from './helpers/browser.ts';
import { repo } from './helpers/child.ts';
import { connectDevice, PASSWORD, registerUser, startTestParley, type TestParley } from './helpers/parley.ts';


describe('web client in Chromium', () => {
  let p: TestParley;
  let browser: Browser;
  before(async () => {
    p = await startTestParley('embedded');
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await p?.stop();
  });

  it('signs in, sends and receives', async () => {
    const [ann, ben] = [await registerUser(p), await registerUser(p)];
    const b = await connectDevice(p, 'tcp', ben);
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${p.running.httpPort}/`);
    await page.fill('input[name=username]', ann);
    await page.fill('input[name=password]', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#status[data-state=online]', { timeout: 15_000 });
    await page.fill('#open-form input[name=peer]', ben);
    await page.click('#open-form button');
    await page.fill('#send-form input[name=body]', 'hello from the browser');
    await page.click('#send-form button');

    const [m] = await b.waitForInbox(1);
    assert.equal(m.from, ann);
    assert.equal(m.body, 'hello from the browser');
    await page.waitForSelector(`#messages li.mine[data-id="${m.id}"]`, { timeout: 10_000 });

    const reply = await b.sendAndAck(ann, { body: 'hello from an MQTT app' });
    await page.waitForSelector(`#messages li.theirs[data-id="${reply.id}"]`, { timeout: 10_000 });
    assert.equal(await page.textContent(`#messages li[data-id="${reply.id}"] .body`), 'hello from an MQTT app');
    // The page tells ben his reply arrived, and was read: it came into the open conversation of a visible page.
    const receipts = await b.waitFor(() => b.inbox(['receipt']).filter((r) => r.ref === reply.id).length === 2 && b.inbox(['receipt']).filter((r) => r.ref === reply.id), 'two receipts');
    assert.deepEqual(receipts.map((r: { state: string }) => r.state), ['delivered', 'read']);
    assert.equal(receipts[0].from, ann);

    // Ben's receipts for ann's message show on it, forward only, and are never answered with receipts.
    const delivered = await b.sendAndAck(ann, { kind: 'receipt', ref: m.id, state: 'delivered' });
    await page.waitForSelector(`#messages li.mine[data-id="${m.id}"][data-state="delivered"]`, { timeout: 10_000 });
    const read = await b.sendAndAck(ann, { kind: 'receipt', ref: m.id, state: 'read' });
    await page.waitForSelector(`#messages li.mine[data-id="${m.id}"][data-state="read"]`, { timeout: 10_000 });
    await b.sendAndAck(ann, { kind: 'receipt', ref: m.id, state: 'delivered' });
    const marker = await b.sendAndAck(ann, { body: 'marker' });
    await b.waitFor(() => b.inbox(['receipt']).filter((r) => r.ref === marker.id).length === 2, 'the marker\'s receipts');
    assert.equal(await page.getAttribute(`#messages li[data-id="${m.id}"]`, 'data-state'), 'read', 'read then delivered stays read');
    const answered = b.inbox(['receipt']).filter((r) => r.ref === delivered.id || r.ref === read.id);
    assert.deepEqual(answered, [], 'no receipt for a receipt');
    assert.deepEqual(b.inbox(['receipt']).map((r) => `${r.ref} ${r.state}`).sort(), [reply.id, marker.id].flatMap((id) => [`${id} delivered`, `${id} read`]).sort(), 'two receipts per message of ben\'s');

    fs.mkdirSync(path.join(repo, 'test/artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(repo, 'test/artifacts/web-client.png') });
    assert.deepEqual(errors, []);
    await b.close();
  });
});
