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
    // The page sends a delivered receipt for what it shows.
    const receipt = await b.waitFor(() => b.inbox(['receipt']).find((r) => r.ref === reply.id), 'a delivered receipt');
    assert.equal(receipt.state, 'delivered');

    fs.mkdirSync(path.join(repo, 'test/artifacts'), { recursive: true });
    await page.screenshot({ path: path.join(repo, 'test/artifacts/web-client.png') });
    assert.deepEqual(errors, []);
    await b.close();
  });
});
