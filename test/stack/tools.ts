// Command-line tools the tests and benchmarks call, from Debian: docker-compose and haproxy validate the
// production files in docker/ without an engine, mosquitto is the benchmark's reference broker, chromium
// (headless, driven by playwright-core) opens the analytics dashboard. Not a
// server: `up` installs them, and there is nothing to start.
import type { StackService } from './service.ts';
import { aptInstall, isInstalled } from './apt.ts';

const packages = ['docker-compose', 'haproxy', 'mosquitto', 'chromium'];

export const tools: StackService = {
  name: 'tools',
  kind: 'tools',
  async install(ctx) {
    await aptInstall(ctx, { packages });
  },
  async start() {},
  async healthy() {
    return packages.every(isInstalled);
  },
  env() {
    return {};
  },
};
