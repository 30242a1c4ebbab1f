// Debian's Chromium driven by playwright-core, for the browser tests (it downloads no browser of its own).
import assert from './assert.ts';
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: npm run stack:up installs Debian's chromium`);
  // Without the background-networking flags Chromium keeps dialling out, and this machine refuses it.
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
